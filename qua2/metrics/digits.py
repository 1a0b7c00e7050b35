"""The embedded digits data: scikit-learn's 8×8 handwritten digits, as image tensors.

``sklearn.datasets.load_digits()`` ships inside scikit-learn (1797 images, 10 classes, pixel
values 0–16), so every qua2 test and default study runs without a download. The diffusion
models train on *all* images; the metric classifier is trained on a fixed, seeded, stratified
split and its accuracy is measured on the held-out part (:func:`digits_split`).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
import torch

#: Seed of the classifier's train/held-out split; changing it changes cached classifiers.
SPLIT_SEED = 0
#: Share of each class held out for measuring the classifier's accuracy.
HELD_OUT_FRACTION = 0.2


@lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    # Imported lazily: scikit-learn is heavy and `import qua2` must stay light.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


def load_digits_images() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 digits as images in [-1, 1] and their labels.

    Returns ``(images, labels)``: float32 ``[N, 1, 8, 8]`` scaled by ``x / 8 - 1`` (raw values
    are 0–16) and int64 ``[N]``. Fresh tensors on every call, so callers may modify them.
    """
    images, labels = _raw_digits()
    x = torch.from_numpy(images.copy()).unsqueeze(1) / 8.0 - 1.0
    return x, torch.from_numpy(labels.copy())


def digits_split(seed: int = SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed stratified split of the digits: ``(train_idx, held_out_idx)`` as int64 tensors.

    Each class keeps ``HELD_OUT_FRACTION`` of its images (rounded) for held-out evaluation;
    the permutation depends only on ``seed``, so the split is identical on every machine.
    """
    _, labels = _raw_digits()
    rng = np.random.default_rng(seed)
    train, held = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_held = round(len(idx) * HELD_OUT_FRACTION)
        held.append(idx[:n_held])
        train.append(idx[n_held:])
    return (torch.from_numpy(np.sort(np.concatenate(train))),
            torch.from_numpy(np.sort(np.concatenate(held))))


def tensor_digest(*tensors: torch.Tensor) -> str:
    """Short SHA-256 of tensors' shapes, dtypes and bytes; used as a cache key for data."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(f"{tuple(t.shape)}|{t.dtype}|".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()[:16]
