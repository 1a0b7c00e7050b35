"""Weight quantization: methods, fast 1-D k-means, option cache, apply/restore, packed export.

Public API::

    quantize_weight(weight, method, bits, **options) -> QuantizedWeight
    quantize_layers({name: weight}, options) -> {name: {option: QuantizedWeight}}
    OptionCache.build(module, space, directory, layers=None) -> OptionCache
    cache.option_stats(layer, option) / cache.dequantized(layer, option)
    with quantized(module, config, cache): ...
    average_bits(config, cache, whole_model=False) / bits_summary(config, cache)
    export_packed(module, config, cache, directory, model_id=...) / load_packed(module, dir)

Never imports diffusers: everything works on plain ``torch.nn.Module`` s and tensors.
"""

from qua2.quant.apply import (
    BitsSummary,
    as_config,
    average_bits,
    bits_summary,
    quantized,
    validate_config,
)
from qua2.quant.batch import quantize_layers
from qua2.quant.cache import OptionCache
from qua2.quant.cache_build import BuildReport
from qua2.quant.cache_index import OptionStats
from qua2.quant.export import ExportSummary, export_packed, load_packed, read_manifest
from qua2.quant.kmeans import kmeans_1d, kmeans_1d_optimal
from qua2.quant.methods import (
    METHODS,
    MethodSpec,
    get_method,
    quantize_options,
    quantize_weight,
    register_method,
)
from qua2.quant.packing import pack_codes, packed_nbytes, unpack_codes
from qua2.quant.qweight import QuantizedWeight

__all__ = [
    "METHODS",
    "BitsSummary",
    "BuildReport",
    "ExportSummary",
    "MethodSpec",
    "OptionCache",
    "OptionStats",
    "QuantizedWeight",
    "as_config",
    "average_bits",
    "bits_summary",
    "export_packed",
    "get_method",
    "kmeans_1d",
    "kmeans_1d_optimal",
    "load_packed",
    "pack_codes",
    "packed_nbytes",
    "quantize_layers",
    "quantize_options",
    "quantize_weight",
    "quantized",
    "read_manifest",
    "register_method",
    "unpack_codes",
    "validate_config",
]
