"""Every diffusers family, end to end at denoiser level (tiny random denoisers, no VAE).

The adapters come from :func:`qua2.testing.tiny_pipelines.tiny_adapter`: the family's
tiny denoiser (``qua2.testing.tiny_models``) with its published scheduler; text families take seeded
random :class:`PromptEmbedding` conditions, DiT takes class ids.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from qua2.errors import Qua2Error
from qua2.models.families import PromptEmbedding
from qua2.testing.tiny_pipelines import TINY_PIPELINE_FAMILIES, tiny_adapter

FAMILIES = TINY_PIPELINE_FAMILIES
SEEDS = [0, 1, 0, 1]


def _conditions(adapter) -> list:
    """2 conditions × 2 seeds, in the order of SEEDS."""
    if adapter.conditioning == "class":
        a, b = 3, 7
    else:
        a, b = adapter.random_embeddings(2, seed=5)
    return [a, a, b, b]


@pytest.fixture(scope="module", params=FAMILIES)
def case(request):
    """(family, adapter, images of 2 conditions × 2 seeds × 2 steps)."""
    adapter = tiny_adapter(request.param)
    images = adapter.generate(_conditions(adapter), SEEDS, steps=2)
    return request.param, adapter, images


def test_generate_gives_finite_images_of_the_latent_shape(case):
    _, adapter, images = case
    assert images.shape == (4, *adapter.latent_shape)
    assert images.dtype == torch.float32
    assert torch.isfinite(images).all()
    assert images.abs().max() <= 1.0  # base contract: clamped to [-1, 1]


def test_same_seeds_give_bit_identical_images(case):
    _, adapter, images = case
    again = adapter.generate(_conditions(adapter), SEEDS, steps=2)
    assert torch.equal(images, again)


def test_different_seeds_and_conditions_differ(case):
    _, _, images = case
    assert not torch.equal(images[0], images[1])  # same condition, other seed
    assert not torch.equal(images[0], images[2])  # same seed, other condition


def test_guidance_uses_the_unconditional_branch(case):
    family, adapter, images = case
    plain = adapter.generate(_conditions(adapter), SEEDS, steps=2, guidance_scale=1.0)
    if adapter.default_guidance == 1.0:  # Flux: no CFG pass by default
        # guidance_scale=1.0 given or defaulted runs the same ops: bit-identical.
        assert torch.equal(plain, images), family
        plain = adapter.generate(_conditions(adapter), SEEDS, steps=2, guidance_scale=3.0)
    assert not torch.equal(plain, images), family


def test_quantizable_layers_cover_every_weight_matrix(case):
    """Every Linear/Conv is listed; the weight matrices left out are embeddings only."""
    _, adapter, _ = case
    layers = adapter.quantizable_layers()
    modules = dict(adapter.module.named_modules())
    assert layers and len(layers) == len(set(layers))
    assert all(isinstance(modules[n], (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
               for n in layers)
    listed = set(layers)
    for name, module in modules.items():
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() >= 2 and name not in listed:
            assert isinstance(module, nn.Embedding), f"{name} ({type(module).__name__}) missed"


@pytest.mark.parametrize("batch_size", [1, 3])
def test_example_inputs_run_the_module(case, batch_size):
    _, adapter, _ = case
    inputs = adapter.example_inputs(batch_size)
    with torch.no_grad():
        out = adapter.module(*inputs.args, **inputs.kwargs, return_dict=False)[0]
    assert out.shape[0] == batch_size and torch.isfinite(out).all()
    again = adapter.example_inputs(batch_size)
    assert torch.equal(inputs.args[0], again.args[0])  # seeded: a stable tracing input


def test_denoise_returns_the_scheduler_shaped_prediction(case):
    _, adapter, _ = case
    latents = adapter.initial_noise([0, 1])
    cond = adapter.example_conditions(2)
    scheduler = copy.deepcopy(adapter.scheduler)
    adapter.set_timesteps(scheduler, 2)
    t = scheduler.timesteps[0]
    with torch.no_grad():
        out = adapter.denoise(latents, t, cond)
    assert out.shape == latents.shape


# ------------------------------------------------------------------------------ text families
TEXT = [f for f in FAMILIES if f != "dit"]


@pytest.mark.parametrize("family", TEXT)
def test_prompts_need_text_encoders(family):
    adapter = tiny_adapter(family)
    with pytest.raises(Qua2Error, match="no text encoders"):
        adapter.generate(["a cat"], [0], steps=1)


@pytest.mark.parametrize("family", ["pixart-alpha", "sd15", "sd3", "hunyuan-dit"])
def test_guidance_without_negative_or_text_encoder_is_a_clear_error(family):
    from qua2.models.families import adapter_class
    from qua2.testing.tiny_pipelines import tiny_scheduler

    bare = tiny_adapter(family)
    adapter = adapter_class(family).from_components(bare.module, tiny_scheduler(family),
                                                    resolution=64)
    cond = adapter.random_embeddings(1)
    with pytest.raises(Qua2Error, match="negative"):
        adapter.generate(cond, [0], steps=1)
    assert adapter.generate(cond, [0], steps=1, guidance_scale=1.0).shape[0] == 1


@pytest.mark.parametrize("family", TEXT)
def test_embedding_of_the_wrong_width_is_rejected(family):
    adapter = tiny_adapter(family)
    good = adapter.random_embeddings(1)[0]
    bad = PromptEmbedding(**{**good.__dict__, "embeds": torch.zeros(good.embeds.shape[0], 3)})
    with pytest.raises(Qua2Error, match="embeds"):
        adapter.generate([bad], [0], steps=1)


def test_missing_masks_are_filled_and_mismatched_masks_rejected():
    adapter = tiny_adapter("pixart-alpha")
    full = adapter.random_embeddings(1)[0]
    unmasked = PromptEmbedding(embeds=full.embeds)
    # The filled mask is the same all-ones tensor random_embeddings gives: the same computation.
    assert torch.equal(adapter.generate([unmasked], [0], steps=1),
                       adapter.generate([full], [0], steps=1))
    short = PromptEmbedding(embeds=full.embeds, mask=torch.ones(2, dtype=torch.long))
    with pytest.raises(Qua2Error, match="mask"):
        adapter.generate([short], [0], steps=1)


def test_non_text_condition_is_rejected():
    with pytest.raises(Qua2Error, match="prompt strings or PromptEmbedding"):
        tiny_adapter("sd15").generate([3], [0], steps=1)


def test_prompt_embeddings_round_trip_through_safetensors(tmp_path):
    from qua2.models.families import load_embeddings, save_embeddings

    items = tiny_adapter("hunyuan-dit").random_embeddings(3)
    save_embeddings(items, tmp_path / "e.safetensors")
    back = load_embeddings(tmp_path / "e.safetensors")
    assert len(back) == 3
    assert all(torch.equal(a.embeds_2, b.embeds_2) and torch.equal(a.mask, b.mask)
               for a, b in zip(items, back))
    with pytest.raises(Qua2Error, match="no prompt-embedding file"):
        load_embeddings(tmp_path / "missing.safetensors")


def test_batched_embedding_is_rejected_with_a_hint():
    with pytest.raises(Qua2Error, match="unbatch"):
        PromptEmbedding(embeds=torch.zeros(2, 3, 4))


# ------------------------------------------------------------------------------ family specifics
def test_dit_rejects_out_of_range_and_unknown_labels():
    adapter = tiny_adapter("dit")
    with pytest.raises(Qua2Error, match="out of range"):
        adapter.generate([1000], [0], steps=1)
    with pytest.raises(Qua2Error, match="unknown class label"):
        adapter.generate(["goldfish"], [0], steps=1)  # no pipeline → no id2label
    assert int(adapter.null_conditions(1)["class_labels"][0]) == adapter.num_classes


def test_flux_packing_round_trips_and_shift_follows_resolution():
    from qua2.models.families.flow import pack_latents, unpack_latents

    x = torch.randn(2, 4, 6, 8)
    assert pack_latents(x).shape == (2, 12, 16)
    assert torch.equal(unpack_latents(pack_latents(x), 6, 8), x)
    small, large = tiny_adapter("flux", resolution=64), tiny_adapter("flux", resolution=128)
    timesteps = []
    for adapter in (small, large):
        scheduler = adapter.scheduler.__class__.from_config(adapter.scheduler.config)
        adapter.set_timesteps(scheduler, 4)
        timesteps.append(scheduler.timesteps)
    assert not torch.equal(*timesteps)  # more image tokens → larger mu → later timesteps
    assert (timesteps[1] >= timesteps[0]).all()


def test_flux_distilled_guidance_is_an_input():
    adapter = tiny_adapter("flux", distilled_guidance=2.0)
    assert torch.all(adapter.example_inputs(2).kwargs["guidance"] == 2.0)


def test_stochastic_schedulers_are_replaced_or_refused():
    hunyuan = tiny_adapter("hunyuan-dit")  # ships DDPM
    assert type(hunyuan.scheduler).__name__ == "DDIMScheduler"
    assert hunyuan.scheduler.config.prediction_type == "v_prediction"
    ddim = tiny_adapter("sd15", sampler="DDIMScheduler")
    assert type(ddim.scheduler).__name__ == "DDIMScheduler"
    with pytest.raises(Qua2Error, match="fresh noise"):
        tiny_adapter("sd15", sampler="EulerAncestralDiscreteScheduler")
    with pytest.raises(Qua2Error, match="unknown scheduler"):
        tiny_adapter("sd15", sampler="NoSuchScheduler")


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(Qua2Error, match=r"unknown option.*valid options: .*resolution"):
        tiny_adapter("sdxl", colour="red")


def test_resolution_must_fit_the_vae_factor():
    with pytest.raises(Qua2Error, match="multiple"):
        tiny_adapter("sd15", resolution=60)


def test_non_square_resolution_sets_the_latent_shape():
    adapter = tiny_adapter("pixart-sigma", resolution=(64, 96))
    assert adapter.latent_shape == (4, 8, 12)
    image = adapter.generate(adapter.random_embeddings(1), [0], steps=1)
    assert image.shape == (1, 4, 8, 12)


def test_dit_accepts_numpy_and_tensor_class_ids():
    import numpy as np

    adapter = tiny_adapter("dit")
    ids = adapter.encode_conditions([np.int64(3), torch.tensor(7), 9])["class_labels"]
    assert ids.tolist() == [3, 7, 9]


def _variant(family: str, tiny_family: str, **config):
    """``family``'s adapter over a tiny denoiser built with ``config`` overrides."""
    import diffusers

    from qua2.models.families import adapter_class
    from qua2.testing.tiny_models import tiny_config
    from qua2.testing.tiny_pipelines import tiny_scheduler

    base = tiny_adapter(family)
    torch.manual_seed(0)
    module = type(base.module)(**{**tiny_config(tiny_family), **config}).eval()
    assert isinstance(module, getattr(diffusers, type(base.module).__name__))
    return adapter_class(family).from_components(
        module, tiny_scheduler(family), resolution=64, negative=base.negative,
        **({"max_sequence_length": base.max_sequence_length}
           if base.max_sequence_length else {}))


