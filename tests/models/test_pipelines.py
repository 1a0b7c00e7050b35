"""Whole tiny pipelines saved to disk and loaded back through ``load_model(family, path)``.

Each pipeline (:func:`qua2.testing.tiny_pipelines.tiny_pipeline`) has the family's real
component classes — CLIP/T5/BERT text encoders, tokenizers, ``AutoencoderKL``, scheduler — so
this is the loading path of a real checkpoint, offline, for every family (all of them together
take a few seconds once the imports are paid).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from qua2.errors import Qua2Error
from qua2.models import load_model
from qua2.models.families import PromptEmbedding, adapter_class
from qua2.testing.tiny_pipelines import TINY_PIPELINE_FAMILIES, tiny_pipeline

FAMILIES = list(TINY_PIPELINE_FAMILIES)
TEXT_FAMILIES = [f for f in FAMILIES if f != "dit"]
SEEDS = [0, 1, 0, 1]
#: Options a tiny directory needs: Flux has no sample_size, so its default is 1024 px.
OPTIONS = {"flux": {"resolution": 64}}
#: Absolute tolerance (images in [-1, 1]) between two *different* computations of the same
#: images: prompts through the text encoder vs precomputed embeddings (other text-encoder batch),
#: a model loaded from disk vs built in memory, the adapter vs the diffusers pipeline. They may
#: run other BLAS/oneDNN kernels, whose float32 sums round differently (~1e-7 relative per op),
#: grown over 2 denoising steps and the VAE: at most 1.6e-5 was seen between AVX2 and AVX-512
#: kernels (docs/reproducibility.md). 1e-4 leaves 6x headroom and stays 500x below the smallest
#: effect these tests must see (two prompts' images differ by >= 0.05; two seeds' by >= 1.5).
IMAGE_ATOL = 1e-4


def assert_same_images(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to the float32 rounding of another kernel path (see :data:`IMAGE_ATOL`)."""
    torch.testing.assert_close(actual, expected, rtol=0, atol=IMAGE_ATOL)


def _conditions(family: str) -> list:
    a, b = (0, 2) if family == "dit" else ("a red cat", "the blue sea")
    return [a, a, b, b]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """family → directory of its saved tiny pipeline (built on first use)."""
    cache: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in cache:
            cache[family] = tmp_path_factory.mktemp(family)
            tiny_pipeline(family).save_pretrained(cache[family])
        return cache[family]

    return get


@pytest.fixture(scope="module")
def loaded(saved):
    """family → (adapter loaded from its directory, images of 2 prompts × 2 seeds × 2 steps)."""
    cache: dict[str, tuple] = {}

    def get(family: str) -> tuple:
        if family not in cache:
            adapter = load_model(family, saved(family), **OPTIONS.get(family, {}))
            images = adapter.generate(_conditions(family), SEEDS, steps=2)
            cache[family] = (adapter, images)
        return cache[family]

    return get


@pytest.mark.parametrize("family", FAMILIES)
def test_loaded_pipeline_generates_deterministic_images(loaded, family):
    adapter, images = loaded(family)
    assert type(adapter) is adapter_class(family) and adapter.family == family
    assert images.shape == (4, 3, 64, 64)  # RGB through the tiny VAE (factor 8)
    assert torch.isfinite(images).all() and images.abs().max() <= 1
    # The very same call again (same model, inputs, batch and threads): bit-identical.
    assert torch.equal(images, adapter.generate(_conditions(family), SEEDS, steps=2))
    # Seeds and prompts change images far beyond the rounding tolerance of the other tests.
    assert (images[0] - images[1]).abs().max() > 100 * IMAGE_ATOL  # seeds differ
    assert (images[0] - images[2]).abs().max() > 100 * IMAGE_ATOL  # prompts differ


@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_precomputed_embeddings_give_the_prompt_images(loaded, family):
    adapter, images = loaded(family)
    embeddings = adapter.encode_prompts(["a red cat", "the blue sea"])
    assert all(isinstance(e, PromptEmbedding) for e in embeddings)
    a, b = embeddings
    # The text encoder ran on 2 prompts here and on 4 for `images`: another GEMM batch.
    assert_same_images(adapter.generate([a, a, b, b], SEEDS, steps=2), images)
    mixed = adapter.generate([a, "a red cat", b, "the blue sea"], SEEDS, steps=2)
    assert_same_images(mixed, images)


@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_text_encoders_can_be_skipped(saved, loaded, family):
    full, images = loaded(family)
    bare = load_model(family, saved(family), text_encoders=False, **OPTIONS.get(family, {}))
    assert not bare.has_text_encoders
    a, b = full.encode_prompts(["a red cat", "the blue sea"])
    bare = adapter_class(family).from_components(
        bare.module, bare.scheduler, bare.vae, negative=full.null_embedding(),
        **OPTIONS.get(family, {}))
    assert_same_images(bare.generate([a, a, b, b], SEEDS, steps=2), images)
    with pytest.raises(Qua2Error, match="no text encoders"):
        bare.generate(["a red cat"], [0], steps=1)


