"""Checking and loading a local diffusers pipeline directory for one model family.

A diffusers directory has ``model_index.json`` (``_class_name`` = the pipeline class, one entry
per component) and one sub-folder per component (``transformer/`` or ``unet/``,
``scheduler/``, ``vae/``, ``text_encoder*/``, ``tokenizer*/``). Everything that can go wrong
with the directory is checked here *before* diffusers starts loading gigabytes, so the user gets
one sentence that names the problem and the fix instead of a deep traceback.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qua2.errors import Qua2Error


@dataclass(frozen=True)
class PipelineSpec:
    """What a family's directory holds: its pipeline class and component names."""

    pipeline: str
    denoiser: str
    text_components: tuple[str, ...] = ()


_CLIP = ("text_encoder", "tokenizer")
_CLIP2 = (*_CLIP, "text_encoder_2", "tokenizer_2")

#: family → what its directory must contain.
PIPELINES: dict[str, PipelineSpec] = {
    "pixart-alpha": PipelineSpec("PixArtAlphaPipeline", "transformer", _CLIP),
    "pixart-sigma": PipelineSpec("PixArtSigmaPipeline", "transformer", _CLIP),
    "dit": PipelineSpec("DiTPipeline", "transformer"),
    "hunyuan-dit": PipelineSpec("HunyuanDiTPipeline", "transformer", _CLIP2),
    "sd15": PipelineSpec("StableDiffusionPipeline", "unet", _CLIP),
    "sdxl": PipelineSpec("StableDiffusionXLPipeline", "unet", _CLIP2),
    "sd3": PipelineSpec(
        "StableDiffusion3Pipeline", "transformer", (*_CLIP2, "text_encoder_3", "tokenizer_3")
    ),
    "flux": PipelineSpec("FluxPipeline", "transformer", _CLIP2),
}

#: Components qua2 never uses; not loaded (the SD safety checker alone is a 1.2 GB CLIP).
_UNUSED = ("safety_checker", "feature_extractor", "image_encoder")


def family_of_pipeline(class_name: str) -> str | None:
    """The qua2 family whose directories hold pipeline ``class_name``, if any."""
    for family, spec in PIPELINES.items():
        if spec.pipeline == class_name:
            return family
    return None


def read_model_index(path: str | Path | None, family: str) -> tuple[Path, dict[str, Any]]:
    """Check that ``path`` is a diffusers directory of ``family``; return it and its index."""
    root = _existing_directory(path, family)
    index_file = root / "model_index.json"
    if not index_file.is_file():
        raise Qua2Error(_no_index_message(root, family))
    index = _read_index(index_file)
    _check_class(root, index, family)
    return root, index


def _read_index(index_file: Path) -> dict[str, Any]:
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError) as exc:
        raise Qua2Error(
            f"{index_file} is not readable JSON ({exc}); restore it or re-save the pipeline "
            "with save_pretrained()."
        ) from exc
    if not isinstance(index, dict):
        raise Qua2Error(f"{index_file} is not a diffusers model index (a JSON object); restore "
                        "it or re-save the pipeline with save_pretrained().")
    return index


def check_components(root: Path, index: dict[str, Any], family: str, text_encoders: bool) -> None:
    """Every component the adapter needs is listed in ``index`` and has its folder."""
    spec = PIPELINES[family]
    needed = [spec.denoiser, "scheduler", "vae"]
    if text_encoders:
        needed += [name for name in spec.text_components if _listed(index, name)]
    for name in needed:
        if not _listed(index, name):
            raise Qua2Error(
                f"{root}/model_index.json lists no {name}, which the {family} family needs; "
                "point to a complete pipeline directory."
            )
        if not (root / name).is_dir():
            raise Qua2Error(
                f"{root} has no {name}/ folder although model_index.json lists one; copy the "
                f"missing folder or re-save the pipeline with save_pretrained()."
            )


def load_pipeline(
    path: str | Path | None,
    family: str,
    *,
    dtype: torch.dtype | str | None = None,
    text_encoders: bool = True,
) -> Any:
    """Load the ``family`` pipeline from a local directory (no downloads).

    ``text_encoders=False`` skips the text encoders and tokenizers (T5-XXL alone is ~19 GB in
    float32): the adapter then takes precomputed :class:`PromptEmbedding` conditions only.
    """
    root, index = read_model_index(path, family)
    check_components(root, index, family, text_encoders)
    spec = PIPELINES[family]
    skipped: dict[str, Any] = {name: None for name in _UNUSED if _listed(index, name)}
    if not text_encoders:
        skipped.update({name: None for name in spec.text_components if name in index})
    import diffusers

    return _from_pretrained(getattr(diffusers, spec.pipeline), root, family, dtype, skipped)


