"""``family: auto``: any diffusers pipeline, driven through its own ``__call__``.

Tiny pipelines (real component classes, random weights, saved to disk) of the named families
(:mod:`tests.fixtures.tiny_pipelines`) and of families qua2 has no name for
(:mod:`tests.fixtures.tiny_auto_pipelines`) must load, sample deterministically, trace, quantize
and calibrate with no code of their own. The named families' images against those of qua2's
former hand-written adapters: tests/models/test_pipelines.py.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from qua2.errors import Qua2Error
from qua2.graph.tracer import trace_adapter
from qua2.models import load_model
from qua2.models.families.auto import CallSignature, PipelineAdapter, PromptCache
from tests.fixtures.tiny_auto_pipelines import (
    AUTO_TINY_FAMILIES,
    TINY_AUTO_RESOLUTION,
    save_tiny_auto_pipeline,
)

#: See tests/models/test_pipelines.py: two different float32 computations of the same images
#: (the pipeline's own loop vs the family adapter's, other batch shapes) agree to ~1.6e-5;
#: 1e-4 leaves headroom and stays 500× below the difference between two prompts' images.
IMAGE_ATOL = 1e-4
#: What two tiny directories need: PixArt and Hunyuan-DiT bin resolutions to their published
#: sizes (64 px has no bin).
AUTO_OPTIONS = {
    "pixart-alpha": {"call_options": {"use_resolution_binning": False}},
    "hunyuan-dit": {"call_options": {"use_resolution_binning": False}},
}


def conditions_for(adapter: PipelineAdapter, n: int = 3) -> list:
    pool = ["a red cat", "the blue sea", "green hills"] if adapter.conditioning == "text" \
        else [0, 2, 1]
    return [pool[i % len(pool)] for i in range(n)]


def load_auto(directory: Path, family: str) -> PipelineAdapter:
    adapter = load_model("auto", directory, resolution=64, **AUTO_OPTIONS.get(family, {}))
    assert isinstance(adapter, PipelineAdapter)
    return adapter


# --------------------------------------------------------------------- sampling
@pytest.mark.parametrize("family", ["sd15", "dit"])
def test_images_repeat_bit_identically_and_do_not_depend_on_batching(saved, family):
    adapter = load_auto(saved(family), family)
    conditions, seeds = conditions_for(adapter, 3), [5, 6, 7]
    first = adapter.generate(conditions, seeds, steps=2, batch_size=3)
    assert torch.equal(first, adapter.generate(conditions, seeds, steps=2, batch_size=3))
    one_by_one = adapter.generate(conditions, seeds, steps=2, batch_size=1)
    torch.testing.assert_close(one_by_one, first, rtol=0, atol=IMAGE_ATOL)


def test_noise_is_the_seed_and_a_mismatch_is_refused(saved):
    adapter = load_auto(saved("dit"), "dit")
    noise = adapter.initial_noise([3, 4])
    assert noise.tolist() == [[3], [4]]
    adapter.generate([0, 1], [3, 4], steps=1, noise=noise)
    with pytest.raises(ValueError, match="seeds themselves"):
        adapter.generate([0, 1], [3, 5], steps=1, noise=noise)


@contextlib.contextmanager
def counting_text_encoder_calls(adapter: PipelineAdapter) -> Iterator[dict[str, int]]:
    """Count forward calls of every text encoder of the pipeline inside the block."""
    counts: dict[str, int] = {}
    handles = []
    for name, component in adapter.pipeline.components.items():
        if name.startswith("text_encoder") and isinstance(component, torch.nn.Module):
            counts[name] = 0
            handles.append(component.register_forward_pre_hook(
                lambda *_, name=name: counts.__setitem__(name, counts[name] + 1)))
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()


def test_text_encoders_run_once_for_every_configuration(saved):
    adapter = load_auto(saved("sdxl"), "sdxl")
    conditions = conditions_for(adapter, 4)
    with counting_text_encoder_calls(adapter) as calls:
        first = adapter.generate(conditions, [0, 1, 2, 3], steps=2, batch_size=2)
    assert set(calls) == {"text_encoder", "text_encoder_2"} and min(calls.values()) > 0
    with counting_text_encoder_calls(adapter) as again:
        second = adapter.generate(conditions, [0, 1, 2, 3], steps=2, batch_size=2)
    assert again == {"text_encoder": 0, "text_encoder_2": 0}
    assert torch.equal(first, second)


@pytest.mark.parametrize("family", ["sd15", "flux", "dit"])
def test_traced_graph_holds_every_weight_layer_once(saved, family):
    adapter = load_auto(saved(family), family)
    layers = trace_adapter(adapter).layers()
    assert sorted(layers) == sorted(adapter.quantizable_layers())
    assert len(layers) == len(set(layers))


# --------------------------------------------------------------------- families with no adapter
IMAGE_FAMILIES = [f for f in AUTO_TINY_FAMILIES if f != "wan"]  # Wan: video, tested below


@pytest.fixture(scope="module")
def new_family(tmp_path_factory):
    """family → its tiny pipeline loaded with ``family: auto`` (built on first use)."""
    cache: dict[str, PipelineAdapter] = {}

    def get(family: str) -> PipelineAdapter:
        if family not in cache:
            directory = save_tiny_auto_pipeline(family, tmp_path_factory.mktemp(family))
            adapter = load_model("auto", directory, resolution=TINY_AUTO_RESOLUTION[family])
            assert isinstance(adapter, PipelineAdapter)
            cache[family] = adapter
        return cache[family]

    return get


@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_new_family_samples_deterministically_and_traces_every_layer_once(new_family, family,
                                                                          tmp_path):
    from qua2.quant.cache import OptionCache
    from qua2.specs import QuantOption, SearchSpace

    adapter = new_family(family)
    # Word-level tiny tokenizers know single letters only: these prompts differ in tokens.
    conditions, seeds = ["a b c", "d e", "f g h"], [0, 1, 2]
    images = adapter.generate(conditions, seeds, steps=2, batch_size=2)
    assert images.shape[0] == 3 and torch.isfinite(images).all()
    assert torch.equal(images, adapter.generate(conditions, seeds, steps=2, batch_size=2))
    torch.testing.assert_close(adapter.generate(conditions[:1], seeds[:1], steps=2),
                               images[:1], rtol=0, atol=IMAGE_ATOL)
    assert (images[0] - images[1]).abs().max() > 0.05
    layers = trace_adapter(adapter).layers()
    assert sorted(layers) == sorted(adapter.quantizable_layers())
    assert len(set(layers)) == len(layers)
    cache = OptionCache.build(adapter.module, SearchSpace((QuantOption("uaq", 4),)),
                              tmp_path / "cache", progress=False)
    assert set(cache.layers) == set(layers) and cache.last_build.computed == len(layers)


def test_video_pipeline_gives_the_strip_of_its_frames(tmp_path):
    directory = save_tiny_auto_pipeline("wan", tmp_path / "wan")
    adapter = load_model("auto", directory, resolution=32, frames=5)
    assert isinstance(adapter, PipelineAdapter) and adapter.signature.video
    conditions, seeds = ["a b c", "d e"], [0, 1]
    videos = adapter.generate(conditions, seeds, steps=2)
    assert videos.shape == (2, 3, 32, 5 * 32)  # five 32-px frames side by side
    assert torch.equal(videos, adapter.generate(conditions, seeds, steps=2))
    torch.testing.assert_close(adapter.generate(conditions[:1], seeds[:1], steps=2), videos[:1],
                               rtol=0, atol=IMAGE_ATOL)
    first, last = videos[0, :, :, :32], videos[0, :, :, -32:]
    assert (first - last).abs().max() > 0  # frames differ: a video, not one image repeated
    layers = trace_adapter(adapter).layers()
    assert sorted(layers) == sorted(adapter.quantizable_layers())


def test_frames_option_is_refused_for_image_pipelines(saved):
    with pytest.raises(Qua2Error, match="generates images, not video"):
        load_model("auto", saved("dit"), resolution=64, frames=4)


# --------------------------------------------------------------------- activation calibration
def test_calls_at_a_step_are_the_denoisers_inputs_at_that_timestep(saved):
    adapter = load_auto(saved("sd15"), "sd15")
    timesteps = adapter.sampler_timesteps(4)  # PNDM's PLMS steps: 5 timesteps for 4 steps
    for step, t in enumerate(timesteps.tolist()):
        calls = adapter.calls_at_step("a red cat", 3, 4, step=step)
        assert len(calls) == 1  # SD1.5 batches both guidance branches into one call
        assert calls[0].args[0].shape[0] == 2 and int(calls[0].args[1]) == t


@pytest.mark.parametrize("family", ["sd15", "dit"])
def test_static_activation_ranges_calibrate_through_the_pipeline(saved, family, tmp_path):
    from qua2.activations.prepare import prepare_activations
    from qua2.activations.setting import ActivationSetting

    adapter = load_auto(saved(family), family)
    setting = ActivationSetting(bits=6, mode="static", calibration="ndtc", calibration_size=4,
                                timestep_groups=2)
    conditions = conditions_for(adapter, 2)
    prepared = prepare_activations(adapter, setting, conditions=conditions, cache_dir=tmp_path,
                                   steps=4, seed=0)
    assert prepared.ranges is not None and len(prepared.ranges.ranges) > 0
    again = prepare_activations(adapter, setting, conditions=conditions, cache_dir=tmp_path,
                                steps=4, seed=0)  # from the cache: same ranges
    assert all(torch.equal(again.ranges.ranges[k], v) for k, v in prepared.ranges.ranges.items())
    fp = adapter.generate(conditions, [0, 1], steps=4)
    with prepared.apply(adapter.module):
        quantized = adapter.generate(conditions, [0, 1], steps=4)
    assert 0 < (quantized - fp).abs().max() < 1.0


def test_real_image_calibration_is_refused_for_pipelines(saved):
    from qua2.activations.prepare import pipeline_calibration_calls

    adapter = load_auto(saved("dit"), "dit")
    with pytest.raises(Qua2Error, match="choose ndtc, uniform or single_step"):
        pipeline_calibration_calls(adapter, "real", [0], size=2, seed=0, steps=2)


# --------------------------------------------------------------------- prompt cache
def test_prompt_cache_reuses_plain_calls_and_skips_tensor_ones():
    calls = []

    def encode(prompt, device=None, prompt_embeds=None):
        calls.append(prompt)
        return torch.full((1, 2), float(len(calls))), None

    cache = PromptCache(encode)
    first, _ = cache(["a"], device=torch.device("cpu"))
    first.add_(100)  # a caller editing its copy must not reach the cache
    again, _ = cache(["a"], device=torch.device("cpu"))
    assert again.tolist() == [[1.0, 1.0]] and calls == [["a"]]
    cache(["b"])
    cache(["a"], prompt_embeds=torch.zeros(1))  # precomputed tensors: not cached
    assert len(calls) == 3 and (cache.hits, cache.misses) == (1, 2)


def test_prompt_cache_stays_within_its_memory_bound():
    cache = PromptCache(lambda prompt: torch.zeros(256), max_bytes=2048)  # 1 KiB per entry
    for prompt in "abcd":
        cache(prompt)
    assert len(cache.entries) == 2 and cache.misses == 4
    cache("d")
    assert cache.hits == 1  # the newest stayed
    cache("a")
    assert cache.misses == 5  # the oldest went


# --------------------------------------------------------------------- refusals
class _FakePipeline:
    """Enough of a diffusers pipeline for :class:`CallSignature` checks."""

    scheduler = None

    @property
    def components(self) -> dict:
        return {}

    def set_progress_bar_config(self, **_):
        pass


def test_pipeline_without_generator_is_refused():
    class NoGenerator(_FakePipeline):
        def __call__(self, prompt, num_inference_steps=2, output_type="pil"):
            raise AssertionError("never called")

    with pytest.raises(Qua2Error, match="takes no generator"):
        PipelineAdapter(NoGenerator())


def test_pipeline_without_a_denoiser_is_refused():
    class NoDenoiser(_FakePipeline):
        def __call__(self, prompt, generator=None, num_inference_steps=2, output_type="pil"):
            raise AssertionError("never called")

    with pytest.raises(Qua2Error, match="has no diffusers denoiser model"):
        PipelineAdapter(NoDenoiser())


def test_unconditioned_pipelines_are_refused():
    class Unconditioned(_FakePipeline):
        def __call__(self, generator=None, num_inference_steps=2, output_type="pil"):
            raise AssertionError("never called")

    with pytest.raises(Qua2Error, match="neither prompt nor class_labels"):
        CallSignature.of(Unconditioned()).check()


def test_pipeline_whose_images_ignore_the_seed_is_refused(saved):
    adapter = load_auto(saved("dit"), "dit")
    adapter.pipeline.scheduler = _Jittery(adapter.pipeline.scheduler)
    with pytest.raises(Qua2Error, match="different images for the same seed"):
        adapter.check_fixed_noise()


class _Jittery:
    """A scheduler that adds noise from the global generator (not the per-image one)."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def step(self, *args, **kwargs):
        out = self.inner.step(*args, **kwargs)
        sample = out[0] if isinstance(out, tuple) else out.prev_sample
        noisy = sample + 0.1 * torch.randn_like(sample)
        return (noisy,) if isinstance(out, tuple) else SimpleNamespace(prev_sample=noisy)


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing", "does not exist"),
    (lambda d: d, "no model_index.json"),
    (lambda d: _index(d, {"_class_name": "NotAPipeline"}), "not a pipeline class"),
    (lambda d: _index(d, {"_class_name": "DiTPipeline", "transformer": ["diffusers", "x"]}),
     "no transformer/ folder"),
])
def test_directories_that_are_not_pipelines_are_refused(tmp_path, make, message):
    with pytest.raises(Qua2Error, match=message):
        load_model("auto", make(tmp_path))


def _index(directory: Path, index: dict) -> Path:
    (directory / "model_index.json").write_text(json.dumps(index))
    return directory


def test_unknown_option_names_the_valid_ones(saved):
    with pytest.raises(Qua2Error, match=r"valid options: .*call_options"):
        load_model("auto", saved("dit"), resolutoin=64)
