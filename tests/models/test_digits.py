import json

import pytest
import torch

from qua2.errors import Qua2Error
from qua2.models import load_model
from qua2.models.digits import DIGITS_DIT, model_dir
from qua2.models.training import TrainRecipe


def test_same_seeds_give_identical_images(tiny_digits_dit):
    a = tiny_digits_dit.generate([0, 1, 2, 3], [5, 6, 7, 8], steps=3)
    b = tiny_digits_dit.generate([0, 1, 2, 3], [5, 6, 7, 8], steps=3)
    c = tiny_digits_dit.generate([0, 1, 2, 3], [5, 6, 7, 9], steps=3)
    assert a.shape == (4, 1, 8, 8) and torch.isfinite(a).all()
    assert torch.equal(a, b)  # the same call repeated: bit-identical
    # Another batch (one seed changed) with the same shapes: images 0-2 see the same noise, so
    # they match up to float32 rounding (~1e-6 after 3 steps, 0 on every CPU setting tried);
    # 1e-5 is still 5 orders below the O(1) change of image 3, whose noise did change.
    torch.testing.assert_close(a[:3], c[:3], rtol=0, atol=1e-5)
    assert (a[3] - c[3]).abs().max() > 0.1


def test_batching_does_not_change_images(tiny_digits_unet):
    full = tiny_digits_unet.generate([1, 2, 3], [0, 1, 2], steps=3, batch_size=8)
    split = tiny_digits_unet.generate([1, 2, 3], [0, 1, 2], steps=3, batch_size=2)
    # Batches of 3 vs 2 + 1 run other GEMM/conv blockings: float32 sums round differently.
    # Seen: <= 1.2e-6 (default, 1 thread, AVX2-only kernels); 1e-5 leaves 8x headroom, and a
    # real batching bug (mixed-up noise or labels) changes pixels by O(1).
    torch.testing.assert_close(full, split, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fixture", ["tiny_digits_dit", "tiny_digits_unet"])
def test_adapter_contract(fixture, request):
    adapter = request.getfixturevalue(fixture)
    layers = adapter.quantizable_layers()
    modules = dict(adapter.module.named_modules())
    assert layers and all(isinstance(modules[n], torch.nn.Linear | torch.nn.Conv2d) for n in layers)
    example = adapter.example_inputs(batch_size=3)
    out = adapter.module(*example.args, **example.kwargs)[0]
    assert out.shape == (3, 1, 8, 8)


def test_bad_labels_rejected(tiny_digits_dit):
    with pytest.raises(Qua2Error, match="labels must be 0–9"):
        tiny_digits_dit.generate([10], [0], steps=2)


def test_cache_reused_then_corruption_retrains(tmp_path, monkeypatch, capsys):
    # A private cache and a 2-step recipe: both trainings below run in this process, so their
    # weights may be compared bit for bit (the session's model may come from a cache that
    # another machine or thread count wrote, whose weights differ in the last bits).
    monkeypatch.setenv("QUA2_CACHE_DIR", str(tmp_path))
    recipe = TrainRecipe(steps=2, warmup=1, batch_size=16)
    first = load_model("digits-dit", recipe=recipe)
    assert "training" in capsys.readouterr().err
    directory = model_dir(DIGITS_DIT, recipe)
    manifest = json.loads((directory / "manifest.json").read_text())
    again = load_model("digits-dit", recipe=recipe)
    assert "training" not in capsys.readouterr().err
    for a, b in zip(again.module.parameters(), first.module.parameters()):
        assert torch.equal(a, b)  # saved and loaded back: the same bytes
    weights = directory / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    retrained = load_model("digits-dit", recipe=recipe)
    assert "corrupted (checksum mismatch); re-training" in capsys.readouterr().err
    # Training is deterministic for a seed on one machine and thread count (the same
    # computation repeated), so the re-trained weights are bit-identical, hash included.
    assert json.loads((directory / "manifest.json").read_text())["sha256"] == manifest["sha256"]
    for a, b in zip(retrained.module.parameters(), first.module.parameters()):
        assert torch.equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["digits-dit", "digits-unet"])
def test_trained_models_draw_the_requested_digit(name):
    """The real recipe: ≥ 0.9 class accuracy at 20 DDIM steps (trains if not cached — several
    minutes; export QUA2_CACHE_DIR=~/.cache/qua2 to reuse the models `scripts/main` trained)."""
    from qua2.metrics.classifier import load_digits_classifier

    adapter = load_model(name)
    labels = [i % 10 for i in range(200)]
    images = adapter.generate(labels, list(range(200)), steps=20)
    assert load_digits_classifier().accuracy(images, torch.tensor(labels)) >= 0.9


def test_training_leaves_the_denormal_mode_as_it_found_it():
    """Training flushes denormals for speed; the process must not keep flushing afterwards
    (every later float computation — and hypothesis's own float checks — would change)."""
    from torch import nn

    from qua2.models.training import flushes_denormals, train_ddpm

    def denoise(module, noisy, t, label):
        return module(noisy)

    images, labels = torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long)
    recipe = TrainRecipe(steps=2, batch_size=2)
    assert not flushes_denormals()
    train_ddpm(nn.Conv2d(1, 1, 1), images, labels, denoise, recipe)
    assert not flushes_denormals()
    torch.set_flush_denormal(True)  # and a caller who flushes keeps flushing
    try:
        train_ddpm(nn.Conv2d(1, 1, 1), images, labels, denoise, recipe)
        assert flushes_denormals()
    finally:
        torch.set_flush_denormal(False)
