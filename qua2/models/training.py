"""A small, deterministic DDPM training loop for the embedded digits denoisers.

Noise-prediction objective of Ho et al. (2020, "Denoising Diffusion Probabilistic Models") with
the cosine schedule of Nichol & Dhariwal (2021, ``squaredcos_cap_v2``), AdamW with linear
warm-up and cosine decay, and an exponential moving average of the weights (the EMA weights are
what gets sampled from). Everything random draws from one seeded generator inside
:func:`torch.random.fork_rng`, so a seed gives the same weights on the same machine and the
caller's global RNG state is left untouched.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from qua2.progress import progress_bar

#: ``forward(module, noisy, timesteps, labels) -> predicted noise``
DenoiseFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainRecipe:
    """Hyper-parameters of one training run; part of the cache key of trained weights."""

    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    ema_warmup: bool = True
    seed: int = 0
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"

    def to_dict(self) -> dict:
        return asdict(self)


def _lr_factor(step: int, recipe: TrainRecipe) -> float:
    if step < recipe.warmup:
        return (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def _ema_decay(step: int, recipe: TrainRecipe) -> float:
    """EMA decay at ``step``; the warm-up keeps the random initial weights out of the average
    (without it 0.999^1500 = 22% of the EMA is still the random init after 1500 steps)."""
    if not recipe.ema_warmup:
        return recipe.ema_decay
    return min(recipe.ema_decay, (1 + step) / (10 + step))


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for ema_p, p in zip(ema.parameters(), model.parameters()):
        ema_p.lerp_(p, 1 - decay)


def train_ddpm(
    module: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    denoise: DenoiseFn,
    recipe: TrainRecipe,
    desc: str = "training",
) -> nn.Module:
    """Train ``module`` to predict noise on ``images``; return the EMA copy in eval mode."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(
        num_train_timesteps=recipe.num_train_timesteps, beta_schedule=recipe.beta_schedule
    )
    # Set in DDPMScheduler.__init__, which diffusers' @register_to_config hides from mypy.
    alphas = scheduler.alphas_cumprod.to(images.dtype)  # type: ignore[attr-defined]
    # Denormal floats make CPU kernels crawl late in training, when updates become tiny. The
    # flag is the thread's (x86 MXCSR): put back what it was, or every later float computation
    # in this process would flush denormals too.
    flushing = flushes_denormals()
    torch.set_flush_denormal(True)
    try:
        return _train_loop(module, images, labels, denoise, recipe, alphas, desc)
    finally:
        torch.set_flush_denormal(flushing)


def flushes_denormals() -> bool:
    """Whether this thread's CPU flushes denormal floats to zero now (torch can set the mode
    but not read it: a denormal times one is zero only when flushing)."""
    return bool((torch.tensor([1e-310], dtype=torch.float64) * 1.0).item() == 0.0)


def _train_loop(module: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                denoise: DenoiseFn, recipe: TrainRecipe, alphas: torch.Tensor,
                desc: str) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)  # also drives dropout inside the module (DiT label drop)
        ema = copy.deepcopy(module).eval().requires_grad_(False)
        # foreach=False: the multi-tensor AdamW path is slower for many small CPU tensors.
        optimizer = torch.optim.AdamW(
            module.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, foreach=False
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, recipe))
        module.train()
        progress = progress_bar(range(recipe.steps), desc=desc, unit="step", leave=False)
        for step in progress:
            index = torch.randint(0, len(images), (recipe.batch_size,))
            clean, label = images[index], labels[index]
            t = torch.randint(0, recipe.num_train_timesteps, (recipe.batch_size,))
            noise = torch.randn_like(clean)
            a = alphas[t].view(-1, 1, 1, 1)
            noisy = a.sqrt() * clean + (1 - a).sqrt() * noise
            loss = torch.nn.functional.mse_loss(denoise(module, noisy, t, label), noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            _ema_update(ema, module, _ema_decay(step, recipe))
            progress.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    module.eval()
    return ema
