"""Family registry: a family name → the function that builds its adapter.

Entries are ``"module:function"`` strings imported on first use, so ``import qua2.models`` stays
cheap and a family's heavy imports (transformers, a VAE …) happen only when it is loaded.
Every loader takes ``path`` (a local diffusers directory, or ``None`` for embedded models) plus
keyword options, and returns a :class:`~qua2.models.base.DenoiserAdapter`.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    ``digits_fid``, ``class_accuracy``) or ``real`` (fidelity to the FP images; FID and CLIP
    score when the study gives real images and a CLIP model).
    ``needs_path``: the family loads from a local diffusers directory (``model.path``).
    ``pipeline``: the diffusers pipeline class a named diffusers family stands for (its
    directory must hold one). ``defaults``: loader options a study may override.
    """

    name: str
    loader: str
    scoring: Literal["embedded", "real"] = "real"
    needs_path: bool = True
    pipeline: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def default_primary(self, has_reference_images: bool) -> str:
        """The study's primary metric when ``metrics.primary`` is not given: qua2's digits FID,
        FID against real images when the study has them, else PSNR against the FP images of
        the same seeds (needs no download, works for every model)."""
        if self.scoring == "embedded":
            return "digits_fid"
        return "fid" if has_reference_images else "psnr"


FAMILIES: dict[str, FamilySpec] = {}


def register_family(name: str, loader: str, *, scoring: Literal["embedded", "real"] = "real",
                    needs_path: bool = True, pipeline: str | None = None,
                    defaults: Mapping[str, Any] | None = None) -> FamilySpec:
    """Add a family: ``loader`` is ``"package.module:function"`` returning an adapter."""
    spec = FamilySpec(name, loader, scoring, needs_path, pipeline, dict(defaults or {}))
    FAMILIES[name] = spec
    return spec


def get_family(name: str) -> FamilySpec:
    """The registered family ``name``; an unknown name raises one sentence listing them."""
    if name not in FAMILIES:
        raise Qua2Error(
            f"unknown model family {name!r}; choose one of {', '.join(sorted(FAMILIES))}."
        )
    return FAMILIES[name]


def family_of_pipeline(class_name: str) -> str | None:
    """The named family that stands for diffusers pipeline ``class_name``, if any."""
    return next((spec.name for spec in FAMILIES.values() if spec.pipeline == class_name), None)


register_family("digits-dit", "qua2.models.digits:load_digits_dit", scoring="embedded",
                needs_path=False)
register_family("digits-unet", "qua2.models.digits:load_digits_unet", scoring="embedded",
                needs_path=False)
# Any diffusers pipeline, driven through its own __call__ (qua2/models/families/auto.py).
_PIPELINE_LOADER = "qua2.models.families.auto:PipelineAdapter.from_directory"
register_family("auto", _PIPELINE_LOADER)
# Named diffusers families: the generic adapter plus a check of the directory's pipeline class
# (same images as qua2's former hand-written adapters: tests/models/test_pipelines.py).
# Hunyuan-DiT publishes DDPM; qua2 has always sampled it with DDIM of the same configuration
# (good images in few steps, earlier studies comparable); model.options.sampler overrides it.
for _name, _pipeline, _defaults in (
    ("pixart-alpha", "PixArtAlphaPipeline", {}), ("pixart-sigma", "PixArtSigmaPipeline", {}),
    ("dit", "DiTPipeline", {}), ("hunyuan-dit", "HunyuanDiTPipeline", {"sampler": "DDIMScheduler"}),
    ("sd15", "StableDiffusionPipeline", {}), ("sdxl", "StableDiffusionXLPipeline", {}),
    ("sd3", "StableDiffusion3Pipeline", {}), ("flux", "FluxPipeline", {}),
):
    register_family(_name, _PIPELINE_LOADER, pipeline=_pipeline, defaults=_defaults)


def load_model(family: str, path: str | Path | None = None,
               **options: Any) -> DenoiserAdapter:
    """Build the adapter of ``family`` (from ``path`` where the family needs a directory)."""
    spec = get_family(family)
    module_name, func_name = spec.loader.split(":")
    loader: Any = functools.reduce(getattr, func_name.split("."),
                                   importlib.import_module(module_name))
    named = {"family": family, "expected": spec.pipeline} if spec.pipeline else {}
    try:
        return loader(path, **{**spec.defaults, **options}, **named)
    except TypeError as error:  # an option the loader does not take: bad input, not a bug
        if "keyword argument" not in str(error):
            raise
        name = str(error).rsplit(" ", 1)[-1]
        raise Qua2Error(f"model.options has {name}, which family {family!r} does not take; "
                        "see docs/models.md for its options.") from None
