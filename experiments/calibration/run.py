"""Calibration-method comparison on the digits models (issue 8).

Question (PTQ4DM, Shang et al. CVPR 2023): do calibration samples taken from the FP model's own
denoising process (NDTC) give better static activation ranges than noised real images? And how
do 2406.11100's single-step calibration and uniform timesteps compare?

Design (paired, common random numbers):

* models: ``digits-dit`` and ``digits-unet`` (trained once, cached);
* weights: FP (W16), or UAQ per output channel (Qua²SeDiMo's uniform method) at 8 or 4 bits
  on every layer;
* activations: static per-tensor ranges, L_p (p = 2.4) range search, calibrated with each of
  ``ndtc``, ``single_step``, ``uniform``, ``real`` (256 samples), at 8 or 6 bits — the
  W16A8 and W16A6 settings isolate the activations, W8A8, W4A8 and W4A6 add weights;
  first/last executed layers stay FP (as PTQ4DM does); dynamic per-token quantization (no
  calibration, Qua²SeDiMo) is reported alongside;
* every configuration generates the same ``--images`` images (seeds 0…N-1, labels i mod 10,
  DDIM 20 steps) as the FP model; score = PSNR vs the FP image of the same seed (paired), plus
  digits-FID and class accuracy from ``qua2.metrics`` (distribution metrics, noisier);
* ``--calib-seeds`` repeat each calibration with fresh calibration samples, so the spread due
  to the calibration draw is visible next to the difference between methods.

Usage::

    OMP_WAIT_POLICY=PASSIVE python experiments/calibration/run.py --out runs/calibration
    python experiments/calibration/run.py --summarise runs/calibration \
        --publish experiments/calibration/results

Writes ``rows.csv`` (one row per model × setting × method × calibration seed, with per-image
PSNRs in ``per_image.safetensors``), ``summary.md`` and ``calibration.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

#: name → (weight bits or None for FP weights, activation bits).
SETTINGS = {"W16A8": (None, 8), "W16A6": (None, 6), "W8A8": (8, 8), "W4A8": (4, 8),
            "W4A6": (4, 6)}
METHODS = ("ndtc", "single_step", "uniform", "real")


# ---------------------------------------------------------------------------------- weights
def weight_cache(adapter: Any, directory: Path) -> Any:
    """qua2.quant's option cache of UAQ at 4 and 8 bits for every layer (built once, reused)."""
    from qua2.quant import OptionCache
    from qua2.specs import SearchSpace

    space = SearchSpace.grid(["uaq"], [4, 8])
    return OptionCache.build(adapter.module, space, directory, progress=False)


@contextmanager
def weight_quantization(adapter: Any, cache: Any, bits: int) -> Iterator[None]:
    """All Linear/Conv weights UAQ-quantized at ``bits`` (qua2.quant.quantized)."""
    from qua2.quant import quantized
    from qua2.specs import QuantConfig, QuantOption

    config = QuantConfig.uniform(adapter.quantizable_layers(), QuantOption("uaq", bits))
    with quantized(adapter.module, config, cache):
        yield


