"""Calibration sets: denoiser inputs ``(x_t, t, condition)`` drawn from the FP model's own sampling.

Timestep convention: ``t`` is the scheduler's training timestep, exactly as the denoiser receives
it — ``t = 0`` is the clean end (x₀), ``t = T - 1`` pure noise (``T = num_train_timesteps``).
Every sample is the input of the denoiser *at* the sampler step whose timestep is ``t``, i.e.
after running the FP sampler from noise through all earlier (noisier) steps.

Methods (``size`` samples each, deterministic for ``seed``):

* ``"ndtc"`` — PTQ4DM's normally distributed time-step calibration (Shang et al., CVPR 2023):
  ``t ~ N(mean·T, (std·T)²)`` with the PTQ4DM defaults ``mean = std = 0.4``, so the draws are
  biased toward the *clean* end; clipped to ``[0, T-1]`` and snapped to the nearest step of the
  ``steps``-step sampler. (PTQ4DM's code compares its draw with the reverse-loop counter, which
  counts from the *noisy* end, while passing it to the model as a diffusion timestep; here the
  sample and the timestep the model sees always agree.)
* ``"single_step"`` — 2406.11100 (Yang et al.): the first reverse step only (pure noise,
  the largest sampler timestep).
* ``"uniform"`` — sampler steps drawn uniformly (baseline).
* ``"real"`` — noised real images ``x_t = √ᾱ_t·x₀ + √(1-ᾱ_t)·ε`` (scheduler ``add_noise``), with
  ``t`` drawn like NDTC so that only the data source differs from ``"ndtc"`` (baseline).

With classifier-free guidance the trajectory is guided, but the stored condition is the
conditional branch only. Sets are cached as safetensors by :func:`calibration_set`.

The :class:`CalibrationSet` container (what the denoiser receives, stored on disk) lives here
too, so everything about calibration *sets* is in one module; fitting ranges on a set is in
:mod:`qua2.activations.range_fitting`, the range search itself in
:mod:`qua2.activations.range_search`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from qua2.activations.setting import CALIBRATION_METHODS
from qua2.errors import Qua2Error
from qua2.io import load_safetensors, write_safetensors

if TYPE_CHECKING:
    from qua2.models.base import DenoiserAdapter

# -------------------------------------------------------------------------- the container
CALIBSET_FORMAT = "qua2-calibration-set"
CALIBSET_VERSION = "1"


def content_digest(payload: Any) -> str:
    """16 hex digits of SHA-256 over a tensor's bytes or a JSON-able payload."""
    digest = hashlib.sha256()
    if torch.is_tensor(payload):
        digest.update(str((tuple(payload.shape), str(payload.dtype))).encode())
        digest.update(payload.detach().cpu().contiguous().numpy().tobytes())
    else:
        digest.update(json.dumps(payload, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def module_fingerprint(module: nn.Module) -> str:
    """Content fingerprint of the weights: a hash of every tensor's exact bytes and name.

    Exact bytes, not float sums: a sum's last bits depend on the thread count and the CPU's
    kernels, which made the calibration caches miss across machines; and a permutation of
    the weights must change the key.
    """
    from qua2.quant.store import module_digest

    return module_digest(module)


def _flatten(cond: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in cond.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, path + "/")
        else:
            yield path, value


def _unflatten(items: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in items.items():
        node = out
        *parents, leaf = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _slice(cond: Any, index: torch.Tensor, n: int) -> Any:
    if isinstance(cond, Mapping):
        return {k: _slice(v, index, n) for k, v in cond.items()}
    if torch.is_tensor(cond) and cond.ndim and cond.shape[0] == n:
        return cond[index.to(cond.device)]
    return cond


@dataclass
class CalibrationSet:
    """``N`` denoiser inputs ``x_t``, their training timesteps ``t`` (0 = clean), conditions."""

    inputs: torch.Tensor
    timesteps: torch.Tensor
    cond: dict[str, Any]
    method: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.inputs) == 0:
            raise Qua2Error("the calibration set is empty; draw at least one sample.")
        if len(self.timesteps) != len(self.inputs):
            raise Qua2Error(f"a calibration set has {len(self.inputs)} inputs but "
                            f"{len(self.timesteps)} timesteps.")

    def __len__(self) -> int:
        return len(self.inputs)

    def batches(self, batch_size: int = 64,
                device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor,
                                                                     torch.Tensor, Any]]:
        """``(x, t, cond)`` batches in which every sample shares one timestep ``t`` (0-dim).

        Denoiser calls take one timestep per batch, and per-timestep-group ranges need it.
        """
        for value in self.timesteps.unique(sorted=True):
            index = (self.timesteps == value).nonzero().flatten()
            for start in range(0, len(index), batch_size):
                part = index[start:start + batch_size]
                cond = _slice(self.cond, part, len(self))
                yield self.inputs[part].to(device), value.to(device), _to(cond, device)

    # ------------------------------------------------------------------ storage
    def save(self, path: str | Path) -> Path:
        """Write ``path`` (safetensors) atomically."""
        path = Path(path)
        tensors = {"inputs": self.inputs.contiguous().cpu(),
                   "timesteps": self.timesteps.contiguous().cpu()}
        plain = {}
        for key, value in _flatten(self.cond):
            if torch.is_tensor(value):
                tensors[f"cond/{key}"] = value.contiguous().cpu()
            else:
                plain[key] = value
        header = {"format": CALIBSET_FORMAT, "version": CALIBSET_VERSION, "method": self.method,
                  "meta": json.dumps(self.meta, sort_keys=True, default=str),
                  "plain_cond": json.dumps(plain, default=str)}
        write_safetensors(path, tensors, header)
        return path

    @classmethod
    def load(cls, path: str | Path) -> CalibrationSet:
        path = Path(path)
        tensors, header = load_safetensors(path, "delete it so it is drawn again")
        if header.get("format") != CALIBSET_FORMAT or header.get("version") != CALIBSET_VERSION:
            raise Qua2Error(f"{path} is not a qua2 calibration set of this version; delete it "
                            "so it is drawn again.")
        flat = {k[len("cond/"):]: v for k, v in tensors.items() if k.startswith("cond/")}
        flat.update(json.loads(header.get("plain_cond", "{}")))
        return cls(tensors["inputs"], tensors["timesteps"], _unflatten(flat), header["method"],
                   json.loads(header.get("meta", "{}")))


def _to(cond: Any, device: torch.device | str) -> Any:
    if isinstance(cond, Mapping):
        return {k: _to(v, device) for k, v in cond.items()}
    return cond.to(device) if torch.is_tensor(cond) else cond


# ------------------------------------------------------------------- drawing a set
NDTC_MEAN, NDTC_STD = 0.4, 0.4


def _fresh_scheduler(adapter: DenoiserAdapter, steps: int) -> Any:
    scheduler = copy.deepcopy(adapter.scheduler)
    if hasattr(adapter, "set_timesteps"):  # flow-matching adapters add a resolution shift
        adapter.set_timesteps(scheduler, steps)
    else:
        scheduler.set_timesteps(steps, device=adapter.device)
    return scheduler


def num_train_timesteps(adapter: DenoiserAdapter) -> int:
    """``T`` of the adapter's scheduler (1000 when the config does not say)."""
    return int(getattr(adapter.scheduler.config, "num_train_timesteps", 1000))


def draw_step_indices(method: str, n: int, sampler_timesteps: torch.Tensor, train_steps: int,
                      gen: torch.Generator, mean: float = NDTC_MEAN,
                      std: float = NDTC_STD) -> torch.Tensor:
    """Index into ``sampler_timesteps`` (noisiest first) of every sample's calibration step."""
    steps = len(sampler_timesteps)
    if method == "single_step":
        return torch.zeros(n, dtype=torch.long)
    if method == "uniform":
        return torch.randint(0, steps, (n,), generator=gen)
    # NDTC (also the timesteps of "real"): a normal draw in training-timestep units, t=0 clean.
    t = (torch.randn(n, generator=gen, dtype=torch.float64) * std + mean) * train_steps
    t = t.clamp(0, train_steps - 1)
    grid = sampler_timesteps.double().cpu()
    return (t[:, None] - grid[None, :]).abs().argmin(dim=1)


def _guided(adapter: DenoiserAdapter, x: torch.Tensor, t: torch.Tensor, cond: dict,
            uncond: dict | None, scale: float) -> torch.Tensor:
    out = adapter.denoise(x, t, cond)
    if uncond is None:
        return out
    return adapter.denoise(x, t, uncond) * (1 - scale) + out * scale


@torch.no_grad()
def _trajectory_inputs(adapter: DenoiserAdapter, noise: torch.Tensor, cond: dict,
                       uncond: dict | None, scale: float, steps: int,
                       stop: torch.Tensor) -> torch.Tensor:
    """Run the FP sampler from ``noise``; keep each sample's model input at its ``stop`` step."""
    scheduler = _fresh_scheduler(adapter, steps)  # fresh per chunk: multistep solvers keep state
    latents = noise.to(adapter.device, adapter.dtype) * getattr(scheduler, "init_noise_sigma", 1.0)
    kept = torch.empty_like(latents)
    last = int(stop.max())
    for i, t in enumerate(scheduler.timesteps[: last + 1]):
        model_in = latents
        if hasattr(scheduler, "scale_model_input"):
            model_in = scheduler.scale_model_input(latents, t)
        here = (stop == i).to(latents.device)
        kept[here] = model_in[here]
        if i == last:
            break
        out = _guided(adapter, model_in, t, cond, uncond, scale)
        latents = scheduler.step(out, t, latents, return_dict=False)[0]
    return kept


def _real_inputs(adapter: DenoiserAdapter, images: torch.Tensor, t: torch.Tensor, steps: int,
                 gen: torch.Generator) -> torch.Tensor:
    """Forward-noise real images to timestep ``t`` (per sample) and scale them for the model."""
    eps = torch.randn(images.shape, generator=gen)
    out = torch.empty_like(images)
    for value in t.unique():
        sel = t == value
        scheduler = _fresh_scheduler(adapter, steps)
        tt = value.to(adapter.device).expand(int(sel.sum()))
        x0, noise = images[sel].to(adapter.device), eps[sel].to(adapter.device)
        if hasattr(scheduler, "add_noise"):
            x_t = scheduler.add_noise(x0, noise, tt)
        elif hasattr(scheduler, "scale_noise"):  # flow matching: x_t = (1-σ)·x₀ + σ·ε
            x_t = scheduler.scale_noise(x0, tt, noise)
        else:
            raise Qua2Error(f"{type(scheduler).__name__} cannot noise real images (no add_noise);"
                            " use a sampling-based calibration method instead.")
        if hasattr(scheduler, "scale_model_input"):
            x_t = scheduler.scale_model_input(x_t, value.to(adapter.device))
        out[sel] = x_t.cpu().to(out.dtype)
    return out


def _cycle(conditions: Sequence[Any], n: int) -> list[Any]:
    if len(conditions) == 0:
        raise Qua2Error("calibration needs at least one condition (class label or prompt).")
    return [conditions[i % len(conditions)] for i in range(n)]


def build_calibration_set(adapter: DenoiserAdapter, method: str, conditions: Sequence[Any], *,
                          size: int = 256, seed: int = 0, steps: int = 20,
                          guidance_scale: float | None = None,
                          real_images: torch.Tensor | None = None,
                          ndtc_mean: float = NDTC_MEAN, ndtc_std: float = NDTC_STD,
                          batch_size: int = 64) -> CalibrationSet:
    """Draw ``size`` calibration samples with ``method`` (see the module docstring).

    ``conditions`` are cycled over the samples; for ``"real"`` they are the labels/prompts of
    ``real_images`` (same length, images in [-1, 1] shaped like the latents).
    """
    _check_request(method, size, conditions, real_images)
    gen = torch.Generator().manual_seed(int(seed))
    train_steps = num_train_timesteps(adapter)
    timesteps = _fresh_scheduler(adapter, steps).timesteps.cpu()
    if method == "real":
        assert real_images is not None
        pick = _pick(len(real_images), size, gen)
        chosen = real_images[pick].float()
        conds = [conditions[int(i)] for i in pick]
        idx = draw_step_indices("ndtc", size, timesteps, train_steps, gen, ndtc_mean, ndtc_std)
        inputs = _real_inputs(adapter, chosen, timesteps[idx], steps, gen)
    else:
        noise = torch.randn((size, *adapter.latent_shape), generator=gen)
        conds = _cycle(conditions, size)
        idx = draw_step_indices(method, size, timesteps, train_steps, gen, ndtc_mean, ndtc_std)
        inputs = _sample_inputs(adapter, noise, conds, idx, steps, guidance_scale, batch_size)
    cond = adapter.encode_conditions(conds)
    meta = {"method": method, "size": size, "seed": int(seed), "steps": steps,
            "num_train_timesteps": train_steps, "ndtc_mean": ndtc_mean, "ndtc_std": ndtc_std,
            "timestep_convention": "t=0 is clean (x0); t=T-1 is pure noise",
            "model": getattr(adapter, "name", "?")}
    return CalibrationSet(inputs.cpu(), timesteps[idx].clone(), cond, method, meta)


def _check_request(method: str, size: int, conditions: Sequence[Any],
                   real_images: torch.Tensor | None) -> None:
    if method not in CALIBRATION_METHODS:
        raise Qua2Error(f"unknown calibration method {method!r}; choose one of "
                        f"{', '.join(CALIBRATION_METHODS)}.")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise Qua2Error(f"the calibration set cannot be empty: size must be a positive integer, "
                        f"got {size!r}.")
    if method == "real":
        if real_images is None or len(real_images) == 0:
            raise Qua2Error("real-data calibration needs real_images (a non-empty [N, C, H, W] "
                            "tensor in [-1, 1]).")
        if len(conditions) != len(real_images):
            raise Qua2Error(f"real-data calibration needs one condition per real image, got "
                            f"{len(conditions)} conditions for {len(real_images)} images.")


def _pick(available: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Distinct images when there are enough, else every image then random repeats."""
    if available >= size:
        return torch.randperm(available, generator=gen)[:size]
    extra = torch.randint(0, available, (size - available,), generator=gen)
    return torch.cat([torch.randperm(available, generator=gen), extra])


def _sample_inputs(adapter: DenoiserAdapter, noise: torch.Tensor, conds: list[Any],
                   idx: torch.Tensor, steps: int, guidance_scale: float | None,
                   batch_size: int) -> torch.Tensor:
    scale = adapter.default_guidance if guidance_scale is None else guidance_scale
    chunks = []
    for start in range(0, len(conds), batch_size):
        part = slice(start, start + batch_size)
        cond = adapter.encode_conditions(conds[part])
        uncond = adapter.null_conditions(len(conds[part])) if scale != 1.0 else None
        chunks.append(_trajectory_inputs(adapter, noise[part], cond, uncond, scale, steps,
                                         idx[part]).cpu())
    return torch.cat(chunks)


def calibration_set(adapter: DenoiserAdapter, method: str, conditions: Sequence[Any], *,
                    cache_dir: str | Path | None = None, size: int = 256, seed: int = 0,
                    steps: int = 20, guidance_scale: float | None = None,
                    real_images: torch.Tensor | None = None, ndtc_mean: float = NDTC_MEAN,
                    ndtc_std: float = NDTC_STD, batch_size: int = 64) -> CalibrationSet:
    """:func:`build_calibration_set`, cached as safetensors in ``cache_dir`` when given.

    The cache key covers the model weights, method, size, seed, steps, guidance, NDTC
    parameters, conditions and real images, so a changed input never reuses a stale set.
    """
    def build() -> CalibrationSet:
        return build_calibration_set(
            adapter, method, conditions, size=size, seed=seed, steps=steps,
            guidance_scale=guidance_scale, real_images=real_images, ndtc_mean=ndtc_mean,
            ndtc_std=ndtc_std, batch_size=batch_size)

    if cache_dir is None:
        return build()
    _check_request(method, size, conditions, real_images)
    key = content_digest({
        "model": module_fingerprint(adapter.module), "method": method, "size": size,
        "seed": seed, "steps": steps, "guidance": guidance_scale, "mean": ndtc_mean,
        "std": ndtc_std, "conditions": [str(c) for c in conditions],
        "real": None if real_images is None else content_digest(real_images),
    })
    path = Path(cache_dir) / f"calib-{method}-{key}.safetensors"
    if path.exists():
        return CalibrationSet.load(path)
    calib = build()
    calib.save(path)
    return calib
