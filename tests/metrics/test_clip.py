"""CLIP score on a tiny random CLIP saved to a temp dir with an offline-built tokenizer."""

import pytest
import torch

from qua2.errors import Qua2Error
from qua2.metrics import FrechetScorer
from qua2.metrics.clip import ClipScorer


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


def test_image_only_clip_without_tokenizer(tmp_path, tiny_clip_saver):
    tiny_clip_saver(tmp_path, with_tokenizer=False)
    scorer = ClipScorer.from_pretrained(tmp_path)
    images = torch.zeros(2, 3, 32, 32)
    with pytest.raises(Qua2Error, match="no tokenizer"):
        scorer.score(images, ["a", "b"])
    assert 0 <= scorer.score(images, text_embeddings=torch.randn(2, 16)) <= 100