def test_pixart_alpha_micro_conditions_on_resolution_and_aspect_ratio():
    """PixArt-α 1024 embeds (height, width) and aspect ratio; both must reach the model."""
    adapter = _variant("pixart-alpha", "pixart", use_additional_conditions=True)
    added = adapter.example_inputs(2).kwargs["added_cond_kwargs"]
    assert added["resolution"].tolist() == [[64.0, 64.0]] * 2
    assert added["aspect_ratio"].tolist() == [[1.0]] * 2
    images = adapter.generate(adapter.random_embeddings(2), [0, 1], steps=2)
    assert torch.isfinite(images).all()


def test_hunyuan_without_style_and_size_conditions():
    """Hunyuan-DiT v1.2 drops the style/size embedding; the adapter must not pass them."""
    adapter = _variant("hunyuan-dit", "hunyuan", use_style_cond_and_image_meta_size=False)
    assert "image_meta_size" not in adapter.example_inputs(1).kwargs
    images = adapter.generate(adapter.random_embeddings(2), [0, 1], steps=2)
    assert torch.isfinite(images).all()


#: Published geometry: (family in qua2.testing.tiny_models, latent shape, denoiser output shape).
FULL_SIZE = {
    "pixart-alpha": ("pixart", (4, 128, 128), (2, 8, 128, 128)),
    "dit": ("dit", (4, 32, 32), (2, 8, 32, 32)),
    "hunyuan-dit": ("hunyuan", (4, 128, 128), (2, 8, 128, 128)),
    "sd15": ("sd15", (4, 64, 64), (2, 4, 64, 64)),
    "sdxl": ("sdxl", (4, 128, 128), (2, 4, 128, 128)),
    "sd3": ("sd3", (16, 128, 128), (2, 16, 128, 128)),
    "flux": ("flux", (16, 128, 128), (2, 4096, 64)),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FULL_SIZE))
def test_full_size_architecture_on_meta_gets_published_geometry(family):
    """Default resolution and example inputs of the real models, traced on ``meta``."""
    from qua2.models.families import adapter_class
    from qua2.testing.tiny_models import full_size_denoiser
    from qua2.testing.tiny_pipelines import tiny_scheduler

    tiny_family, latent_shape, out_shape = FULL_SIZE[family]
    module, _ = full_size_denoiser(tiny_family)
    adapter = adapter_class(family).from_components(module, tiny_scheduler(family))
    assert adapter.latent_shape == latent_shape
    inputs = adapter.example_inputs(2)
    with torch.no_grad():
        out = module(*inputs.args, **inputs.kwargs, return_dict=False)[0]
    assert tuple(out.shape) == out_shape and out.device.type == "meta"
