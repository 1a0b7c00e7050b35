"""Replicates: one study run K times with independent seeds, and claims that must hold in all.

The bootstrap intervals of verification resample the *images* of one study run, so they say
nothing about what else was random in that run: which configurations the sampler drew, how
the surrogates were fitted (folds, trees, initial weights) and — optionally — the digits
model's training. A headline that holds in one run can fail in the next (issue 19: a U-Net
re-run turned "3.25 bits beat uniform 4-bit" into "worse"). Replicates make that second source
of variation visible: ``qua2 run STUDY.yaml --out DIR --replicates K`` runs K sibling studies
(``DIR/replicate-1`` … ``DIR/replicate-K``) whose sampler and surrogate seeds differ
(:func:`replicate_config`), and :func:`pool_replicates` reports every paired comparison with
two intervals:

- *within* a replicate: each replicate's own paired-bootstrap interval (as today);
- *across* replicates: a t-interval over the K replicate deltas (mean ± t₀.₉₇₅,K−1 · s/√K),
  the spread a re-run would show.

A claim ("qua2's pick is better than X at budget B") **holds** only if the across-replicate
interval excludes zero on its side *and* no replicate's own interval says the opposite;
otherwise it is reported as "mixed" (replicates disagree) or "tie". With K = 3 the t-quantile
is 4.30, so only effects that are large compared with their replicate-to-replicate spread
hold — the conservative choice for a headline.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from qua2.io import atomic_write
from qua2.study.config import StudyConfig

REPLICATE_DIR = "replicate-{}"
COMPARISONS = ("verification", "comparisons.csv")


def replicate_config(config: StudyConfig, replicate: int) -> StudyConfig:
    """The study of replicate ``replicate`` (1-based): replicate 1 is the study as written;
    replicate r draws its configurations and fits its surrogates with seeds offset by r − 1.
    The image seeds (sampling, selection, verification) stay, so the replicates are compared on
    the same images and differ only in what the study itself randomises."""
    offset = replicate - 1
    return dataclasses.replace(
        config, name=f"{config.name}-r{replicate}",
        config_sampler=dataclasses.replace(config.config_sampler,
                                           seed=config.config_sampler.seed + offset),
        seeds=dataclasses.replace(config.seeds, surrogates=config.seeds.surrogates + offset))


def replicate_dirs(out: Path) -> list[Path]:
    """The replicate directories under ``out``, in replicate order."""
    found = sorted(out.glob(REPLICATE_DIR.format("*")),
                   key=lambda p: int(p.name.rsplit("-", 1)[1]) if p.name.rsplit("-", 1)[1]
                   .isdigit() else math.inf)
    return [p for p in found if (p / "study.yaml").is_file()]


def pool_replicates(directories: list[Path], level: float = 0.95) -> pd.DataFrame:
    """One row per (budget, compared configuration) found in every replicate's comparisons."""
    from scipy import stats

    from qua2.metrics.registry import higher_is_better

    frames = []
    for index, directory in enumerate(directories, start=1):
        path = directory.joinpath(*COMPARISONS)
        if path.is_file():
            frames.append(pd.read_csv(path).assign(replicate=index))
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    rows = []
    for (budget, other, metric), group in table.groupby(["budget", "other", "metric"]):
        deltas = group["delta"].to_numpy(float)
        mean = float(deltas.mean())
        if len(deltas) > 1:
            half = stats.t.ppf(0.5 + level / 2, len(deltas) - 1) * deltas.std(ddof=1) / \
                math.sqrt(len(deltas))
        else:
            half = math.nan
        rows.append({"budget": budget, "other": other, "metric": metric,
                     "replicates": len(deltas), "delta_mean": mean,
                     "across_lo": mean - half, "across_hi": mean + half,
                     "deltas": " ".join(f"{d:+.2f}" for d in deltas),
                     "within": " ".join(f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in
                                        zip(group["delta_lo"], group["delta_hi"], strict=True)),
                     "verdicts": " ".join(group["verdict"]),
                     "holds": claim(list(group["verdict"]), mean - half, mean + half,
                                    not higher_is_better(metric))})
    return pd.DataFrame(rows)


def claim(verdicts: list[str], low: float, high: float, lower_is_better: bool) -> str:
    """``better``/``worse`` when the across-replicate interval ``[low, high]`` of Δ = pick −
    other excludes 0 and no replicate's verdict says the opposite; ``mixed`` when replicates
    contradict each other; else ``tie`` (module docstring)."""
    if {"better", "worse"} <= set(verdicts):
        return "mixed"
    if not np.isfinite([low, high]).all() or low <= 0 <= high:
        return "tie"
    pick_lower = high < 0
    return "better" if pick_lower == lower_is_better else "worse"


def write_pooled(out: Path, pooled: pd.DataFrame) -> Path:
    """``replicates.csv`` and ``replicates.md`` in ``out``; returns the Markdown path."""
    atomic_write(out / "replicates.csv", pooled.to_csv(index=False).encode())
    lines = [f"# {len(replicate_dirs(out))} replicates of one study", "",
             "qua2's verified pick per budget against each compared configuration: Δ = pick − "
             "other on the primary metric, per replicate with its paired-bootstrap interval "
             "(within), and the 95% t-interval over replicates (across). A claim holds only "
             "if the across-replicate interval excludes 0 and no replicate says the opposite "
             "(qua2/search/replicates.py).", "",
             "| budget | vs | Δ per replicate (within) | mean Δ [across] | holds |",
             "|---|---|---|---|---|"]
    for _, row in pooled.iterrows():
        lines.append(f"| {row['budget']:g} | {row['other']} | {row['deltas']} "
                     f"({row['within']}) | {row['delta_mean']:+.2f} "
                     f"[{row['across_lo']:+.2f}, {row['across_hi']:+.2f}] | {row['holds']} |")
    path = out / "replicates.md"
    atomic_write(path, ("\n".join(lines) + "\n").encode())
    return path
