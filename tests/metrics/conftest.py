"""Fixtures for the metric tests: the digits classifier is trained once per session.

The session's cache lives in the temp directory that ``tests/conftest.py`` points
``$QUA2_CACHE_DIR`` at, so the user's cache is never touched; tests that corrupt or re-train a
cache use their own ``tmp_path`` instead.
"""

from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture(scope="session")
def classifier():
    from qua2.metrics.classifier import load_digits_classifier

    return load_digits_classifier()


@pytest.fixture(scope="session")
def real_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from qua2.metrics.digits import load_digits_images

    return load_digits_images()


class PixelFeatures:
    """The simplest feature extractor: flattened pixels (counts its calls for cache tests)."""

    id = "test-pixels-v1"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return images.flatten(1)


@pytest.fixture
def pixels() -> PixelFeatures:
    return PixelFeatures()


def _byte_chars() -> list[str]:
    """GPT-2/CLIP byte-to-unicode table, so every byte has a printable vocab symbol."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    return [chr(c) for c in keep] + [chr(256 + i) for i in range(len(extra))]


def save_tiny_clip(path, with_tokenizer: bool = True) -> None:
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    bos, eos = len(vocab), len(vocab) + 1
    vocab.update({"<|startoftext|>": bos, "<|endoftext|>": eos})
    path.mkdir(parents=True, exist_ok=True)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2,
                         max_position_embeddings=77, bos_token_id=bos, eos_token_id=eos,
                         pad_token_id=eos),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        CLIPModel(config).save_pretrained(path)
    if with_tokenizer:
        vocab_file, merges_file = path / "tok-vocab.json", path / "tok-merges.txt"
        vocab_file.write_text(json.dumps(vocab))
        merges_file.write_text("#version: 0.2\n")  # no merges: character-level BPE
        CLIPTokenizer(str(vocab_file), str(merges_file)).save_pretrained(path)


@pytest.fixture(scope="session")
def tiny_clip_saver():
    """The function that saves a tiny CLIP into a directory (for variants of the fixture)."""
    return save_tiny_clip


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    """A tiny random CLIP (32-d, 2 layers, 32×32 input) with tokenizer, saved to a temp dir."""
    path = tmp_path_factory.mktemp("tiny-clip")
    save_tiny_clip(path)
    return path


@pytest.fixture(scope="session")
def pth_weights(tmp_path_factory):
    """A random FID Inception state dict laid out like pt_inception-2015-12-05 (.pth)."""
    from qua2.metrics.inception import FIDInceptionV3

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = FIDInceptionV3().state_dict()
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    path = tmp_path_factory.mktemp("inception") / "pt_inception.pth"
    torch.save(state, path)
    return path
