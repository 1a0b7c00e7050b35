"""Compare studies: do U-Nets prefer uniform (scale-based) quantization and DiTs k-means?

    python -m analysis.compare_studies runs/digits-dit runs/digits-unet --out analysis-out/compare

Qua²SeDiMo (Mills et al., AAAI 2025) reports that U-Net denoisers favour the uniform,
scale-based quantizer (UAQ) and DiTs favour k-means. Three lines of evidence per study, each
with 95% bootstrap intervals, written to ``OUT/``:

1. ``method_effect.png/.csv`` — a regression of the measured objective of the random configs
   on the share of layers per method, adjusted for the low-bit share (no surrogate;
   :mod:`analysis.method_stats`), pooled, per method and per bit-width;
2. ``method_share_bins.png/.csv`` — the adjusted objective in quartiles of the k-means share;
3. ``uniform_anchors.png/.csv`` — every layer on one option (verified with CIs when the study
   has ``verification/``, else the single sampled evaluation);

plus the explanation's view (``shap_method_preference.csv``: mean SHAP per option over all
layers) and the most sensitive op types and blocks of each study
(``sensitivity_top.png/.csv``). ``compare.md`` states per study which way the evidence points,
and whether the paper's claim holds — "partial" when a study has not finished its configs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import compare_figures as figs
from analysis import method_stats as stats
from analysis.common import (
    StudyDir,
    argument_parser,
    ci,
    markdown_table,
    open_studies,
    report_written,
    run_main,
    save,
    write_csv,
)
from qua2.errors import Qua2Error
from qua2.explain.summaries import group_importance, method_preference, study_explanation

TRANSFORMER_FAMILIES = ("dit", "pixart", "hunyuan", "sd3", "flux")


def architecture(sd: StudyDir) -> str:
    """``U-Net`` when the graph has down/up stages (or the family is one), else ``DiT``."""
    if sd.graph is not None:
        stages = set(sd.graph.nodes["stage"])
        return "U-Net" if {"down", "up"} & stages else "DiT"
    family = sd.study.config.model.family
    return "DiT" if any(f in family for f in TRANSFORMER_FAMILIES) else "U-Net"


def analyse(sd: StudyDir, rounds: int, seed: int) -> dict[str, Any]:
    """Every table of one study (see the module docstring)."""
    random = sd.done("random")
    if len(random) < 10:
        raise Qua2Error(f"{sd.directory}: only {len(random)} random configs are done; the "
                        "comparison needs at least 10.")
    table = stats.shares(sd, random)
    y = sd.quality(random)
    expl = study_explanation(sd.study)
    return {"sd": sd, "arch": architecture(sd),
            "effects": stats.effect_table(table, y, rounds, seed),
            "bins": stats.binned_residuals(table, y, rounds=rounds, seed=seed),
            "anchors": stats.anchors(sd),
            "shap": method_preference(expl, rounds, seed), "source": expl.source,
            "roles": group_importance(expl, "role", rounds, seed),
            "blocks": group_importance(expl, "block", rounds, seed)}


def claim(results: dict[str, dict[str, Any]]) -> str:
    """Whether "U-Nets prefer uniform, DiTs prefer k-means" holds on these studies."""
    verdicts: dict[str, list[str]] = {}
    for name, r in results.items():
        verdicts.setdefault(r["arch"], []).append(f"{name}: {stats.verdict(r['effects'])}")
    partial = any(r["sd"].partial for r in results.values())
    tail = " The data are PARTIAL, so this can change." if partial else ""
    listed = "; ".join(v for group in verdicts.values() for v in group)
    if not {"DiT", "U-Net"} <= set(verdicts):
        return ("Cannot test the claim: it needs a DiT and a U-Net study (have "
                f"{listed})." + tail)
    dit_ok = all(": k-means" in v for v in verdicts["DiT"])
    unet_ok = all(": uniform" in v for v in verdicts["U-Net"])
    if dit_ok and unet_ok:
        return f"The claim holds on these studies ({listed})." + tail
    return f"The claim is not supported here ({listed})." + tail


def titles(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: f"{name} ({r['arch']}, {len(r['sd'].done('random'))} configs"
            + (", PARTIAL)" if r["sd"].partial else ")") for name, r in results.items()}


def write(results: dict[str, dict[str, Any]], out: Path) -> list[Path]:
    written: list[Path] = []
    names = titles(results)
    objective = "objective"
    primary = next(iter(results.values()))["sd"].primary
    save(figs.method_effects({n: r["effects"] for n, r in results.items()}, names, objective),
         out / "method_effect.png", written)
    save(figs.binned({n: r["bins"] for n, r in results.items()}, names, objective),
         out / "method_share_bins.png", written)
    save(figs.anchors({n: r["anchors"] for n, r in results.items()}, names, primary),
         out / "uniform_anchors.png", written)
    save(figs.top_op_types({n: r["roles"] for n, r in results.items()}, names),
         out / "sensitivity_top.png", written)
    for key, file in (("effects", "method_effect"), ("bins", "method_share_bins"),
                      ("anchors", "uniform_anchors"), ("shap", "shap_method_preference"),
                      ("roles", "sensitivity_op_types"), ("blocks", "sensitivity_blocks")):
        frame = pd.concat([r[key].assign(study=n) for n, r in results.items()],
                          ignore_index=True)
        write_csv(frame, out / f"{file}.csv", written)
    summary = {n: {"study": str(r["sd"].directory), "architecture": r["arch"],
                   "partial": r["sd"].partial, "verdict": stats.verdict(r["effects"]),
                   "per_method": stats.per_method(r["effects"]),
                   "random_configs": len(r["sd"].done("random")),
                   "effects": r["effects"].to_dict("records")} for n, r in results.items()}
    summary["claim"] = claim(results)
    (out / "compare.json").write_text(json.dumps(summary, indent=1, default=str))
    (out / "compare.md").write_text(markdown(results))
    return [*written, out / "compare.json", out / "compare.md"]


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = ["# Do U-Nets prefer uniform and DiTs k-means quantization?", "",
             f"**{claim(results)}**", ""]
    for name, r in results.items():
        sd = r["sd"]
        lines += [f"## {name} ({r['arch']})", "", f"`{sd.directory}` — {sd.describe()}.", ""]
        if sd.partial:
            lines += ["**Partial study**: only the configs done so far are used.", ""]
        effects = r["effects"].assign(**{"Δ objective per +10 % of layers [95% CI]": [
            ci(e, lo, hi) for e, lo, hi in zip(r["effects"]["effect"], r["effects"]["lo"],
                                                r["effects"]["hi"])]})
        lines += [f"Verdict: **{stats.verdict(r['effects'])}**; per method: "
                  f"{stats.per_method(r['effects'])}.", "",
                  "Regression of the measured objective (higher = better) of the random configs "
                  "on the share of layers per method, adjusted (quadratically) for the low-bit "
                  "share — or, in the *equal avg bits* row, for the average bits with "
                  "overheads; the *@ b bits* rows compare option shares at one bit-width:", "",
                  markdown_table(effects, ["contrast", "Δ objective per +10 % of layers "
                                          "[95% CI]", "n"]), ""]
        anchors = r["anchors"].assign(**{f"{sd.primary}": [
            ci(v, lo, hi, 4) for v, lo, hi in zip(r["anchors"]["value"], r["anchors"]["lo"],
                                                  r["anchors"]["hi"])]})
        lines += ["Uniform anchors (every layer on one option, "
                  f"{anchors['source'].iloc[0] if len(anchors) else 'none'}):", "",
                  markdown_table(anchors, ["option", "avg_bits", sd.primary]), ""]
        shap = r["shap"].assign(**{"mean SHAP per layer cell [95% CI]": [
            ci(v, lo, hi) for v, lo, hi in zip(r["shap"]["mean_shap"], r["shap"]["lo"],
                                               r["shap"]["hi"])]})
        lines += [f"Explanation view ({r['source']}; intervals conditional on the surrogate):",
                  "", markdown_table(shap, ["option", "mean SHAP per layer cell [95% CI]"]), "",
                  "Most sensitive op types: " + _top(r["roles"]) + ".", "",
                  "Most sensitive blocks: " + _top(r["blocks"]) + ".", ""]
    lines += ["Figures: `method_effect.png`, `method_share_bins.png`, `uniform_anchors.png`, "
              "`sensitivity_top.png` (each with its CSV)."]
    return "\n".join(lines) + "\n"


def _top(frame: pd.DataFrame, count: int = 3) -> str:
    total = frame["mean_abs_shap"].sum()
    return ", ".join(f"{g} ({100 * v / total:.0f} %)" for g, v in
                     zip(frame["group"].head(count), frame["mean_abs_shap"].head(count)))


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("Compare the quantization-method preference of studies "
                             "(e.g. digits-dit vs digits-unet).")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for sd in open_studies(args.studies):
        print(sd.describe(), file=sys.stderr)
        results[sd.label] = analyse(sd, args.rounds, args.seed)
    written = write(results, out)
    print(claim(results))
    report_written(out, written)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
