"""Shared helpers of the analysis scripts: reading a study directory, figures, Markdown tables
and the command line. Statistics come from :mod:`qua2.stats`, attributions from
:mod:`qua2.explain.summaries`.

Everything here reads files a study wrote (``study.yaml``, ``study.sqlite``, ``graph.json``,
``reference/fp_metrics.json``, the CSV/JSON of later stages); nothing loads a model.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qua2.plots import save_figure
from qua2.specs import QuantOption
from qua2.study.results import results_frame
from qua2.study.study import Study

LAYER_PREFIX = "layer:"


# --------------------------------------------------------------------------- study directory
@dataclass
class StudyDir:
    """A study directory opened for reading: its config, its done rows and its labels."""

    study: Study
    frame: pd.DataFrame  # done rows of results_frame(study), with per-layer option columns
    alias: str | None = None  # a label that tells apart two studies of the same name

    @classmethod
    def open(cls, directory: str | Path) -> StudyDir:
        study = Study.open(directory)
        if not study.path("study.sqlite").exists():
            frame = pd.DataFrame(columns=["id", "kind", "status", "avg_bits"])
        else:
            frame = results_frame(study)
        done = frame[frame["status"] == "done"].reset_index(drop=True)
        return cls(study, done)

    # ------------------------------------------------------------------ names and counts
    @property
    def directory(self) -> Path:
        return self.study.directory

    @property
    def name(self) -> str:
        return self.study.config.name

    @property
    def label(self) -> str:
        """The study's name, or its alias when several studies share a name."""
        return self.alias or self.name

    @property
    def primary(self) -> str:
        return self.study.config.metrics.primary

    @property
    def lower_is_better(self) -> bool:
        return self.study.config.metrics.lower_is_better

    def done(self, kind: str) -> pd.DataFrame:
        """Done rows of one kind (``random``, ``uniform``, ``sweep`` …)."""
        return self.frame[self.frame["kind"] == kind].reset_index(drop=True)

    @property
    def planned_random(self) -> int:
        return self.study.config.config_sampler.num_configs

    @property
    def partial(self) -> bool:
        """Fewer random configs done than the study YAML asks for."""
        return len(self.done("random")) < self.planned_random

    @property
    def planned_sweep(self) -> int:
        """Rows of a complete one-at-a-time sweep: layers × options."""
        return len(self.layers) * len(self.options)

    @property
    def sweep_complete(self) -> bool:
        return len(self.done("sweep")) >= self.planned_sweep

    def describe(self) -> str:
        """``digits-dit: 175 of 300 random configs (PARTIAL), 6 uniform, 12 of 234 sweep``."""
        counts = self.frame["kind"].value_counts()
        state = " (PARTIAL)" if self.partial else ""
        sweep = int(counts.get("sweep", 0))
        sweep_text = f"{sweep} sweep" if sweep in (0, self.planned_sweep) else \
            f"{sweep} of {self.planned_sweep} sweep"
        return (f"{self.name}: {int(counts.get('random', 0))} of {self.planned_random} random "
                f"configs{state}, {int(counts.get('uniform', 0))} uniform, {sweep_text}")

    # ------------------------------------------------------------------ layers and options
    @cached_property
    def graph(self) -> Any:
        """The stored operation graph (``graph.json``), or ``None``."""
        data = self.read_json("graph.json")
        if data is None:
            return None
        from qua2.graph.opgraph import OpGraph

        return OpGraph.from_dict(data)

    @cached_property
    def layers(self) -> list[str]:
        """Quantizable layers in execution order (graph order, then any others)."""
        columns = [c[len(LAYER_PREFIX):] for c in self.frame.columns
                   if c.startswith(LAYER_PREFIX)]
        ordered = self.graph.layers() if self.graph is not None else []
        return list(dict.fromkeys([*ordered, *columns]))

    @cached_property
    def layer_labels(self) -> pd.DataFrame:
        """One row per layer: role (op type), component, op_type, block, block_index, stage."""
        from qua2.explain.grouping import layer_table

        return layer_table(self.layers, self.graph)

    def option_keys(self, rows: pd.DataFrame) -> pd.DataFrame:
        """``[configs × layers]`` option keys (``fp`` where a layer stays in full precision)."""
        columns = [LAYER_PREFIX + layer for layer in self.layers]
        keys = rows.reindex(columns=columns).fillna("fp")
        keys.columns = self.layers
        keys.index = rows["id"].to_numpy()
        return keys

    @cached_property
    def options(self) -> list[QuantOption]:
        return list(self.study.config.search_space.build().options)

    # ------------------------------------------------------------------ quality
    def quality(self, rows: pd.DataFrame) -> np.ndarray:
        """The study's objective (higher is better: −FID − λ·bits for digits studies)."""
        return rows["objective"].to_numpy(dtype=float)

    @cached_property
    def fp_metrics(self) -> dict[str, float]:
        return self.read_json("reference", "fp_metrics.json") or {}

    # ------------------------------------------------------------------ artifacts
    def read_json(self, *parts: str) -> Any:
        path = self.directory.joinpath(*parts)
        return json.loads(path.read_text()) if path.is_file() else None

    def read_csv(self, *parts: str, **kwargs: Any) -> pd.DataFrame | None:
        path = self.directory.joinpath(*parts)
        if not path.is_file() or path.stat().st_size == 0:
            return None
        return pd.read_csv(path, **kwargs)


def open_studies(directories: Sequence[str | Path]) -> list[StudyDir]:
    """Open every directory; studies sharing a name get aliases ``name``, ``name-2`` …"""
    studies, seen = [], {}
    for directory in directories:
        sd = StudyDir.open(directory)
        seen[sd.name] = seen.get(sd.name, 0) + 1
        if seen[sd.name] > 1:
            sd.alias = f"{sd.name}-{seen[sd.name]}"
        studies.append(sd)
    return studies


# --------------------------------------------------------------------------- output
def save(fig: Any, path: Path, written: list[Path]) -> None:
    save_figure(fig, path)
    written.append(path)


def write_csv(frame: pd.DataFrame, path: Path, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    written.append(path)


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a Markdown cell (``–`` for missing)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.{digits}g}"


def ci(value: float, low: float, high: float, digits: int = 3) -> str:
    """``1.23 [0.98, 1.51]``."""
    if low is None or not np.isfinite(low):
        return fmt(value, digits)
    return f"{fmt(value, digits)} [{fmt(low, digits)}, {fmt(high, digits)}]"


def markdown_table(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """A plain Markdown table of ``frame`` (cells already formatted or numbers)."""
    columns = list(columns or frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(
            row[c] if isinstance(row[c], str) else fmt(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def argument_parser(description: str) -> argparse.ArgumentParser:
    """``STUDY_DIR [STUDY_DIR …] --out DIR`` plus the script's own flags."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("studies", nargs="+", metavar="STUDY_DIR", help="study directories")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--rounds", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    return parser


def run_main(main: Callable[[list[str] | None], int]) -> int:
    """Run a script's ``main``; bad input (a ``Qua2Error``) becomes one line and exit code 2."""
    from qua2.errors import Qua2Error

    try:
        return main(None)
    except Qua2Error as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def report_written(out: Path, written: list[Path]) -> None:
    """Print where everything went (one line per file, relative to ``out``)."""
    print(f"wrote {len(written)} files to {out}:")
    for path in written:
        print(f"  {path.relative_to(out) if path.is_relative_to(out) else path}")
