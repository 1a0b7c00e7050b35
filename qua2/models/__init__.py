"""Denoiser adapters: embedded digits models and diffusers families from local directories.

:func:`load_model` returns a ``DenoiserAdapter`` (:mod:`qua2.models.base`) of a family in the
registry (:data:`FAMILIES` of :class:`FamilySpec`); :func:`register_family` adds one.
"""

from __future__ import annotations

from qua2.lazy import lazy_exports

#: The package's public names → their defining modules, each imported on first use.
_EXPORTS = {
    "load_model": "qua2.models.registry",
    "register_family": "qua2.models.registry",
    "get_family": "qua2.models.registry",
    "FamilySpec": "qua2.models.registry",
    "FAMILIES": "qua2.models.registry",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
