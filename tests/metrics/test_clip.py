"""CLIP score on a tiny random CLIP saved to a temp dir with an offline-built tokenizer."""

import json

import pytest
import torch

from qua2.errors import Qua2Error
from qua2.metrics import FrechetScorer
from qua2.metrics.clip import ClipScorer


def _byte_chars() -> list[str]:
    """GPT-2/CLIP byte-to-unicode table, so every byte has a printable vocab symbol."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    return [chr(c) for c in keep] + [chr(256 + i) for i in range(len(extra))]


def _save_tiny_clip(path, with_tokenizer: bool = True) -> None:
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


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-clip")
    _save_tiny_clip(path)
    return path


def test_clip_score_runs(clip_dir):
    scorer = ClipScorer.from_pretrained(clip_dir)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 48, 40, generator=gen) * 2 - 1
    prompts = ["a red cat", "a digit", "two dogs", "seven"]
    per = scorer.score_per_image(images, prompts)
    assert per.shape == (4,) and ((per >= 0) & (per <= 100)).all()
    assert scorer.score(images, prompts) == pytest.approx(float(per.mean()))
    text = scorer.text_embeddings(prompts)
    assert scorer.score(images, text_embeddings=text) == pytest.approx(float(per.mean()))
    grey = torch.rand(3, 1, 8, 8, generator=gen) * 2 - 1  # digits-sized, grey → RGB
    assert scorer(grey).shape == (3, 16)


def test_clip_features_give_a_frechet_distance(clip_dir, real_digits):
    scorer = ClipScorer.from_pretrained(clip_dir)
    images, _ = real_digits
    fd = FrechetScorer(scorer, images[:64], use_cache=False)
    assert fd(images[:64]) == pytest.approx(0.0, abs=1e-6)
    assert fd(-images[64:128]) > fd(images[64:128])


def test_clip_from_env_and_clear_errors(clip_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("QUA2_CLIP_MODEL", raising=False)
    with pytest.raises(Qua2Error, match="QUA2_CLIP_MODEL"):
        ClipScorer.from_config()
    with pytest.raises(Qua2Error, match=r"config\.json"):
        ClipScorer.from_pretrained(tmp_path / "nowhere")
    monkeypatch.setenv("QUA2_CLIP_MODEL", str(clip_dir))
    scorer = ClipScorer.from_config()
    with pytest.raises(Qua2Error, match="one prompt per image"):
        scorer.score(torch.zeros(2, 3, 8, 8), ["only one"])
    with pytest.raises(Qua2Error, match="either prompts or text_embeddings"):
        scorer.score(torch.zeros(2, 3, 8, 8))
    with pytest.raises(Qua2Error, match=r"\[N, 1 or 3, H, W\]"):
        scorer(torch.zeros(2, 4, 8, 8))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{}")
    with pytest.raises(Qua2Error, match="could not load a CLIP model"):
        ClipScorer.from_pretrained(tmp_path / "bad")


def test_image_only_clip_without_tokenizer(tmp_path):
    _save_tiny_clip(tmp_path, with_tokenizer=False)
    scorer = ClipScorer.from_pretrained(tmp_path)
    images = torch.zeros(2, 3, 32, 32)
    with pytest.raises(Qua2Error, match="no tokenizer"):
        scorer.score(images, ["a", "b"])
    assert 0 <= scorer.score(images, text_embeddings=torch.randn(2, 16)) <= 100
