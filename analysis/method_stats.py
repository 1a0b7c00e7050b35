"""Model-free statistics of *which quantization method* a study's configs prefer.

Qua²SeDiMo's random configs choose, per layer, the bit-width with probability p (p ~ U(0, 1)
per config) and the method uniformly at random, independently of the bit-width. So the share
of layers a config quantizes with k-means varies from config to config independently of its
low-bit share, and a regression of the measured objective on the method shares, adjusted for
the low-bit share, estimates the effect of the method directly from the measurements — no
surrogate involved:

    objective ≈ a + b·low + b₂·low² + Σ_{m ≠ uaq} c_m · share_m

``c_m / 10`` is the change in objective when 10 % of the layers move from ``uaq`` (uniform,
scale-based) to method ``m`` at the same bit-widths. Per bit-width, the same regression on
option shares (``uaq-w4`` as reference) gives ``c_{m-wb} − c_{uaq-wb}``. Intervals: percentile
bootstrap over configs, refitting the regression on every resample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.common import StudyDir
from qua2.errors import Qua2Error
from qua2.specs import QuantOption
from qua2.stats import bootstrap, percentile_interval

UNIFORM = "uaq"
STEP = 0.10  # effects are reported per 10 percentage points of layers moved
#: The pooled contrast adjusted for average bits (overheads included) instead of bit-widths:
#: k-means codebooks cost storage, so at equal *average bits* other layers get fewer bits.
EQUAL_BITS = "k-means (any) vs uaq, equal avg bits"


def shares(sd: StudyDir, rows: pd.DataFrame) -> pd.DataFrame:
    """Per config: share of quantized layers per option, per method, and the low-bit share."""
    keys = sd.option_keys(rows)
    quantized = (keys != "fp").sum(axis=1).clip(lower=1)
    low_bits = min(o.bits for o in sd.options)
    frame = pd.DataFrame(index=keys.index)
    for option in sd.options:
        frame[option.key] = (keys == option.key).sum(axis=1) / quantized
    for method in dict.fromkeys(o.method for o in sd.options):
        frame[method] = frame[[o.key for o in sd.options if o.method == method]].sum(axis=1)
    frame["low"] = frame[[o.key for o in sd.options if o.bits == low_bits]].sum(axis=1)
    kmeans = [m for m in dict.fromkeys(o.method for o in sd.options) if m.startswith("kmeans")]
    frame["kmeans"] = frame[kmeans].sum(axis=1) if kmeans else 0.0
    frame["avg_bits"] = rows["avg_bits"].to_numpy(float)
    return frame


def _option(column: str) -> QuantOption | None:
    """The option a share column names (``uaq-w4``), or ``None`` (``uaq``, ``low`` …)."""
    try:
        return QuantOption.parse(column)
    except Qua2Error:
        return None


def _lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    design = np.column_stack([np.ones(len(x)), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef[1:]


def _covariates(table: pd.DataFrame, by: str = "low") -> np.ndarray:
    """Quadratic adjustment for the low-bit share (``low``) or the average bits (``bits``)."""
    column = table["low"] if by == "low" else table["avg_bits"]
    return np.column_stack([column, column ** 2])


@dataclass(frozen=True)
class Contrast:
    """``coef[column] − coef[base]`` of one regression (``base`` None: the reference)."""

    label: str
    method: str
    bits: str
    column: str
    base: str | None = None


Regression = tuple[list[str], "str | None", list[Contrast]]


def _contrasts(table: pd.DataFrame) -> list[Regression]:
    """The regressions: (share columns, covariates ``low``/``bits``/None, contrasts)."""
    methods = [m for m in ("kmeans_c", "kmeans_a", "group", "rtn") if m in table]
    if UNIFORM not in table or not methods:
        return []
    out: list[Regression] = []
    if any(m.startswith("kmeans") for m in methods):
        out.append((["kmeans"], "low", [Contrast("k-means (any) vs uaq", "kmeans", "all",
                                                 "kmeans")]))
        out.append((["kmeans"], "bits", [Contrast(EQUAL_BITS, "kmeans", "all", "kmeans")]))
    out.append((methods, "low", [Contrast(f"{m} vs uaq", m, "all", m) for m in methods]))
    parsed = {c: o for c in table.columns if (o := _option(c)) is not None}
    options = list(parsed)
    reference = max((k for k, o in parsed.items() if o.method == UNIFORM), default=None)
    if reference is not None:
        contrasts = []
        for option, quant in parsed.items():
            bits = str(quant.bits)
            base = QuantOption(UNIFORM, quant.bits).key
            if quant.method != UNIFORM:
                group = f" (g{quant.group_size})" if quant.group_size else ""
                contrasts.append(Contrast(f"{quant.method} vs uaq @ {bits} bits{group}",
                                          quant.method, bits, option,
                                          None if base == reference else base))
        out.append(([o for o in options if o != reference], None, contrasts))
    return out


def effect_table(table: pd.DataFrame, y: np.ndarray, rounds: int = 2000, seed: int = 0
                 ) -> pd.DataFrame:
    """Contrasts ``method vs uaq`` (pooled k-means, per method, per method at each
    bit-width) in objective units per +10 % of layers, with bootstrap 95% intervals."""
    rows = []
    for columns, covariates, contrasts in _contrasts(table):
        x = table[columns].to_numpy(float)
        if covariates is not None:
            x = np.column_stack([x, _covariates(table, covariates)])
        full = _lstsq(x, y)
        samples = bootstrap(len(y), lambda i, x=x: _lstsq(x[i], y[i]), rounds, seed)
        for c in contrasts:
            i = columns.index(c.column)
            j = columns.index(c.base) if c.base is not None else None

            def pick(coef: np.ndarray, i: int = i, j: int | None = j) -> np.ndarray:
                return coef[..., i] - (coef[..., j] if j is not None else 0.0)

            low, high = percentile_interval(pick(samples) * STEP)
            rows.append({"contrast": c.label, "method": c.method, "bits": c.bits,
                         "effect": float(pick(full)) * STEP, "lo": float(low),
                         "hi": float(high), "n": len(y)})
    return pd.DataFrame(rows, columns=["contrast", "method", "bits", "effect", "lo", "hi", "n"])


def binned_residuals(table: pd.DataFrame, y: np.ndarray, bins: int = 4, rounds: int = 2000,
                     seed: int = 0) -> pd.DataFrame:
    """Mean objective (adjusted for the low-bit share by a quadratic fit) per quantile bin of
    the k-means share, with bootstrap intervals. Model-free apart from that adjustment."""
    design = np.column_stack([np.ones(len(y)), _covariates(table)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    share = table["kmeans"].to_numpy(float)
    edges = np.unique(np.quantile(share, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, share, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for b in range(len(edges) - 1):
        values = residual[which == b]
        if not len(values):
            continue
        samples = bootstrap(len(values), lambda i, v=values: v[i].mean(), rounds, seed)
        low, high = percentile_interval(samples)
        rows.append({"bin": b, "share_lo": edges[b], "share_hi": edges[b + 1],
                     "share_mean": float(share[which == b].mean()),
                     "residual": float(values.mean()), "lo": float(low), "hi": float(high),
                     "n": len(values)})
    return pd.DataFrame(rows)


def anchors(sd: StudyDir) -> pd.DataFrame:
    """Uniform anchors per option: verified (held-out seeds, CI) when available, else the
    sampled evaluation (one value, no interval)."""
    primary = sd.primary
    table = sd.read_csv("verification", "table.csv")
    if table is not None and (table["kind"] == "anchor").any():
        rows = table[table["kind"] == "anchor"].drop_duplicates("id")
        frame = pd.DataFrame({"option": rows["name"].str.removeprefix("anchor-"),
                              "avg_bits": rows["avg_bits"], "value": rows[primary],
                              "lo": rows[f"{primary}_lo"], "hi": rows[f"{primary}_hi"],
                              "source": "verified"})
    else:
        rows = sd.done("uniform")
        keys = sd.option_keys(rows)
        frame = pd.DataFrame({"option": keys.iloc[:, 0].to_numpy(),
                              "avg_bits": rows["avg_bits"].to_numpy(),
                              "value": rows[primary].to_numpy(float), "lo": np.nan,
                              "hi": np.nan, "source": "sampled"})
    parsed = [QuantOption.parse(option) for option in frame["option"]]
    frame["method"] = [option.method for option in parsed]
    frame["bits"] = np.array([option.bits for option in parsed], dtype=int)
    return frame.sort_values(["bits", "method"]).reset_index(drop=True)


def _words(row: pd.Series) -> str:
    if row["lo"] > 0:
        return "better than uaq"
    if row["hi"] < 0:
        return "worse than uaq"
    return "not distinguishable from uaq"


def per_method(effect: pd.DataFrame) -> str:
    """``kmeans_c not distinguishable from uaq, kmeans_a worse than uaq`` (95% CIs)."""
    rows = effect[(effect["bits"] == "all") & (effect["method"] != "kmeans")]
    return ", ".join(f"{r['method']} {_words(r)}" for _, r in rows.iterrows())


def verdict(effect: pd.DataFrame) -> str:
    """The pooled k-means-vs-uaq contrast in words (CI excluding zero or not)."""
    row = effect[effect["contrast"] == "k-means (any) vs uaq"]
    if not len(row):
        row = effect[effect["bits"] == "all"]
    if not len(row):
        return "no k-means/uniform contrast in this search space"
    r = row.iloc[0]
    if r["lo"] > 0:
        return "k-means preferred (95% CI above 0)"
    if r["hi"] < 0:
        return "uniform (uaq) preferred (95% CI below 0)"
    return "no clear preference (95% CI includes 0)"