def load_any_pipeline(path: str | Path | None, *, dtype: torch.dtype | str | None = None) -> Any:
    """Load whatever diffusers pipeline is saved under ``path`` (``family: auto``; no downloads).

    The class comes from ``model_index.json``; components qua2 never uses (safety checker …) are
    skipped, every listed component must have its folder.
    """
    family = "auto"
    root = _existing_directory(path, family)
    index_file = root / "model_index.json"
    if not index_file.is_file():
        raise Qua2Error(_no_index_message(root, family))
    index = _read_index(index_file)
    pipeline_class = _pipeline_class(root, index)
    skipped: dict[str, Any] = {name: None for name in _UNUSED if _listed(index, name)}
    for name in index:
        if _listed(index, name) and name not in skipped and not (root / name).is_dir():
            raise Qua2Error(
                f"{root} has no {name}/ folder although model_index.json lists one; copy the "
                "missing folder or re-save the pipeline with save_pretrained()."
            )
    return _from_pretrained(pipeline_class, root, family, dtype, skipped)


def _pipeline_class(root: Path, index: dict[str, Any]) -> Any:
    """The diffusers pipeline class ``model_index.json`` names (refused if unknown)."""
    import diffusers

    name = index.get("_class_name")
    pipeline_class = getattr(diffusers, str(name), None) if name else None
    if not isinstance(pipeline_class, type) or not issubclass(pipeline_class,
                                                              diffusers.DiffusionPipeline):
        raise Qua2Error(
            f"{root}/model_index.json names {name!r}, which is not a pipeline class of the "
            f"installed diffusers {diffusers.__version__}; upgrade diffusers or point to a "
            "diffusers pipeline directory."
        )
    return pipeline_class


def _from_pretrained(pipeline_class: Any, root: Path, family: str,
                     dtype: torch.dtype | str | None, skipped: dict[str, Any]) -> Any:
    """``pipeline_class.from_pretrained`` from local files, failures as one sentence."""
    if "requires_safety_checker" in inspect.signature(pipeline_class.__init__).parameters:
        skipped["requires_safety_checker"] = False
    try:
        return pipeline_class.from_pretrained(
            str(root), torch_dtype=_torch_dtype(dtype), local_files_only=True, **skipped
        )
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise Qua2Error(
            f"could not load the {family} pipeline from {root} ({reason}); check that every "
            "component folder holds its config and weights."
        ) from exc


# ---------------------------------------------------------------------------------- helpers
def _existing_directory(path: str | Path | None, family: str) -> Path:
    if path is None or str(path) == "":
        raise Qua2Error(
            f"the {family} family loads from a local diffusers directory; pass its path "
            "(the folder that holds model_index.json)."
        )
    root = Path(path).expanduser()
    if not root.exists():
        raise Qua2Error(
            f"model directory {root} does not exist; pass the folder that holds model_index.json."
        )
    if not root.is_dir():
        raise Qua2Error(
            f"{root} is a file, not a model directory; pass the folder that holds "
            "model_index.json."
        )
    return root


def _no_index_message(root: Path, family: str) -> str:
    if (root / "config.json").is_file():
        return (
            f"{root} holds a single diffusers component (config.json), not a pipeline; pass "
            "its parent folder, the one with model_index.json."
        )
    return (
        f"{root} has no model_index.json, so it is not a diffusers pipeline directory; point "
        f"to {'a' if family == 'auto' else 'the ' + family} pipeline folder or save one there "
        "with save_pretrained()."
    )


def _check_class(root: Path, index: dict[str, Any], family: str) -> None:
    expected = PIPELINES[family].pipeline
    found = index.get("_class_name")
    if found == expected:
        return
    other = family_of_pipeline(str(found))
    if other is not None:
        raise Qua2Error(
            f"{root} holds a {found} (family {other!r}), not a {expected}; load it as family "
            f"{other!r} or point {family!r} to a {expected} directory."
        )
    raise Qua2Error(
        f"{root} holds a {found}, but family {family!r} needs a {expected} directory; point to "
        "the right directory or pick the matching family."
    )


def _listed(index: dict[str, Any], name: str) -> bool:
    """``model_index.json`` has a non-null entry for component ``name``."""
    entry = index.get(name)
    return isinstance(entry, (list, tuple)) and len(entry) == 2 and entry[1] is not None


def _torch_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise Qua2Error(
            f"unknown dtype {dtype!r}; use float32, float16 or bfloat16."
        )
    return resolved
