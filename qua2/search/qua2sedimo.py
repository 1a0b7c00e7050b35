"""Qua²SeDiMo's configuration building (Mills et al., AAAI 2025), repaired to a hard budget.

Qua²SeDiMo scores every variant of every sub-graph (``qua2 explain`` writes these scores as
``subgraph_scores.csv`` and the top variant of each sub-graph as ``best_variants.csv``) and
builds a configuration by merging the top variants. The paper has no hard bit budget; qua2
repairs the merged configuration into the budget by making layers cheaper one step at a time,
starting with the sub-graphs whose scores vary least (whose choices matter least).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qua2.io import read_json_object, rerun_stage
from qua2.search.baselines import repair_to_budget
from qua2.search.budget import CostTable
from qua2.study.study import Study


def explain_folder(study: Study) -> Path | None:
    """The explanation folder with sub-graph scores, preferring the best fitted surrogate's."""
    root = study.directory / "explain"
    report = study.directory / "surrogates" / "cv_report.json"
    best = read_json_object(report, rerun_stage(study.directory, "fit")).get("best") \
        if report.exists() else None
    folders = ([root / best] if best else []) + sorted(p for p in root.glob("*") if p.is_dir())
    for folder in folders:
        if (folder / "best_variants.csv").exists() and (folder / "subgraph_scores.csv").exists():
            return folder
    return None


def composed_choice(study: Study, table: CostTable, budget_bits: float) -> np.ndarray | None:
    """The merged top sub-graph variants, repaired into ``budget_bits``; None without scores."""
    from qua2.study.graph import study_graph

    folder = explain_folder(study)
    if folder is None:
        return None
    best = pd.read_csv(folder / "best_variants.csv")
    scores = pd.read_csv(folder / "subgraph_scores.csv")
    spread = scores.groupby("subgraph")["score"].agg(lambda s: float(s.max() - s.min()))
    parts = {part.name: part for part in study_graph(study).partition()}
    layer_index = {layer: i for i, layer in enumerate(table.layers)}
    option_index = {o.key: i for i, o in enumerate(table.options)}
    choice = table.nbytes.argmax(1)  # layers no sub-graph covers start at the richest option
    priority = np.full(len(table.layers), np.inf)
    for _, row in best.iterrows():
        layers = [name for name in parts[row["subgraph"]].layers if name in layer_index]
        for layer, key in zip(layers, str(row["variant"]).split("|")):
            choice[layer_index[layer]] = option_index[key]
            priority[layer_index[layer]] = spread.get(row["subgraph"], 0.0)
    rng = np.random.default_rng(0)
    return repair_to_budget(choice, table, table.capacity(budget_bits), rng, priority)