# ---------------------------------------------------------------------------------- scoring
def psnr_per_image(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) of every image vs its FP counterpart; images in [-1, 1] (peak-to-peak 2)."""
    mse = (images - reference).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(4.0 / mse)


def distribution_metrics(images: torch.Tensor, labels: list[int]) -> dict[str, float]:
    """digits-FID (vs all 1797 real digits) and class accuracy from qua2.metrics."""
    from qua2.metrics.suite import score_images

    scores = score_images(images, labels)
    return {k: scores[k] for k in ("digits_fid", "class_accuracy")}


# ---------------------------------------------------------------------------------- running
def _calibration(adapter: Any, method: str, bits: int, keep: Sequence[str], labels: list[int],
                 seed: int, args: argparse.Namespace, cache: Path) -> Any:
    from qua2.activations import ActivationSetting, prepare_activations

    setting = ActivationSetting(bits=bits, mode="static", calibration=method,
                                calibration_size=args.size, keep_fp=tuple(keep))
    real, conditions = None, labels
    if method == "real":
        real, conditions = _real_digits()
    return prepare_activations(adapter, setting, conditions=conditions, cache_dir=cache,
                               steps=args.steps, seed=1000 + seed, real_images=real)


def _real_digits() -> tuple[torch.Tensor, list[int]]:
    """The digits the models were trained on, as real calibration images with their labels."""
    from qua2.metrics.digits import load_digits_images

    images, labels = load_digits_images()
    return images, labels.tolist()


def _generate(adapter: Any, labels: list[int], seeds: list[int], noise: torch.Tensor,
              steps: int, weights: tuple[Any, int | None], acts: Any) -> torch.Tensor:
    cache, wbits = weights
    wctx = weight_quantization(adapter, cache, wbits) if wbits else nullcontext()
    actx = acts.apply(adapter.module) if acts is not None else nullcontext()
    with actx, wctx:  # activations outside: the BOS snapshot (unused here) would stay FP
        return adapter.generate(labels, seeds, steps=steps, noise=noise)


def run_model(name: str, args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    from qua2.activations import ActivationSetting, PreparedActivations, first_last_layers
    from qua2.models import load_model

    adapter = load_model(name)
    seeds = list(range(args.images))
    labels = [s % 10 for s in seeds]
    noise = adapter.initial_noise(seeds)
    fp = adapter.generate(labels, seeds, steps=args.steps, noise=noise)
    keep = first_last_layers(adapter.module, adapter.example_inputs(2))
    cache = out / "cache" / name
    wcache = weight_cache(adapter, cache / "weights")
    rows, per_image = [], {}

    def score(setting: str, method: str, seed: int, images: torch.Tensor, t0: float) -> None:
        psnr = psnr_per_image(images, fp)
        per_image[f"{setting}/{method}/{seed}"] = psnr
        rows.append({"model": name, "setting": setting, "method": method, "calib_seed": seed,
                     "psnr": float(psnr.mean()), "psnr_se": float(psnr.std() / len(psnr) ** .5),
                     **distribution_metrics(images, labels),
                     "seconds": round(time.time() - t0, 2), "keep_fp": ",".join(keep)})
        print(json.dumps(rows[-1]), flush=True)

    score("FP", "fp", 0, fp, time.time())
    for setting in args.settings:
        wbits, abits = SETTINGS[setting]
        t0 = time.time()
        weights = (wcache, wbits)
        if wbits is not None:
            score(setting, "weights-only", 0,
                  _generate(adapter, labels, seeds, noise, args.steps, weights, None), t0)
        dynamic = PreparedActivations(ActivationSetting(bits=abits, keep_fp=tuple(keep)))
        t0 = time.time()
        score(setting, "dynamic", 0,
              _generate(adapter, labels, seeds, noise, args.steps, weights, dynamic), t0)
        for seed in args.calib_seeds:
            for method in args.methods:
                t0 = time.time()
                acts = _calibration(adapter, method, abits, keep, labels, seed, args, cache)
                images = _generate(adapter, labels, seeds, noise, args.steps, weights, acts)
                score(setting, method, seed, images, t0)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in per_image.items()}, out / f"{name}-psnr.safetensors")
    return rows


# ---------------------------------------------------------------------------------- summary
def summarise(run_dir: Path, publish: Path | None) -> None:
    """Table (mean ± paired s.e.) and figure from a finished run directory."""
    import pandas as pd
    from safetensors.torch import load_file

    rows = pd.read_csv(run_dir / "rows.csv")
    lines = ["| model | setting | method | PSNR vs FP (dB), mean over calib seeds "
             "| spread over calib seeds | Δ PSNR vs real (paired, dB ± s.e.) | digits-FID "
             "| class acc. |",
             "|---|---|---|---|---|---|---|---|"]
    for model, group in rows.groupby("model", sort=False):
        per_image = load_file(run_dir / f"{model}-psnr.safetensors")
        for setting, sub in group.groupby("setting", sort=False):
            for method, part in sub.groupby("method", sort=False):
                lines.append(_summary_line(model, setting, method, part, per_image))
    text = "\n".join(lines) + "\n"
    (run_dir / "summary.md").write_text(text)
    print(text)
    figure = _figure(rows)
    figure.savefig(run_dir / "calibration.png", dpi=120, bbox_inches="tight")
    if publish is not None:
        publish.mkdir(parents=True, exist_ok=True)
        (publish / "summary.md").write_text(text)
        rows.to_csv(publish / "rows.csv", index=False)
        figure.savefig(publish / "calibration.png", dpi=120, bbox_inches="tight")


def _summary_line(model: str, setting: str, method: str, part: Any,
                  per_image: dict[str, torch.Tensor]) -> str:
    seeds = sorted(part["calib_seed"].unique())
    spread = f"{part['psnr'].min():.2f} – {part['psnr'].max():.2f}" if len(seeds) > 1 else "–"
    delta = "–"
    if method in METHODS and method != "real":
        diffs = [per_image[f"{setting}/{method}/{s}"] - per_image[f"{setting}/real/{s}"]
                 for s in seeds if f"{setting}/real/{s}" in per_image]
        if diffs:
            d = torch.stack(diffs).mean(0)  # per image, averaged over calibration seeds
            delta = f"{float(d.mean()):+.2f} ± {float(d.std() / len(d) ** .5):.2f}"
    psnr = "reference" if method == "fp" else f"{part['psnr'].mean():.2f}"
    return (f"| {model} | {setting} | {method} | {psnr} | {spread} | {delta} "
            f"| {part['digits_fid'].mean():.2f} | {part['class_accuracy'].mean():.3f} |")


def _figure(rows: Any) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(rows["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    methods = ["weights-only", "dynamic", *METHODS]
    for ax, model in zip(axes[0], models):
        sub = rows[rows["model"] == model]
        settings = [s for s in SETTINGS if s in set(sub["setting"])]
        width = 0.8 / len(methods)
        for j, method in enumerate(methods):
            part = sub[sub["method"] == method].groupby("setting")["psnr"]
            means, lows, highs = part.mean(), part.min(), part.max()
            xs = [i + (j - len(methods) / 2 + 0.5) * width for i in range(len(settings))]
            m = [means.get(s, float("nan")) for s in settings]
            err = [[m[i] - lows.get(s, m[i]) for i, s in enumerate(settings)],
                   [highs.get(s, m[i]) - m[i] for i, s in enumerate(settings)]]
            ax.bar(xs, m, width, yerr=err, label=method, capsize=2)
        ax.set_xticks(range(len(settings)), settings)
        ax.set_ylabel("PSNR vs FP images (dB, higher = closer)")
        ax.set_title(model)
    axes[0][0].legend(fontsize=8)
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/calibration"))
    parser.add_argument("--models", nargs="+", default=["digits-dit", "digits-unet"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--calib-seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=256, help="calibration samples")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--summarise", type=Path, help="only summarise this run directory")
    parser.add_argument("--publish", type=Path, help="also copy table/figure/rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.summarise is not None:
        summarise(args.summarise, args.publish)
        return
    import pandas as pd

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.models:
        rows += run_model(name, args, args.out)
        pd.DataFrame(rows).to_csv(args.out / "rows.csv", index=False)
    summarise(args.out, args.publish)


if __name__ == "__main__":
    main()
