"""The embedded default models: class-conditional denoisers of 8×8 handwritten digits.

qua2 must run for real on a fresh machine with no downloads, so it has its own small
denoisers, trained on ``sklearn.datasets.load_digits()`` (which ships inside scikit-learn):

- ``digits-dit``: a diffusers ``DiTTransformer2DModel`` (Peebles & Xie, 2023), 4 layers,
  4 heads × 32, patch 2 (~1.4 M parameters);
- ``digits-unet``: a diffusers ``UNet2DModel`` with a class embedding (~1.0 M parameters).

The default recipe's weights ship in the repository (:mod:`qua2.shipped`), so every machine
samples from the same model. Other recipes (``train_steps``, a ``recipe``) and ``retrain=True``
train here; those weights live in the user cache (:func:`qua2.paths.cache_dir`) as safetensors
plus a manifest JSON holding the architecture, the training recipe and the weights' SHA-256.
They are re-trained only when missing, made with another recipe, or corrupted — and qua2 says
which.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qua2.errors import Qua2Error
from qua2.io import DamagedArtifactError, atomic_write, read_json_object, write_safetensors
from qua2.log import say
from qua2.models.base import CondBatch, DenoiserAdapter, ExampleInputs
from qua2.models.training import TrainRecipe, train_ddpm
from qua2.paths import cache_dir, sha256_file
from qua2.version import __version__

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)


@dataclass(frozen=True)
class DigitsSpec:
    """Architecture and default recipe of one embedded digits model."""

    name: str
    model_class: str
    architecture: dict[str, Any]
    recipe: TrainRecipe = field(default_factory=TrainRecipe)


DIGITS_DIT = DigitsSpec(
    name="digits-dit",
    model_class="DiTTransformer2DModel",
    architecture=dict(
        sample_size=8, in_channels=1, out_channels=1, patch_size=2, num_layers=4,
        num_attention_heads=4, attention_head_dim=32, num_embeds_ada_norm=NUM_CLASSES,
        norm_type="ada_norm_zero", activation_fn="gelu-approximate",
        norm_elementwise_affine=False,
    ),
    recipe=TrainRecipe(steps=1500),
)
DIGITS_UNET = DigitsSpec(
    name="digits-unet",
    model_class="UNet2DModel",
    architecture=dict(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(32, 64),
        layers_per_block=2, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"), num_class_embeds=NUM_CLASSES,
        norm_num_groups=8,
    ),
    recipe=TrainRecipe(steps=600),
)
SPECS = {spec.name: spec for spec in (DIGITS_DIT, DIGITS_UNET)}


def _call_denoiser(module: nn.Module, x: torch.Tensor, t: torch.Tensor,
                   labels: torch.Tensor) -> torch.Tensor:
    """One forward of either architecture; both take (sample, timestep, class_labels)."""
    return module(x, t, class_labels=labels, return_dict=False)[0]


def _sampling_scheduler(recipe: TrainRecipe) -> Any:
    from diffusers import DDIMScheduler

    # "trailing" spacing starts sampling at the last training step, which matters at 20 steps.
    return DDIMScheduler(
        num_train_timesteps=recipe.num_train_timesteps, beta_schedule=recipe.beta_schedule,
        timestep_spacing="trailing", clip_sample=True,
    )


class DigitsAdapter(DenoiserAdapter):
    """Adapter of both digits models: class labels in, 8×8 images in [-1, 1] out."""

    conditioning = "class"

    def __init__(self, module: nn.Module, spec: DigitsSpec, recipe: TrainRecipe) -> None:
        self.family = spec.name
        self.spec = spec
        self.recipe = recipe
        super().__init__(module, _sampling_scheduler(recipe), IMAGE_SHAPE, name=spec.name)

    def encode_conditions(self, conditions: Any) -> CondBatch:
        labels = torch.as_tensor(list(conditions), dtype=torch.long)
        if labels.numel() and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
            raise Qua2Error(f"digit class labels must be 0–9, got {labels.unique().tolist()}.")
        return {"class_labels": labels.to(self.device)}

    def denoise(self, latents: torch.Tensor, t: torch.Tensor, cond: CondBatch) -> torch.Tensor:
        timesteps = t.to(self.device).expand(latents.shape[0])
        return _call_denoiser(self.module, latents, timesteps, cond["class_labels"])

    def example_inputs(self, batch_size: int = 1) -> ExampleInputs:
        generator = torch.Generator().manual_seed(0)
        sample = torch.randn((batch_size, *IMAGE_SHAPE), generator=generator).to(self.device)
        t = torch.full((batch_size,), 500, dtype=torch.long, device=self.device)
        labels = (torch.arange(batch_size) % NUM_CLASSES).to(self.device)
        return ExampleInputs((sample, t), {"class_labels": labels, "return_dict": False})


# --------------------------------------------------------------------------- cache
def _build(spec: DigitsSpec) -> nn.Module:
    import diffusers

    return getattr(diffusers, spec.model_class).from_config(spec.architecture)


def _from_state(spec: DigitsSpec, state: dict[str, torch.Tensor]) -> nn.Module:
    module = _build(spec)
    module.load_state_dict(state)
    return module.eval()


def digits_key(spec: DigitsSpec, recipe: TrainRecipe) -> dict[str, Any]:
    """What a trained model depends on: its architecture and training recipe."""
    return {"model_class": spec.model_class, "architecture": spec.architecture,
            "recipe": recipe.to_dict()}


def model_dir(spec: DigitsSpec, recipe: TrainRecipe) -> Path:
    """Cache directory of one (architecture, recipe); the default recipe gets a plain name."""
    key = json.dumps(digits_key(spec, recipe), sort_keys=True, default=list)
    suffix = "" if recipe == spec.recipe else "-" + hashlib.sha256(key.encode()).hexdigest()[:8]
    return cache_dir() / "models" / f"{spec.name}{suffix}"


def _load_cached(spec: DigitsSpec, recipe: TrainRecipe, directory: Path) -> nn.Module | None:
    """The cached module, or None (with a message saying why) if it must be re-trained."""
    from safetensors.torch import load_file

    manifest_path, weights_path = directory / "manifest.json", directory / "model.safetensors"
    if not manifest_path.exists() or not weights_path.exists():
        say(f"no trained {spec.name} in {directory}; training it now (a few minutes, once).")
        return None
    try:
        manifest = read_json_object(manifest_path, "it is re-trained")
    except (DamagedArtifactError, OSError):  # unreadable → re-trained, as before
        say(f"the manifest of {spec.name} in {directory} is unreadable; re-training.")
        return None
    expected = json.loads(json.dumps(digits_key(spec, recipe), default=list))
    if manifest.get("key") != expected:
        say(f"the cached {spec.name} was trained with other settings; re-training.")
        return None
    if sha256_file(weights_path) != manifest.get("sha256"):
        say(f"the cached {spec.name} weights are corrupted (checksum mismatch); re-training.")
        return None
    return _from_state(spec, load_file(weights_path))


def _store(module: nn.Module, spec: DigitsSpec, recipe: TrainRecipe, directory: Path) -> None:
    """Write weights then manifest, each atomically, so a killed run leaves no half-file."""
    write_safetensors(directory / "model.safetensors",
                      {k: v.contiguous() for k, v in module.state_dict().items()}, None)
    manifest = {"name": spec.name, "qua2_version": __version__,
                "key": digits_key(spec, recipe),
                "sha256": sha256_file(directory / "model.safetensors")}
    atomic_write(directory / "manifest.json", json.dumps(manifest, indent=2, default=list).encode())


def train_digits_model(spec: DigitsSpec, recipe: TrainRecipe) -> nn.Module:
    """Train one digits denoiser from scratch on all 1797 digits (deterministic for a seed)."""
    from qua2.metrics.digits import load_digits_images

    images, labels = load_digits_images()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)  # the initial weights
        module = _build(spec)
    return train_ddpm(module, images, labels, _call_denoiser, recipe, desc=f"training {spec.name}")


def load_digits(name: str, path: str | Path | None = None, *, recipe: TrainRecipe | None = None,
                train_steps: int | None = None, retrain: bool = False,
                device: str | torch.device = "cpu") -> DigitsAdapter:
    """Load the embedded digits model ``name``: shipped weights for the default recipe,
    otherwise trained once into the user cache (``retrain``: train even so).

    ``path`` overrides the cache directory (a folder with ``model.safetensors`` and
    ``manifest.json``); ``recipe`` trains a variant, and ``train_steps`` is a shortcut for the
    default recipe with fewer steps (tests and quick studies: ``model.options`` in a YAML).
    """
    spec = SPECS[name]
    recipe = recipe or spec.recipe
    if train_steps is not None:
        if not isinstance(train_steps, int) or train_steps < 1:
            raise Qua2Error(f"train_steps must be a positive integer, got {train_steps!r}.")
        recipe = replace(recipe, steps=train_steps, warmup=min(recipe.warmup, train_steps // 5))
    if path is None and not retrain and (module := _shipped(spec, recipe)) is not None:
        return DigitsAdapter(module.to(device), spec, recipe)
    directory = Path(path) if path is not None else model_dir(spec, recipe)
    module = None if retrain else _load_cached(spec, recipe, directory)
    if module is None:
        module = train_digits_model(spec, recipe)
        _store(module, spec, recipe, directory)
        say(f"saved trained {spec.name} to {directory}")
    return DigitsAdapter(module.to(device), spec, recipe)


def _shipped(spec: DigitsSpec, recipe: TrainRecipe) -> nn.Module | None:
    """The weights shipped in the repository for this recipe (qua2/shipped.py), or None."""
    from qua2.shipped import shipped_state

    found = shipped_state(spec.name, digits_key(spec, recipe))
    return None if found is None else _from_state(spec, found[0])


#: Registry loaders of ``digits-dit`` and ``digits-unet``: ``(path=None, **options)``.
load_digits_dit = functools.partial(load_digits, "digits-dit")
load_digits_unet = functools.partial(load_digits, "digits-unet")
