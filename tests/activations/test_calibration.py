"""Calibration sets drawn through a tiny adapter, and static ranges calibrated on them."""

from __future__ import annotations

import pytest
import torch

import qua2.activations.calibration_sets as calibration_module
from qua2.activations import (
    ActivationSetting,
    CalibrationSet,
    build_calibration_set,
    calibrate_ranges,
    calibration_set,
    quantized_activations,
)
from qua2.activations.calibration_sets import draw_step_indices
from qua2.errors import Qua2Error

LABELS = list(range(10))


def _sampler_timesteps(adapter, steps):
    import copy

    scheduler = copy.deepcopy(adapter.scheduler)
    scheduler.set_timesteps(steps)
    return scheduler


def test_timestep_convention_and_ndtc_bias():
    grid = torch.arange(999, -1, -50)  # a 20-step sampler, noisiest first
    gen = torch.Generator().manual_seed(0)
    idx = draw_step_indices("ndtc", 20_000, grid, 1000, gen)
    t = grid[idx].float()
    # t = 0 is clean: NDTC (mean 0.4·T) puts more samples on the clean half than the noisy one.
    assert (t < 500).float().mean() > 0.55
    assert 380 < t.mean() < 480
    assert (draw_step_indices("single_step", 5, grid, 1000, gen) == 0).all()
    uniform = grid[draw_step_indices("uniform", 20_000, grid, 1000, gen)].float()
    assert abs(uniform.mean().item() - grid.float().mean().item()) < 10


def test_single_step_is_the_first_reverse_step(dit_adapter):
    calib = build_calibration_set(dit_adapter, "single_step", LABELS, size=6, seed=3, steps=10)
    assert (calib.timesteps == 999).all()
    noise = torch.randn((6, 1, 8, 8), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(calib.inputs, noise)  # DDIM: init sigma 1, identity scaling
    assert calib.cond["class_labels"].tolist() == [0, 1, 2, 3, 4, 5]


def test_samples_come_from_the_fp_sampler(dit_adapter):
    steps = 5
    calib = build_calibration_set(dit_adapter, "uniform", LABELS, size=8, seed=1, steps=steps)
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn((8, 1, 8, 8), generator=gen)
    scheduler = _sampler_timesteps(dit_adapter, steps)
    latents = noise.clone()
    expected = {}
    with torch.no_grad():
        for t in scheduler.timesteps:
            expected[int(t)] = latents.clone()
            out = dit_adapter.denoise(latents, t, dit_adapter.encode_conditions(LABELS[:8]))
            latents = scheduler.step(out, t, latents, return_dict=False)[0]
    for i, t in enumerate(calib.timesteps.tolist()):
        # The builder's own trajectory code vs this loop: the same steps by another code path,
        # so float32 rounding (~1e-6 after 5 steps) is allowed; a wrong timestep or sample
        # would be off by O(0.1).
        torch.testing.assert_close(calib.inputs[i], expected[t][i], atol=1e-5, rtol=1e-5)


def test_deterministic_for_a_seed(dit_adapter):
    a = build_calibration_set(dit_adapter, "ndtc", LABELS, size=8, seed=7, steps=5)
    b = build_calibration_set(dit_adapter, "ndtc", LABELS, size=8, seed=7, steps=5)
    c = build_calibration_set(dit_adapter, "ndtc", LABELS, size=8, seed=8, steps=5)
    # The same build repeated in one process: bit-identical.
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.timesteps, b.timesteps)
    assert not torch.equal(a.inputs, c.inputs)


def test_real_data_is_forward_noised(dit_adapter):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(40, 1, 8, 8, generator=gen) * 2 - 1
    labels = [i % 10 for i in range(40)]
    calib = build_calibration_set(dit_adapter, "real", labels, size=40, seed=0, steps=10,
                                  real_images=images)
    assert sorted(calib.cond["class_labels"].tolist()) == sorted(labels)
    alphas = dit_adapter.scheduler.alphas_cumprod[calib.timesteps].view(-1, 1, 1, 1)
    # Recover ε from x_t = √ᾱ·x₀ + √(1-ᾱ)·ε by matching every sample to its image.
    best = []
    for i in range(40):
        eps = (calib.inputs[i] - alphas[i].sqrt() * images) / (1 - alphas[i]).sqrt()
        best.append(eps.flatten(1).pow(2).mean(1).min().item())
    assert 0.5 < sum(best) / len(best) < 1.5  # the ε of the right image is standard normal


def test_cache_round_trip(dit_adapter, tmp_path, monkeypatch):
    first = calibration_set(dit_adapter, "uniform", LABELS, cache_dir=tmp_path, size=4, steps=3)
    files = list(tmp_path.glob("calib-uniform-*.safetensors"))
    assert len(files) == 1

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached set should have been loaded")

    monkeypatch.setattr(calibration_module, "build_calibration_set", no_rebuild)
    second = calibration_set(dit_adapter, "uniform", LABELS, cache_dir=tmp_path, size=4, steps=3)
    assert torch.equal(first.inputs, second.inputs)
    assert torch.equal(first.cond["class_labels"], second.cond["class_labels"])
    assert second.meta["timestep_convention"].startswith("t=0 is clean")
    files[0].write_bytes(b"not a safetensors file")
    with pytest.raises(Qua2Error, match="is damaged"):
        calibration_set(dit_adapter, "uniform", LABELS, cache_dir=tmp_path, size=4, steps=3)


