"""Checking and loading a local diffusers pipeline directory.

A diffusers directory has ``model_index.json`` (``_class_name`` = the pipeline class, one entry
per component) and one sub-folder per component (``transformer/`` or ``unet/``,
``scheduler/``, ``vae/``, ``text_encoder*/``, ``tokenizer*/``). Everything that can go wrong
with the directory is checked here *before* diffusers starts loading gigabytes, so the user gets
one sentence that names the problem and the fix instead of a deep traceback.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch

from qua2.errors import Qua2Error

#: Components qua2 never uses; not loaded (the SD safety checker alone is a 1.2 GB CLIP).
_UNUSED = ("safety_checker", "feature_extractor", "image_encoder")


def load_any_pipeline(path: str | Path | None, *, dtype: torch.dtype | str | None = None,
                      family: str = "auto", expected: str | None = None) -> Any:
    """Load the diffusers pipeline saved under ``path`` (local files only, no downloads).

    The class comes from ``model_index.json`` (``expected``, when given, is the class a named
    family needs); components qua2 never uses (safety checker …) are skipped; every listed
    component must have its folder.
    """
    root = _existing_directory(path, family)
    index_file = root / "model_index.json"
    if not index_file.is_file():
        raise Qua2Error(_no_index_message(root, family))
    index = _read_index(index_file)
    if expected is not None:
        _check_class(root, index, family, expected)
    pipeline_class = _pipeline_class(root, index)
    skipped: dict[str, Any] = {name: None for name in _UNUSED if _listed(index, name)}
    for name in index:
        if _listed(index, name) and name not in skipped and not (root / name).is_dir():
            raise Qua2Error(
                f"{root} has no {name}/ folder although model_index.json lists one; copy the "
                "missing folder or re-save the pipeline with save_pretrained()."
            )
    return _from_pretrained(pipeline_class, root, family, dtype, skipped)


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


def _check_class(root: Path, index: dict[str, Any], family: str, expected: str) -> None:
    """The directory holds the pipeline class a named family stands for."""
    from qua2.models.registry import family_of_pipeline

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
        f"{root} holds a {found}, but family {family!r} needs a {expected} directory; load it "
        "as family auto or point to the right directory."
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
