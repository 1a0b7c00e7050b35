"""Family registry: a family name → the function that builds its adapter.

Entries are ``"module:function"`` strings imported on first use, so ``import qua2.models`` stays
cheap and a family's heavy imports (transformers, a VAE …) happen only when it is loaded.
Every loader takes ``path`` (a local diffusers directory, or ``None`` for embedded models) plus
keyword options, and returns a :class:`~qua2.models.base.DenoiserAdapter`.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from qua2.errors import Qua2Error

if TYPE_CHECKING:
    from qua2.models.base import DenoiserAdapter


@dataclass(frozen=True)
class FamilySpec:
    """A model family: its loader and the defaults a study of it starts from.

    ``loader`` is ``"package.module:function"`` (imported on first use; the function may be
    an attribute path such as ``Adapter.from_directory``). ``scoring`` says
    which metric suite a study uses by default: ``embedded`` (qua2's own digits classifier:
    ``digits_fid``, ``class_accuracy``) or ``real`` (FID against real images, CLIP score).
    ``needs_path``: the family loads from a local diffusers directory (``model.path``).
    """

    name: str
    loader: str
    scoring: Literal["embedded", "real"] = "real"
    needs_path: bool = True

    def default_primary(self, has_reference_images: bool) -> str:
        """The study's primary metric when ``metrics.primary`` is not given: qua2's digits FID,
        FID against real images when the study has them, else PSNR against the FP images of
        the same seeds (needs no download, works for every model)."""
        if self.scoring == "embedded":
            return "digits_fid"
        return "fid" if has_reference_images else "psnr"


FAMILIES: dict[str, FamilySpec] = {}


def register_family(name: str, loader: str, *, scoring: Literal["embedded", "real"] = "real",
                    needs_path: bool = True) -> FamilySpec:
    """Add a family: ``loader`` is ``"package.module:function"`` returning an adapter."""
    spec = FamilySpec(name, loader, scoring, needs_path)
    FAMILIES[name] = spec
    return spec


def get_family(name: str) -> FamilySpec:
    """The registered family ``name``; an unknown name raises one sentence listing them."""
    if name not in FAMILIES:
        raise Qua2Error(
            f"unknown model family {name!r}; choose one of {', '.join(sorted(FAMILIES))}."
        )
    return FAMILIES[name]


register_family("digits-dit", "qua2.models.digits:load_digits_dit", scoring="embedded",
                needs_path=False)
register_family("digits-unet", "qua2.models.digits:load_digits_unet", scoring="embedded",
                needs_path=False)
# diffusers families, loaded from a local pipeline directory (qua2/models/families).
for _name, _adapter in {
    "pixart-alpha": "pixart:PixArtAdapter", "pixart-sigma": "pixart:PixArtSigmaAdapter",
    "dit": "dit:DiTAdapter", "hunyuan-dit": "hunyuan:HunyuanDiTAdapter", "sd15": "sd:SD15Adapter",
    "sdxl": "sd:SDXLAdapter", "sd3": "flow:SD3Adapter", "flux": "flow:FluxAdapter",
}.items():
    register_family(_name, f"qua2.models.families.{_adapter}.from_directory")
# Any other diffusers pipeline, driven through its own __call__ (qua2/models/families/auto.py).
register_family("auto", "qua2.models.families.auto:PipelineAdapter.from_directory")


def load_model(family: str, path: str | Path | None = None,
               **options: Any) -> DenoiserAdapter:
    """Build the adapter of ``family`` (from ``path`` where the family needs a directory)."""
    module_name, func_name = get_family(family).loader.split(":")
    loader: Any = functools.reduce(getattr, func_name.split("."),
                                   importlib.import_module(module_name))
    try:
        return loader(path, **options)
    except TypeError as error:  # an option the loader does not take: bad input, not a bug
        if "unexpected keyword argument" not in str(error):
            raise
        name = str(error).rsplit(" ", 1)[-1]
        raise Qua2Error(f"model.options has {name}, which family {family!r} does not take; "
                        "see docs/models.md for its options.") from None
