"""The cross-validation report as Markdown tables a researcher can paste into a paper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLUMNS = (("spearman", "Spearman ρ"), ("kendall", "Kendall τ"), ("ndcg@10", "NDCG@10"),
           ("mae", "MAE"))


def _cell(summary: dict[str, float], key: str) -> str:
    mean, std = summary.get(f"{key}_mean"), summary.get(f"{key}_std")
    if mean is None or mean != mean:
        return "–"
    return f"{mean:.4g} ± {std:.2g}" if key == "mae" else f"{mean:.3f} ± {std:.3f}"


def markdown(report: dict[str, Any]) -> str:
    """The report's tables: held-out metrics per surrogate, then the learning curves."""
    target = report["target"]
    direction = "higher" if target["higher_is_better"] else "lower"
    lines = [f"# Surrogate cross-validation: `{target['name']}` ({direction} is better)", "",
             f"{report['folds']}-fold CV over {report['n_random']} random configurations "
             f"({report['n_layers']} layers); extra training rows: "
             f"{', '.join(report['train_extra']) or 'none'}. Mean ± std over held-out folds; "
             "pooled ρ over all held-out predictions.", "",
             "| surrogate | " + " | ".join(label for _, label in COLUMNS)
             + " | pooled ρ | seconds |",
             "|---" * (len(COLUMNS) + 3) + "|"]
    for kind, entry in report["surrogates"].items():
        summary = entry["summary"]
        best = " **(best)**" if kind == report.get("best") else ""
        cells = [_cell(summary, key) for key, _ in COLUMNS]
        lines.append(f"| {kind}{best} | " + " | ".join(cells)
                     + f" | {summary['pooled_spearman']:.3f} | {entry['seconds']:.0f} |")
    lines += _curve_lines(report)
    return "\n".join(lines) + "\n"


def _curve_lines(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for kind, entry in report["surrogates"].items():
        curve = entry.get("learning_curve") or []
        if not curve:
            continue
        if not lines:
            lines = ["", "## Learning curves (held-out Spearman ρ vs training configs)", ""]
        lines += [f"**{kind}**", "", "| training configs | Spearman ρ | NDCG@10 |",
                  "|---|---|---|"]
        lines += [f"| {p['n_train']} | {p['spearman_mean']:.3f} ± {p['spearman_std']:.3f} | "
                  f"{p['ndcg@10_mean']:.3f} |" for p in curve]
        lines.append("")
    return lines


def write_markdown(report: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(markdown(report))
    return path
