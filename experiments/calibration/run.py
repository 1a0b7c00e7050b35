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
  digits-FID and class accuracy (distribution metrics, noisier);
* ``--calib-seeds`` repeat each calibration with fresh calibration samples, so the spread due
  to the calibration draw is visible next to the difference between methods.

Everything is library code: weights are quantized with :func:`qua2.quant.quantized` from an
option cache, activations with :mod:`qua2.activations`, images come from the adapter's
``generate`` with the FP run's noise, and they are scored by :mod:`qua2.study.scoring` (digits
suite) and :func:`qua2.metrics.fidelity.psnr_per_image`; figures are :mod:`qua2.plots` figures.

Usage::

    OMP_WAIT_POLICY=PASSIVE python experiments/calibration/run.py --out runs/calibration
    python experiments/calibration/run.py --dry-run          # the evaluations, nothing run
    python experiments/calibration/run.py --summarise runs/calibration \
        --publish experiments/calibration/results

Writes ``rows.csv`` (one row per model × setting × method × calibration seed, with per-image
PSNRs in ``<model>-psnr.safetensors``), ``summary.md`` and ``calibration.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
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
#: Rows that need no calibration: the FP model, weights alone, dynamic activations.
UNCALIBRATED = ("fp", "weights-only", "dynamic")


# ---------------------------------------------------------------------------------- plan
def plan(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """``(setting, method, calibration seed)`` of every evaluation of one model, in order."""
    steps = [("FP", "fp", 0)]
    for setting in args.settings:
        if SETTINGS[setting][0] is not None:
            steps.append((setting, "weights-only", 0))
        steps.append((setting, "dynamic", 0))
        steps += [(setting, method, seed) for seed in args.calib_seeds for method in args.methods]
    return steps


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


# ---------------------------------------------------------------------------------- activations
def activations(adapter: Any, method: str, bits: int, keep: Sequence[str], labels: list[int],
                seed: int, args: argparse.Namespace, cache: Path) -> Any:
    """Dynamic per-token activations (``dynamic``) or static ranges calibrated by ``method``."""
    from qua2.activations import ActivationSetting, PreparedActivations, prepare_activations

    if method == "dynamic":
        return PreparedActivations(ActivationSetting(bits=bits, keep_fp=tuple(keep)))
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


# ---------------------------------------------------------------------------------- running
def generate(adapter: Any, reference: Any, steps: int, weights: tuple[Any, int] | None = None,
             acts: Any = None) -> torch.Tensor:
    """The reference's seeds and labels generated from its noise, with quantized weights
    (``(cache, bits)``) and/or activations (a ``PreparedActivations``)."""
    wctx = weight_quantization(adapter, *weights) if weights is not None else nullcontext()
    actx = acts.apply(adapter.module) if acts is not None else nullcontext()
    with actx, wctx:  # activations outside: the BOS snapshot (unused here) would stay FP
        return adapter.generate(list(reference.conditions), reference.seeds, steps=steps,
                                noise=reference.noise)


def digits_scorer() -> Any:
    """The digits metric suite behind a study scorer (class-conditioned)."""
    from qua2.metrics.suite import MetricSuite
    from qua2.study.scoring import Scorer

    return Scorer(MetricSuite.for_digits(), "class")


def score(scorer: Any, images: torch.Tensor, reference: Any) -> tuple[dict[str, float],
                                                                       torch.Tensor]:
    """digits-FID and class accuracy, and the PSNR of every image vs its FP twin."""
    from qua2.metrics.fidelity import psnr_per_image

    metrics = scorer.score(images, reference)
    return ({k: metrics[k] for k in ("digits_fid", "class_accuracy")},
            psnr_per_image(images, reference.images))


def run_model(adapter: Any, name: str, args: argparse.Namespace, out: Path,
              scorer: Any = None) -> list[dict[str, Any]]:
    """Every evaluation of :func:`plan` on one model; per-image PSNRs to ``out``."""
    from safetensors.torch import save_file

    from qua2.activations import first_last_layers
    from qua2.study.reference import Reference

    scorer = scorer or digits_scorer()
    seeds = list(range(args.images))
    labels = [s % 10 for s in seeds]
    noise = adapter.initial_noise(seeds)
    reference = Reference(adapter.generate(labels, seeds, steps=args.steps, noise=noise), noise,
                          seeds, labels)
    keep = first_last_layers(adapter.module, adapter.example_inputs(2))
    cache = out / "cache" / name
    wcache = weight_cache(adapter, cache / "weights")
    rows, per_image = [], {}
    for setting, method, seed in plan(args):
        t0 = time.time()
        if method == "fp":
            images = reference.images
        else:
            wbits, abits = SETTINGS[setting]
            weights = (wcache, wbits) if wbits is not None else None
            acts = None if method == "weights-only" else \
                activations(adapter, method, abits, keep, labels, seed, args, cache)
            images = generate(adapter, reference, args.steps, weights, acts)
        metrics, psnr = score(scorer, images, reference)
        per_image[f"{setting}/{method}/{seed}"] = psnr
        rows.append({"model": name, "setting": setting, "method": method, "calib_seed": seed,
                     "psnr": float(psnr.mean()), "psnr_se": float(psnr.std() / len(psnr) ** .5),
                     **metrics, "seconds": round(time.time() - t0, 2), "keep_fp": ",".join(keep)})
        print(json.dumps(rows[-1]), flush=True)
    save_file({k: v.contiguous() for k, v in per_image.items()}, out / f"{name}-psnr.safetensors")
    return rows


# ---------------------------------------------------------------------------------- summary
def summarise(run_dir: Path, publish: Path | None) -> str:
    """Table (mean ± paired s.e.) and figure from a finished run directory; returns the table."""
    import pandas as pd
    from safetensors.torch import load_file

    from qua2.plots import save_figure

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
    figure = save_figure(calibration_figure(rows), run_dir / "calibration.png")
    if publish is not None:
        publish.mkdir(parents=True, exist_ok=True)
        (publish / "summary.md").write_text(text)
        rows.to_csv(publish / "rows.csv", index=False)
        shutil.copyfile(figure, publish / "calibration.png")
    return text


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


def calibration_figure(rows: Any) -> Any:
    """PSNR vs FP per setting and method (bars: mean; whiskers: calibration-seed range)."""
    from qua2.plots import figure_canvas

    models = list(dict.fromkeys(rows["model"]))
    fig = figure_canvas(6 * len(models), 4)
    axes = fig.subplots(1, len(models), squeeze=False)
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


# ---------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
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
    parser.add_argument("--dry-run", action="store_true",
                        help="print the evaluations of every model; load and write nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.dry_run:
        evaluations = plan(args)
        for name in args.models:
            for setting, method, seed in evaluations:
                suffix = "" if method in UNCALIBRATED else f" (calibration seed {seed})"
                print(f"{name} {setting} {method}{suffix}")
        print(f"{len(evaluations) * len(args.models)} evaluations of {args.images} images "
              f"each → {args.out}")
        return 0
    torch.set_num_threads(args.threads)
    if args.summarise is not None:
        print(summarise(args.summarise, args.publish))
        return 0
    import pandas as pd

    from qua2.models import load_model

    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    scorer = digits_scorer()
    for name in args.models:
        rows += run_model(load_model(name), name, args, args.out, scorer)
        pd.DataFrame(rows).to_csv(args.out / "rows.csv", index=False)
    print(summarise(args.out, args.publish))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
