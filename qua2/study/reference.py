"""The full-precision reference: FP images for a fixed list of seeds, generated once.

Every configuration of the study is generated from the same initial noise and conditions as
these images, so fidelity metrics (PSNR, SSIM) are paired, and quality differences between
configurations are not drowned by sampling noise (common random numbers).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from qua2.errors import Qua2Error
from qua2.study.study import Study


@dataclass
class Reference:
    """FP images of one seed list, the initial noise they came from, and their conditions."""

    images: torch.Tensor
    noise: torch.Tensor
    seeds: list[int]
    conditions: list

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        metadata = {"seeds": json.dumps(self.seeds), "conditions": json.dumps(self.conditions)}
        save_file({"images": self.images.contiguous(), "noise": self.noise.contiguous()}, tmp,
                  metadata=metadata)
        tmp.replace(path)  # atomic: a killed run never leaves half a reference

    @classmethod
    def load(cls, path: Path) -> Reference:
        from safetensors import safe_open

        try:
            tensors = load_file(path)
            with safe_open(path, "pt") as handle:
                metadata = handle.metadata()
            return cls(tensors["images"], tensors["noise"], json.loads(metadata["seeds"]),
                       json.loads(metadata["conditions"]))
        except Exception as error:  # any unreadable file means the same thing to the user
            raise Qua2Error(
                f"the FP reference {path} is unreadable ({type(error).__name__}); delete it and "
                "re-run to regenerate it."
            ) from None


def reference_path(study: Study, which: str) -> Path:
    return study.path("reference", f"{which}.safetensors")


def get_reference(study: Study, which: str = "sampling") -> Reference:
    """The FP reference for the sampling or verification seeds; generated on first use."""
    path = reference_path(study, which)
    seeds = study.sampling_seeds() if which == "sampling" else study.verification_seeds()
    if path.exists():
        reference = Reference.load(path)
        if reference.seeds == seeds:
            return reference
    started = time.perf_counter()
    noise = study.adapter.initial_noise(seeds)
    images = study.generate(seeds, noise=noise)
    if not torch.isfinite(images).all():
        raise Qua2Error("the full-precision model produced NaN/Inf images; check the model.")
    reference = Reference(images, noise, seeds, study.conditions(len(seeds)))
    reference.save(path)
    print(f"qua2: FP reference ({which}, {len(seeds)} images) in "
          f"{time.perf_counter() - started:.1f} s → {path}")
    return reference
