"""Family registry: a family name → the function that builds its adapter.

Entries are ``"module:function"`` strings imported on first use, so ``import qua2.models`` stays
cheap and a family's heavy imports (transformers, a VAE …) happen only when it is loaded.
Every loader takes ``path`` (a local diffusers directory, or ``None`` for embedded models) plus
keyword options, and returns a :class:`~qua2.models.base.DenoiserAdapter`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from qua2.errors import Qua2Error

FAMILIES: dict[str, str] = {
    "digits-dit": "qua2.models.digits:load_digits_dit",
    "digits-unet": "qua2.models.digits:load_digits_unet",
    # diffusers families, loaded from a local pipeline directory (qua2/models/families).
    "pixart-alpha": "qua2.models.families.pixart:load_pixart_alpha",
    "pixart-sigma": "qua2.models.families.pixart:load_pixart_sigma",
    "dit": "qua2.models.families.dit:load_dit",
    "hunyuan-dit": "qua2.models.families.hunyuan:load_hunyuan_dit",
    "sd15": "qua2.models.families.sd:load_sd15",
    "sdxl": "qua2.models.families.sd:load_sdxl",
    "sd3": "qua2.models.families.flow:load_sd3",
    "flux": "qua2.models.families.flow:load_flux",
}


def register_family(name: str, target: str) -> None:
    """Add a family: ``target`` is ``"package.module:loader"``."""
    FAMILIES[name] = target


def load_model(family: str, path: str | Path | None = None, **options: Any):
    """Build the adapter of ``family`` (from ``path`` where the family needs a directory)."""
    if family not in FAMILIES:
        raise Qua2Error(
            f"unknown model family {family!r}; choose one of {', '.join(sorted(FAMILIES))}."
        )
    module_name, func_name = FAMILIES[family].split(":")
    loader = getattr(importlib.import_module(module_name), func_name)
    try:
        return loader(path, **options)
    except TypeError as error:  # an option the loader does not take: bad input, not a bug
        if "unexpected keyword argument" not in str(error):
            raise
        name = str(error).rsplit(" ", 1)[-1]
        raise Qua2Error(f"model.options has {name}, which family {family!r} does not take; "
                        "see docs/models.md for its options.") from None
