"""The named diffusers families: tiny pipelines saved to disk, loaded with ``load_model(family)``.

Each pipeline (:func:`tests.fixtures.tiny_pipelines.tiny_pipeline`) has the family's real
component classes — CLIP/T5/BERT text encoders, tokenizers, ``AutoencoderKL``, scheduler — so
this is the loading path of a real checkpoint, offline. A named family is the generic
pipeline-driven adapter (qua2/models/families/auto.py) plus a check of the directory's pipeline
class; its images must be those qua2's former hand-written adapters made
(``tests/models/data/family_adapter_images.safetensors``, written by them before they were
removed).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from qua2.errors import Qua2Error
from qua2.models import load_model
from qua2.models.families import PipelineAdapter
from tests.fixtures.tiny_pipelines import TINY_PIPELINE_FAMILIES, tiny_pipeline

FAMILIES = list(TINY_PIPELINE_FAMILIES)
SEEDS = [0, 1, 0, 1]
FORMER_IMAGES = Path(__file__).parent / "data" / "family_adapter_images.safetensors"
#: 64-px tiny directories: PixArt and Hunyuan-DiT bin resolutions to their published sizes by
#: default (64 px has no bin; the former adapters did not bin).
OPTIONS = {family: {"resolution": 64} for family in FAMILIES}
for _family in ("pixart-alpha", "pixart-sigma", "hunyuan-dit"):
    OPTIONS[_family]["call_options"] = {"use_resolution_binning": False}
#: Absolute tolerance (images in [-1, 1]) between two *different* computations of the same
#: images: a model loaded from disk vs built in memory, the pipeline's loop vs the former
#: adapters' (other batch shapes, other kernels). float32 sums round differently (~1e-7
#: relative per op), grown over 2 denoising steps and the VAE: at most 1.6e-5 was seen between
#: AVX2 and AVX-512 kernels (docs/reproducibility.md). 1e-4 leaves 6x headroom and stays 500x
#: below the smallest effect these tests must see (two prompts' images differ by >= 0.05).
IMAGE_ATOL = 1e-4


def assert_same_images(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to the float32 rounding of another kernel path (see :data:`IMAGE_ATOL`)."""
    torch.testing.assert_close(actual, expected, rtol=0, atol=IMAGE_ATOL)


def _conditions(family: str) -> list:
    a, b = (0, 2) if family == "dit" else ("a red cat", "the blue sea")
    return [a, a, b, b]


@pytest.fixture(scope="module")
def loaded(saved):
    """family → (adapter loaded from its directory, images of 2 prompts × 2 seeds × 2 steps)."""
    cache: dict[str, tuple] = {}

    def get(family: str) -> tuple:
        if family not in cache:
            adapter = load_model(family, saved(family), **OPTIONS[family])
            images = adapter.generate(_conditions(family), SEEDS, steps=2)
            cache[family] = (adapter, images)
        return cache[family]

    return get


@pytest.mark.parametrize("family", FAMILIES)
def test_named_family_gives_the_former_adapters_images(loaded, family):
    """The hand-written adapters (PixArt's masks and micro-conditions, Hunyuan's rotary grid,
    SDXL's time ids, Flux's packing and shift …) and the pipeline's own ``__call__`` agree."""
    adapter, _ = loaded(family)
    condition = 2 if family == "dit" else "a red cat"
    former = load_file(FORMER_IMAGES)[family]
    assert_same_images(adapter.generate([condition], [7], steps=2)[0], former)


@pytest.mark.parametrize("family", FAMILIES)
def test_loaded_pipeline_generates_deterministic_images(loaded, family):
    adapter, images = loaded(family)
    assert isinstance(adapter, PipelineAdapter) and adapter.family == family
    assert adapter.conditioning == ("class" if family == "dit" else "text")
    assert images.shape == (4, 3, 64, 64)  # RGB through the tiny VAE (factor 8)
    assert torch.isfinite(images).all() and images.abs().max() <= 1
    # The very same call again (same model, inputs, batch and threads): bit-identical.
    assert torch.equal(images, adapter.generate(_conditions(family), SEEDS, steps=2))
    # Seeds and prompts change images far beyond the rounding tolerance of the other tests.
    assert (images[0] - images[1]).abs().max() > 100 * IMAGE_ATOL  # seeds differ
    assert (images[0] - images[2]).abs().max() > 100 * IMAGE_ATOL  # prompts differ


@pytest.mark.parametrize("family", FAMILIES)
def test_in_memory_pipeline_matches_the_loaded_one(loaded, family):
    _, images = loaded(family)
    options = {**OPTIONS[family], "sampler": "DDIMScheduler"} if family == "hunyuan-dit" \
        else OPTIONS[family]
    adapter = PipelineAdapter(tiny_pipeline(family), **options)
    # Equal weights in another instance (other allocations): on an AMD EPYC this already took
    # another kernel path and missed bit-equality (issue #13, sd3).
    assert_same_images(adapter.generate(_conditions(family), SEEDS, steps=2), images)


