"""qua2: quantization-sensitivity studies of diffusion-model denoisers.

Importing ``qua2`` is deliberately light: it pulls in no torch, diffusers, shap or
torch-geometric. Import the sub-packages (``qua2.quant``, ``qua2.graph``, ``qua2.models`` …)
for the work itself.
"""

from qua2.errors import Qua2Error

__version__ = "0.1.0"
__all__ = ["Qua2Error", "__version__"]
