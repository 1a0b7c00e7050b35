"""Denoiser adapters: embedded digits models and diffusers families from local directories.

:func:`load_model` returns a ``DenoiserAdapter`` (:mod:`qua2.models.base`) of a family in the
registry (:data:`FAMILIES` of :class:`FamilySpec`); :func:`register_family` adds one.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The package's public names → their defining modules, each imported on first use.
_EXPORTS = {
    "load_model": "qua2.models.registry",
    "register_family": "qua2.models.registry",
    "get_family": "qua2.models.registry",
    "FamilySpec": "qua2.models.registry",
    "FAMILIES": "qua2.models.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
