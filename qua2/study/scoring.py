"""Turn a study's metric settings into a scorer of generated images.

The embedded digits studies use the digits metric suite (digits-FID and class accuracy from
qua2's own classifier); real models add Inception FID when the study names a folder of real
images and CLIP score for prompts when it names a CLIP model, both from local weights. Fidelity
to the FP images of the same seeds (PSNR, SSIM, MSE) needs nothing and is scored for every
study, so any model can be studied without downloads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from qua2.errors import Qua2Error
from qua2.metrics.clip import CLIP_ENV
from qua2.metrics.per_image import ImageScores
from qua2.metrics.suite import MetricSuite
from qua2.study.reference import Reference
from qua2.study.study import Study

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


class Scorer:
    """Scores images generated from a reference's seeds and conditions."""

    def __init__(self, suite: MetricSuite, conditioning: str) -> None:
        self.suite = suite
        self.conditioning = conditioning

    def score(self, images: torch.Tensor, reference: Reference) -> dict[str, float]:
        """Every metric of ``images``, generated from ``reference``'s seeds and conditions."""
        return self.image_scores(images, reference).aggregate()

    def image_scores(self, images: torch.Tensor, reference: Reference) -> ImageScores:
        """The per-image ingredients of :meth:`score` (for bootstrap intervals)."""
        conditions = reference.conditions[: len(images)]
        by_kind = {"labels": conditions} if self.conditioning == "class" else \
            {"prompts": conditions}
        if self.conditioning == "class" and self.suite.classifier is None:
            by_kind = {}  # class-conditioned real models (DiT-XL/2): no classifier of ours
        if self.conditioning == "text" and self.suite.clip is None:
            by_kind = {}  # no CLIP model configured: prompt adherence is not scored
        return self.suite.image_scores(images, fp_images=reference.images[: len(images)],
                                       **by_kind)


def build_scorer(study: Study) -> Scorer:
    """The scorer the study's YAML asks for (loaded once; reference statistics cached)."""
    conditioning = study.config.conditions.kind
    from qua2.models.registry import get_family

    if get_family(study.config.model.family).scoring == "embedded":
        return Scorer(MetricSuite.for_digits(device=study.device), conditioning)
    return Scorer(_real_suite(study), conditioning)


def _real_suite(study: Study) -> MetricSuite:
    """Fidelity to the FP images always; FID when the study has real images; CLIP score for
    text studies that have a CLIP model (``metrics.clip_model`` or ``$QUA2_CLIP_MODEL``)."""
    section = study.config.metrics
    frechet = {}
    if section.reference_images:
        from qua2.metrics.frechet import FrechetScorer
        from qua2.metrics.inception import InceptionFeatures

        real = load_image_folder(Path(section.reference_images))
        inception = InceptionFeatures.from_config(section.inception_weights, study.device,
                                                  section.fid_resize)
        # data_key None: the statistics are keyed by a hash of the loaded images, so changing
        # the folder's contents can never reuse stale statistics.
        frechet["fid"] = FrechetScorer(inception, real, None)
    elif section.primary == "fid":
        raise Qua2Error(
            "metrics.reference_images is not set; point it at a folder of real images "
            "(e.g. COCO val2017) to compute FID for this model, or use metrics.primary: psnr."
        )
    clip = None
    wants_clip = section.primary == "clip_score" or bool(section.clip_model
                                                        or os.environ.get(CLIP_ENV))
    if study.config.conditions.kind == "text" and wants_clip:
        from qua2.metrics.clip import ClipScorer

        clip = ClipScorer.from_config(section.clip_model, device=study.device)
    return MetricSuite(frechet, clip=clip)


def load_image_folder(folder: Path) -> torch.Tensor:
    """Every image of ``folder`` as float32 ``[N, 3, H, W]`` in [-1, 1] (sizes must agree)."""
    import numpy as np

    if not folder.is_dir():
        raise Qua2Error(f"metrics.reference_images {folder} is not a folder of images.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise Qua2Error(f"metrics.reference_images {folder} holds no PNG/JPEG images.")
    arrays = [_read_image(f) for f in files]
    if len({a.shape for a in arrays}) > 1:
        raise Qua2Error(f"images in {folder} differ in size; resize them to one size first.")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1.0


def _read_image(path: Path) -> Any:
    """One real image as float32 HWC RGB; an unreadable file is named, not a traceback."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.float32)
    except (OSError, UnidentifiedImageError, ValueError):
        raise Qua2Error(f"{path} in metrics.reference_images is not a readable image; "
                        "replace or remove it.") from None