@pytest.mark.parametrize("family", FAMILIES)
def test_in_memory_pipeline_matches_the_loaded_one(loaded, family):
    _, images = loaded(family)
    adapter = adapter_class(family).from_pipeline(tiny_pipeline(family), **OPTIONS.get(family, {}))
    # Equal weights in another instance (other allocations): on an AMD EPYC this already took
    # another kernel path and missed bit-equality (issue #13, sd3).
    assert_same_images(adapter.generate(_conditions(family), SEEDS, steps=2), images)


@pytest.mark.parametrize("family", FAMILIES)
def test_adapter_reproduces_the_diffusers_pipeline(family):
    """Same prompts, initial latents and steps: the pipeline's own ``__call__`` gives the
    adapter's images (conditioning, guidance, timesteps, packing and decoding all agree)."""
    pipe = tiny_pipeline(family)
    pipe.set_progress_bar_config(disable=True)
    adapter = adapter_class(family).from_pipeline(pipe, **OPTIONS.get(family, {}))
    if family == "dit":  # DiTPipeline takes no latents: one seeded generator per image
        ours = adapter.generate([0, 2], [5, 5], steps=2)
        theirs = torch.cat([
            pipe(class_labels=[c], num_inference_steps=2, output_type="pt",
                 generator=torch.Generator().manual_seed(5)).images for c in (0, 2)])
        theirs = theirs.permute(0, 3, 1, 2) if theirs.shape[-1] == 3 else theirs
    else:
        ours = adapter.generate(_conditions(family), SEEDS, steps=2)
        latents = adapter.initial_noise(SEEDS)
        theirs = pipe(_conditions(family), latents=_pipeline_latents(family, latents),
                      num_inference_steps=2, height=64, width=64, output_type="pt",
                      **_call_options(family, pipe, adapter)).images
    # Another code path (the pipeline's own prompt encoding, CFG batch and decoding); images in
    # [0, 1] here, so IMAGE_ATOL / 2 is the same tolerance. Up to 3.5e-6 seen (AVX2 kernels).
    torch.testing.assert_close((ours / 2 + 0.5).clamp(0, 1), theirs, rtol=0, atol=IMAGE_ATOL / 2)


def _pipeline_latents(family: str, latents: torch.Tensor) -> torch.Tensor:
    from qua2.models.families.flow import pack_latents

    return pack_latents(latents) if family == "flux" else latents


def _call_options(family: str, pipe, adapter) -> dict:
    """Pipeline arguments that switch off what needs extra packages or changes the size."""
    if family.startswith("pixart"):
        return {"clean_caption": False, "use_resolution_binning": False}
    if family == "hunyuan-dit":
        pipe.scheduler = adapter.scheduler  # its DDPM is stochastic; qua2 samples with DDIM
        return {"use_resolution_binning": False}
    return {}


@pytest.mark.parametrize("family", FAMILIES)
def test_loaded_example_inputs_run_the_denoiser(loaded, family):
    adapter, _ = loaded(family)
    inputs = adapter.example_inputs(2)
    with torch.no_grad():
        out = adapter.module(*inputs.args, **inputs.kwargs, return_dict=False)[0]
    assert out.shape[0] == 2 and torch.isfinite(out).all()


def test_dit_takes_label_names_from_id2label():
    adapter = adapter_class("dit").from_pipeline(tiny_pipeline("dit"))
    by_name = adapter.generate(["goldfish", "great white shark"], [0, 0], steps=2)
    by_id = adapter.generate([1, 2], [0, 0], steps=2)
    # Names become the same label tensor before sampling: the same computation, bit-identical.
    assert torch.equal(by_name, by_id)


def test_sdxl_null_is_zeros_unless_a_negative_prompt_is_given(loaded, saved):
    adapter, _ = loaded("sdxl")
    assert torch.count_nonzero(adapter.null_embedding().embeds) == 0
    negative = load_model("sdxl", saved("sdxl"), negative="blurry")
    assert torch.count_nonzero(negative.null_embedding().embeds) > 0


def test_loading_with_a_dtype_casts_the_denoiser(saved):
    adapter = load_model("sd15", saved("sd15"), dtype="bfloat16")
    assert adapter.dtype == torch.bfloat16
    images = adapter.generate(["a red cat"], [0], steps=1)
    assert images.dtype == torch.float32 and torch.isfinite(images).all()


@pytest.mark.parametrize("family", ["pixart-alpha", "sdxl"])
def test_casting_only_the_denoiser_keeps_text_encoders_and_vae_usable(saved, family):
    """Callers that move/cast ``adapter.module`` alone (as a study may) still get images."""
    adapter = load_model(family, saved(family))
    adapter.module.to(torch.bfloat16)
    images = adapter.generate(["a red cat"], [0], steps=1)
    assert adapter.text_device == torch.device("cpu") and torch.isfinite(images).all()


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
    with pytest.raises(Qua2Error, match=r"KandinskyPipeline.*needs a StableDiffusionPipeline"):
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
    with pytest.raises(Qua2Error, match="lists no unet"):
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