def test_nested_conditions_survive_storage(tmp_path):
    cond = {"encoder_hidden_states": torch.randn(3, 2, 4),
            "added_cond_kwargs": {"resolution": None, "aspect_ratio": None}}
    calib = CalibrationSet(torch.randn(3, 4, 8, 8), torch.tensor([999, 500, 500]), cond, "ndtc")
    loaded = CalibrationSet.load(calib.save(tmp_path / "c.safetensors"))
    assert loaded.cond["added_cond_kwargs"] == {"resolution": None, "aspect_ratio": None}
    assert torch.equal(loaded.cond["encoder_hidden_states"], cond["encoder_hidden_states"])
    batches = list(loaded.batches(batch_size=8))
    assert [int(t) for _, t, _ in batches] == [500, 999]
    assert batches[0][2]["encoder_hidden_states"].shape == (2, 2, 4)


@pytest.mark.parametrize(("method", "kwargs", "message"), [
    ("ndtcc", {}, "unknown calibration method 'ndtcc'"),
    ("ndtc", {"size": 0}, "the calibration set cannot be empty"),
    ("real", {}, "real-data calibration needs real_images"),
    ("real", {"real_images": torch.zeros(3, 1, 8, 8)}, "one condition per real image"),
])
def test_bad_requests_are_rejected(dit_adapter, method, kwargs, message):
    with pytest.raises(Qua2Error, match=message):
        build_calibration_set(dit_adapter, method, LABELS, **kwargs)
    with pytest.raises(Qua2Error, match="at least one condition"):
        build_calibration_set(dit_adapter, "ndtc", [], size=2)


def _error(adapter, setting, ranges, x, t, cond):
    with torch.no_grad():
        reference = adapter.denoise(x, t, cond)
        with quantized_activations(adapter.module, None, setting, ranges):
            out = adapter.denoise(x, t, cond)
    return (out - reference).pow(2).mean().item()


def test_static_ranges_calibrate_and_apply(dit_adapter):
    calib = build_calibration_set(dit_adapter, "ndtc", LABELS, size=16, seed=0, steps=5)
    a8 = ActivationSetting(bits=8, mode="static", calibration="ndtc", qkv_bits=8, softmax_bits=8)
    ranges = calibrate_ranges(dit_adapter, calib, a8, max_values=4096)
    again = calibrate_ranges(dit_adapter, calib, a8, max_values=4096)
    assert ranges.ranges.keys() == again.ranges.keys()
    assert all(torch.equal(ranges.ranges[k], again.ranges[k]) for k in ranges.ranges)
    assert ranges.meta["calibration"] == "ndtc" and ranges.meta["samples"] == 16
    a4 = ActivationSetting(bits=4, mode="static", calibration="ndtc")
    ranges4 = calibrate_ranges(dit_adapter, calib, a4, max_values=4096)
    x, t, cond = next(calib.batches(8))
    assert _error(dit_adapter, a8, ranges, x, t, cond) < _error(dit_adapter, a4, ranges4, x, t,
                                                                cond)


def test_timestep_groups_and_fallback(dit_adapter, tmp_path):
    single = build_calibration_set(dit_adapter, "single_step", LABELS, size=4, steps=5)
    grouped = ActivationSetting(bits=8, mode="static", calibration="single_step",
                                timestep_groups=4)
    ranges = calibrate_ranges(dit_adapter, single, grouped, max_values=2048)
    site = next(iter(ranges.ranges))
    assert ranges.ranges[site].shape == (4, 2)
    # Only the noisiest group saw data (t = 999); the others fall back to the pooled range.
    assert torch.equal(ranges.ranges[site][0], ranges.ranges[site][3])
    loaded = type(ranges).load(ranges.save(tmp_path / "r.safetensors"))
    assert torch.equal(loaded.ranges[site], ranges.ranges[site]) and loaded.groups == 4
    x, _, cond = next(single.batches(4))
    mixed = torch.tensor([10, 999])
    with quantized_activations(dit_adapter.module, None, grouped, ranges), \
            pytest.raises(Qua2Error, match="mixes timesteps"):
        dit_adapter.module(x[:2], mixed, class_labels=cond["class_labels"][:2])


def test_dynamic_settings_are_not_calibrated(dit_adapter):
    calib = build_calibration_set(dit_adapter, "single_step", LABELS, size=2, steps=3)
    with pytest.raises(Qua2Error, match="only static activation settings are calibrated"):
        calibrate_ranges(dit_adapter, calib, ActivationSetting(bits=8))
