"""The trained digits models shipped in the repository, so every machine uses the same weights.

Training the embedded denoisers on each machine gave each machine its own model: float results
of training differ in the last bits between CPUs, and after 1500 steps that is another model,
whose study numbers differ by more than their bootstrap intervals (issue 19). So the weights
qua2 documents its numbers with are files in the package (``qua2/shipped_weights/``), loaded and
checked against the SHA-256 in ``manifest.json`` before use:

- the two denoisers, as float16 safetensors (a few MB; float16 holds every weight exactly once
  it is the shipped value, and the model runs in the study's dtype after loading);
- the digits metric classifier (digits-FID features, class accuracy) in float32 (0.3 MB).

The manifest also holds the key the weights were trained under (architecture and recipe, or
classifier settings and data digest). A default-recipe load uses the shipped file; any other
recipe, ``train_steps`` or ``retrain: true`` trains as before into the user cache. Re-make the
files with ``python -m qua2.models.ship_digits`` (trains from the recipes; minutes on a CPU).
This module is in the base layer so that models (denoisers) and metrics (classifier) share it.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch

from qua2.errors import Qua2Error
from qua2.paths import sha256_file
from qua2.version import __version__

SHIPPED_DIR = Path(__file__).parent / "shipped_weights"
MANIFEST = SHIPPED_DIR / "manifest.json"
#: Shipped file → dtype it is stored in.
DTYPES = {"digits-dit": torch.float16, "digits-unet": torch.float16,
          "digits-classifier-s0": torch.float32}


def shipped_state(name: str, key: dict[str, Any]
                  ) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The shipped float32 state dict of ``name`` trained under ``key`` and its manifest entry;
    None if no file was shipped for that key.

    A shipped file whose checksum fails is refused with one sentence: training a replacement
    would silently give another model than the documented one.
    """
    entry = _manifest().get(name)
    if entry is None or entry.get("key") != json.loads(json.dumps(key, default=list)):
        return None
    path = SHIPPED_DIR / entry["file"]
    if not path.is_file() or sha256_file(path) != entry["sha256"]:
        raise Qua2Error(f"the shipped weights {path} are missing or damaged (SHA-256 mismatch); "
                        "restore them with `git checkout -- qua2/shipped_weights` (or reinstall "
                        "qua2), or pass model.options: {retrain: true} to train a new model.")
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(path).items()}, entry


def _manifest() -> dict[str, Any]:
    if not MANIFEST.is_file():
        return {}
    data = json.loads(MANIFEST.read_text())
    return data if isinstance(data, dict) else {}


def ship(name: str, state: dict[str, torch.Tensor], key: dict[str, Any],
         extra: dict[str, Any] | None = None) -> Path:
    """Write ``state`` as the shipped file of ``name`` and record it in the manifest."""
    from safetensors.torch import save_file

    SHIPPED_DIR.mkdir(exist_ok=True)
    path = SHIPPED_DIR / f"{name}.safetensors"
    save_file({k: v.detach().to(DTYPES[name]).contiguous() for k, v in state.items()}, path)
    manifest = _manifest()
    manifest[name] = {"file": path.name, "sha256": sha256_file(path),
                      "dtype": str(DTYPES[name]).removeprefix("torch."),
                      "key": json.loads(json.dumps(key, default=list)),
                      "made_with": {"qua2": __version__, "torch": torch.__version__,
                                    "machine": platform.processor() or platform.machine(),
                                    "command": "python -m qua2.models.ship_digits"},
                      **(extra or {})}
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path
