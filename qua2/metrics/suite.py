"""One entry point for a study's evaluator: images in, a flat ``{metric: float}`` dict out.

Metric names (all floats; a key is present only when its inputs were given):

=================  ===========================================================  ===========
key                meaning                                                      better
=================  ===========================================================  ===========
``digits_fid``     Fréchet distance of digits-classifier features vs all 1797   lower
                   real digits (Heusel et al., 2017, on qua2's own features)
``fid``            Inception FID vs the user's real images (local weights)      lower
``fd_clip``        Fréchet distance of CLIP image features (local CLIP)         lower
``class_accuracy`` share of images the digits classifier assigns their label    higher
``clip_score``     100·max(cos(image, prompt), 0), mean (Hessel et al., 2021)   higher
``psnr``           dB vs the FP images of the same seeds; ∞ if identical        higher
``ssim``           mean SSIM vs the FP images (Wang et al., 2004)               higher
``mse``            mean squared pixel error vs the FP images ([-1, 1] scale)    lower
``n_images``       number of images scored                                      —
=================  ===========================================================  ===========

Distribution metrics depend on the sample count: compare configs only at equal ``n_images``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import torch

from qua2.errors import Qua2Error
from qua2.metrics.classifier import DigitsClassifier, load_digits_classifier
from qua2.metrics.digits import load_digits_images
from qua2.metrics.fidelity import mse, psnr, ssim
from qua2.metrics.frechet import FrechetScorer, _check_images
from qua2.metrics.per_image import ImageScores
from qua2.metrics.registry import METRICS
from qua2.paths import cache_dir

if TYPE_CHECKING:
    from qua2.metrics.clip import ClipScorer


class MetricSuite:
    """A fixed set of metrics, with their networks and reference statistics loaded once.

    ``frechet`` maps an output key (``"digits_fid"``, ``"fid"`` …) to a :class:`FrechetScorer`;
    ``classifier`` adds ``class_accuracy`` when labels are given; ``clip`` (a
    :class:`~qua2.metrics.clip.ClipScorer`) adds ``clip_score`` when prompts are given.
    """

    def __init__(self, frechet: Mapping[str, FrechetScorer] | None = None,
                 classifier: DigitsClassifier | None = None,
                 clip: ClipScorer | None = None) -> None:
        self.frechet = dict(frechet or {})
        self.classifier = classifier
        self.clip = clip

    @classmethod
    def for_digits(cls, seed: int = 0, device: torch.device | str = "cpu") -> MetricSuite:
        """digits_fid + class_accuracy from the cached digits classifier, + paired fidelity."""
        clf = load_digits_classifier(seed=seed, device=device)
        real, _ = load_digits_images()
        return cls({"digits_fid": FrechetScorer(clf, real)}, classifier=clf)

    @classmethod
    def for_real_images(cls, reference: torch.Tensor | Iterable[torch.Tensor],
                        data_key: str | None = None, inception_weights: str | None = None,
                        clip_model: str | None = None,
                        device: torch.device | str = "cpu") -> MetricSuite:
        """Inception ``fid`` and ``clip_score`` for text-to-image or class-to-image models.

        ``inception_weights`` / ``clip_model`` default to ``$QUA2_INCEPTION_WEIGHTS`` /
        ``$QUA2_CLIP_MODEL``. Missing Inception weights raise a :class:`Qua2Error` naming the
        variable; without a CLIP model the suite has no ``clip_score``. ``reference`` is a
        tensor of real images or an iterable of batches (then ``data_key`` names the data set
        for the cache).
        """
        from qua2.metrics.clip import CLIP_ENV, ClipScorer
        from qua2.metrics.inception import InceptionFeatures

        inception = InceptionFeatures.from_config(inception_weights, device=device)
        # CLIP is optional (class-conditioned models have no prompts); score() names the
        # variable to set if prompts arrive without it.
        clip = (ClipScorer.from_config(clip_model, device=device)
                if clip_model is not None or os.environ.get(CLIP_ENV) else None)
        return cls({"fid": FrechetScorer(inception, reference, data_key)}, clip=clip)

    def score(self, images: torch.Tensor, labels: Sequence[int] | torch.Tensor | None = None,
              fp_images: torch.Tensor | None = None,
              prompts: Sequence[str] | None = None) -> dict[str, float]:
        """Every metric this suite can compute from what is given (see the module table)."""
        return self.image_scores(images, labels, fp_images, prompts).aggregate()

    def image_scores(self, images: torch.Tensor,
                     labels: Sequence[int] | torch.Tensor | None = None,
                     fp_images: torch.Tensor | None = None,
                     prompts: Sequence[str] | None = None) -> ImageScores:
        """The per-image ingredients of :meth:`score`, for bootstrap resampling."""
        _check_images(images)
        out = ImageScores(len(images), frechet=self.frechet)
        for key, scorer in self.frechet.items():
            out.features[key] = scorer.features(images)
        if labels is not None:
            if self.classifier is None:
                raise Qua2Error("labels were given but this metric suite has no classifier; "
                                "use MetricSuite.for_digits() for class accuracy.")
            out.per_image["class_accuracy"] = self.classifier.correct(
                images, torch.as_tensor(labels)).numpy()
        if prompts is not None:
            if self.clip is None:
                raise Qua2Error("prompts were given but this metric suite has no CLIP model; "
                                "configure one with clip_model= or $QUA2_CLIP_MODEL.")
            out.per_image["clip_score"] = _numpy(self.clip.score_per_image(images, prompts))
        if fp_images is not None:  # paired metrics, from the registry (mse, ssim, any added)
            for spec in METRICS.values():
                if spec.per_image is not None:
                    values = spec.per_image_function()(images, fp_images)
                    out.per_image[spec.name] = _numpy(torch.as_tensor(values))
        return out


def _numpy(values: torch.Tensor) -> np.ndarray:
    return values.detach().cpu().double().numpy()


def paired_fidelity(images: torch.Tensor, fp_images: torch.Tensor) -> dict[str, float]:
    """``psnr``, ``ssim`` and ``mse`` of images against the FP images of the same seeds."""
    return {"psnr": psnr(images, fp_images), "ssim": ssim(images, fp_images),
            "mse": mse(images, fp_images)}


@lru_cache(maxsize=4)
def _digits_suite(seed: int, cache_root: str) -> MetricSuite:
    # Keyed by the cache directory too, so changing $QUA2_CACHE_DIR never reuses a stale suite.
    return MetricSuite.for_digits(seed=seed)


def score_images(images: torch.Tensor, labels: Sequence[int] | torch.Tensor | None = None,
                 fp_images: torch.Tensor | None = None, *, suite: MetricSuite | None = None,
                 prompts: Sequence[str] | None = None) -> dict[str, float]:
    """Score generated images; with no ``suite``, the digits suite (loaded once per process).

    >>> score_images(images, labels, fp_images)   # doctest: +SKIP
    {'n_images': 256.0, 'digits_fid': 3.1, 'class_accuracy': 0.98, 'psnr': 31.2, ...}
    """
    suite = suite or _digits_suite(0, str(cache_dir()))
    return suite.score(images, labels=labels, fp_images=fp_images, prompts=prompts)
