"""Weight quantization: methods, fast 1-D k-means, option cache, apply/restore, packed export.

Public API::

    quantize_weight(weight, method, bits, **options) -> QuantizedWeight
    quantize_options(weight, options) -> {option: QuantizedWeight}   (shares work)
    register_method(MethodSpec(...))                 (qua2.quant.methods)
    OptionCache.build(module, space, directory, layers=None) -> OptionCache
    cache.option_stats(layer, option) / cache.dequantized(layer, option)
    with quantized(module, config, cache): ...
    average_bits(config, cache, whole_model=False) / bits_summary(config, cache)
    export_packed(module, config, cache, directory, model_id=...) / load_packed(module, dir)

Never imports diffusers: everything works on plain ``torch.nn.Module`` s and tensors.
"""

from __future__ import annotations

from qua2.lazy import lazy_exports

#: The package's public names → their defining modules, each imported on first use.
_EXPORTS = {
    "quantize_weight": "qua2.quant.methods",
    "quantize_options": "qua2.quant.methods",
    "register_method": "qua2.quant.methods",
    "QuantizedWeight": "qua2.quant.qweight",
    "OptionCache": "qua2.quant.cache",
    "quantized": "qua2.quant.apply",
    "average_bits": "qua2.quant.apply",
    "bits_summary": "qua2.quant.apply",
    "export_packed": "qua2.quant.export",
    "load_packed": "qua2.quant.export",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
