"""Adapters for diffusers model families loaded from local directories.

Importing this package is cheap: adapter classes are imported on first attribute access, so
``qua2.models.families.PixArtAdapter`` pulls in diffusers only when it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qua2.models.families.common import DiffusersAdapter

_EXPORTS = {
    "DiffusersAdapter": "common",
    "TextToImageAdapter": "text",
    "PromptEmbedding": "conditions",
    "save_embeddings": "conditions",
    "load_embeddings": "conditions",
    "PixArtAdapter": "pixart",
    "PixArtSigmaAdapter": "pixart",
    "DiTAdapter": "dit",
    "HunyuanDiTAdapter": "hunyuan",
    "SD15Adapter": "sd",
    "SDXLAdapter": "sd",
    "FlowMatchingAdapter": "flow",
    "SD3Adapter": "flow",
    "FluxAdapter": "flow",
    "PipelineAdapter": "auto",
}

__all__ = ["adapter_class", *sorted(_EXPORTS)]


def adapter_class(family: str) -> type[DiffusersAdapter]:
    """The adapter class of a diffusers ``family`` (e.g. ``"sdxl"`` → ``SDXLAdapter``), as its
    registry loader (``module:Adapter.from_directory``) names it."""
    from qua2.models.registry import get_family

    module, loader = get_family(family).loader.split(":")
    return getattr(importlib.import_module(module), loader.split(".")[0])


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
