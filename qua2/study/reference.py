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

from qua2.errors import Qua2Error
from qua2.io import DamagedArtifactError, bytes_digest, load_safetensors, write_safetensors
from qua2.log import say
from qua2.study.study import Study


@dataclass
class Reference:
    """FP images of one seed list, the initial noise they came from, and their conditions."""

    images: torch.Tensor
    noise: torch.Tensor
    seeds: list[int]
    conditions: list

    def slice(self, start: int, stop: int) -> Reference:
        """The images, noise, seeds and conditions ``start:stop``."""
        return Reference(self.images[start:stop], self.noise[start:stop], self.seeds[start:stop],
                         self.conditions[start:stop])

    def save(self, path: Path) -> None:
        tensors = {"images": self.images.contiguous(), "noise": self.noise.contiguous()}
        metadata = {"seeds": json.dumps(self.seeds), "conditions": json.dumps(self.conditions),
                    "digest": tensors_digest(tensors)}
        write_safetensors(path, tensors, metadata)  # a killed run never leaves half a file

    @classmethod
    def load(cls, path: Path) -> Reference:
        fix = "delete it and re-run to generate it again"
        tensors, metadata = load_safetensors(path, fix)
        try:
            if metadata["digest"] != tensors_digest(tensors):
                raise ValueError("digest mismatch")
            return cls(tensors["images"], tensors["noise"], json.loads(metadata["seeds"]),
                       json.loads(metadata["conditions"]))
        except (KeyError, ValueError) as error:  # a flipped bit, or a file of another format
            raise DamagedArtifactError(path, str(error).strip("'"), fix) from None


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """Digest of the exact bytes of named tensors (a corrupted file must not give numbers)."""
    from qua2.quant.store import tensor_digest

    return bytes_digest("".join(f"{k}={tensor_digest(v)};" for k, v in sorted(
        tensors.items())).encode())


def get_reference(study: Study, which: str = "sampling") -> Reference:
    """The FP reference for the sampling, selection or verification seeds; made on first use."""
    path = study.path("reference", f"{which}.safetensors")
    seeds = {"sampling": study.sampling_seeds, "selection": study.selection_seeds,
             "verification": study.verification_seeds}[which]()
    if path.exists():
        try:
            reference = Reference.load(path)
            if reference.seeds == seeds:
                return reference
        except Qua2Error as error:  # FP images are a pure function of the model and seeds
            say(f"{error.args[0].split(';')[0]}; generating it again.")
    started = time.perf_counter()
    noise = study.adapter.initial_noise(seeds)
    images = study.generate(seeds, noise=noise)
    if not torch.isfinite(images).all():
        raise Qua2Error("the full-precision model produced NaN/Inf images; check the model.")
    reference = Reference(images, noise, seeds, study.conditions(len(seeds)))
    reference.save(path)
    say(f"FP reference ({which}, {len(seeds)} images) in "
          f"{time.perf_counter() - started:.1f} s → {path}")
    return reference