@pytest.mark.parametrize("family", FAMILIES)
def test_loaded_example_inputs_run_the_denoiser(loaded, family):
    adapter, _ = loaded(family)
    inputs = adapter.example_inputs(2)
    with torch.no_grad():
        out = adapter.module(*inputs.args, **{**inputs.kwargs, "return_dict": False})[0]
    assert out.shape[0] >= 2 and torch.isfinite(out).all()  # ≥: guidance doubles the batch


def test_hunyuan_dit_samples_with_ddim_unless_asked_otherwise(loaded, saved):
    adapter, _ = loaded("hunyuan-dit")
    assert type(adapter.pipeline.scheduler).__name__ == "DDIMScheduler"
    published = load_model("hunyuan-dit", saved("hunyuan-dit"), sampler="DDPMScheduler",
                           **OPTIONS["hunyuan-dit"])
    assert type(published.pipeline.scheduler).__name__ == "DDPMScheduler"


def test_loading_with_a_dtype_casts_the_pipeline(saved):
    adapter = load_model("sd15", saved("sd15"), dtype="bfloat16", resolution=64)
    assert adapter.dtype == torch.bfloat16
    images = adapter.generate(["a red cat"], [0], steps=1)
    assert images.dtype == torch.float32 and torch.isfinite(images).all()


# ------------------------------------------------------------------------------ bad directories
def _copy(saved, family: str, tmp_path: Path) -> Path:
    target = tmp_path / family
    shutil.copytree(saved(family), target)
    return target


def test_missing_directory(tmp_path):
    with pytest.raises(Qua2Error, match="does not exist"):
        load_model("pixart-alpha", tmp_path / "nowhere")


def test_no_path_given():
    with pytest.raises(Qua2Error, match="local diffusers directory"):
        load_model("sdxl")


def test_file_instead_of_directory(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(Qua2Error, match="is a file"):
        load_model("sd3", tmp_path / "model.safetensors")


def test_directory_without_model_index(tmp_path):
    with pytest.raises(Qua2Error, match="no model_index"):
        load_model("flux", tmp_path)


def test_component_folder_instead_of_pipeline(saved):
    with pytest.raises(Qua2Error, match=r"single diffusers component.*parent folder"):
        load_model("pixart-alpha", saved("pixart-alpha") / "transformer")


def test_family_directory_mismatch_names_the_right_family(saved):
    with pytest.raises(Qua2Error, match=r"PixArtAlphaPipeline.*'pixart-alpha'"):
        load_model("sdxl", saved("pixart-alpha"))
    with pytest.raises(Qua2Error, match="family 'sd15'"):
        load_model("pixart-sigma", saved("sd15"))


def test_unsupported_pipeline_class(saved, tmp_path):
    root = _copy(saved, "sd15", tmp_path)
    index = json.loads((root / "model_index.json").read_text())
    index["_class_name"] = "KandinskyPipeline"
    (root / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(Qua2Error, match=r"Kandinsky.*needs a StableDiffusionPipeline.*auto"):
        load_model("sd15", root)


def test_malformed_model_index(saved, tmp_path):
    root = _copy(saved, "sd15", tmp_path)
    (root / "model_index.json").write_text("{not json")
    with pytest.raises(Qua2Error, match="not readable JSON"):
        load_model("sd15", root)


def test_missing_component_folder(saved, tmp_path):
    root = _copy(saved, "sd15", tmp_path)
    shutil.rmtree(root / "vae")
    with pytest.raises(Qua2Error, match="no vae/ folder"):
        load_model("sd15", root)


def test_unlisted_denoiser(saved, tmp_path):
    root = _copy(saved, "sd15", tmp_path)
    index = json.loads((root / "model_index.json").read_text())
    del index["unet"]
    (root / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(Qua2Error, match=r"could not load the sd15 pipeline .*unet"):
        load_model("sd15", root)


def test_corrupt_weights(saved, tmp_path):
    root = _copy(saved, "sd15", tmp_path)
    for weights in (root / "unet").glob("*.safetensors"):
        weights.write_bytes(b"garbage")
    with pytest.raises(Qua2Error, match="could not load the sd15 pipeline"):
        load_model("sd15", root)


def test_unknown_family():
    with pytest.raises(Qua2Error, match="unknown model family 'sd4'"):
        load_model("sd4", "/tmp")


def test_unknown_loader_option(saved):
    with pytest.raises(Qua2Error, match=r"unknown option.*steps"):
        load_model("sd15", saved("sd15"), steps=3)


def test_unknown_dtype(saved):
    with pytest.raises(Qua2Error, match="unknown dtype"):
        load_model("sd15", saved("sd15"), dtype="float7")
