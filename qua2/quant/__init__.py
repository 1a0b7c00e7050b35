"""Weight quantization: methods, fast 1-D k-means, option cache, apply/restore, packed export.

Never imports diffusers: everything works on plain ``torch.nn.Module`` s and tensors.
"""

from qua2.quant.methods import (
    METHODS,
    MethodSpec,
    get_method,
    quantize_options,
    quantize_weight,
    register_method,
)
from qua2.quant.qweight import QuantizedWeight

__all__ = [
    "METHODS",
    "MethodSpec",
    "QuantizedWeight",
    "get_method",
    "quantize_options",
    "quantize_weight",
    "register_method",
]
