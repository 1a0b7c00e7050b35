"""The search stage of a study: candidates for every average-bit budget.

``stage_search`` (through :func:`search_candidates`) writes ``search/candidates.json``: for
every budget, qua2's picks (surrogate → integer programme → local search) and the baselines
(uniform, best sampled, MixDQ IP on the sweep, random at budget, Qua²SeDiMo sub-graph
composition when available). ``qua2.search.verification.stage_verify`` then evaluates every
distinct candidate for real on the held-out verification seeds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from qua2.io import read_json, rerun_stage
from qua2.log import say
from qua2.search.baselines import (
    best_sampled,
    best_uniform,
    edge_recipe,
    mixdq_ip,
    random_at_budget,
)
from qua2.search.budget import CostTable
from qua2.search.objective import search_predictor
from qua2.search.refine import Predictor, search_budget
from qua2.specs import QuantConfig
from qua2.study.stages import RunOptions
from qua2.study.store import Store
from qua2.study.study import Study

if TYPE_CHECKING:
    from qua2.quant.cache import OptionCache

DEFAULT_BUDGETS = (3.25, 3.5, 3.75, 4.0)
CANDIDATES_FILE = ("search", "candidates.json")


@dataclass
class Candidate:
    """One configuration proposed for a budget."""

    budget: float | None  # None: a reference verified once for all budgets (uniform anchors)
    name: str  # e.g. "qua2-1", "uniform", "mixdq-ip", "anchor-uaq-w4"
    kind: str  # "qua2", "baseline" or "anchor"
    config: QuantConfig
    avg_bits: float
    predicted: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"budget": self.budget, "name": self.name, "kind": self.kind,
                "id": self.config.digest(), "avg_bits": self.avg_bits,
                "predicted": self.predicted, "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(data["budget"], data["name"], data["kind"],
                   QuantConfig.from_dict(data["config"]), data["avg_bits"], data["predicted"])


# --------------------------------------------------------------------------- study data
def cost_table(study: Study, cache: OptionCache) -> CostTable:
    # The cache holds exactly the study's quantizable layers in model order (the cache stage
    # builds it from them), so no model needs loading to know the costs.
    return CostTable.from_cache(cache.layers, study.config.search_space.build(), cache)


def evaluated(study: Study, table: CostTable,
              kinds: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Choice matrix and objectives of the done rows of ``kinds``."""
    with Store(study.path("study.sqlite")) as store:
        rows = [r for k in kinds for r in store.rows(status="done", kind=k)]
    if not rows:
        return np.zeros((0, len(table.layers)), dtype=int), np.zeros(0)
    choices = np.stack([table.to_choice(QuantConfig.from_dict(r.config)) for r in rows])
    return choices, np.array([r.metrics["objective"] for r in rows])


def sweep_sensitivity(study: Study, table: CostTable) -> np.ndarray | None:
    """``[L, O]`` measured objective of each layer alone at each option (``-inf`` if missing)."""
    with Store(study.path("study.sqlite")) as store:
        rows = store.rows(status="done", kind="sweep")
    if not rows:
        return None
    layer_index = {layer: i for i, layer in enumerate(table.layers)}
    option_index = {o.key: i for i, o in enumerate(table.options)}
    values = np.full(table.nbytes.shape, -np.inf)
    for row in rows:
        values[layer_index[row.tags["layer"]], option_index[row.tags["option"]]] = \
            row.metrics["objective"]
    return values


# --------------------------------------------------------------------------- candidates
def budget_candidates(study: Study, table: CostTable, predict: Predictor | None,
                      budget: float, top: int = 2, random_count: int = 1) -> list[Candidate]:
    """qua2's picks and every baseline at one budget (baselines that cannot fit are skipped)."""
    out: list[Candidate] = []

    def add(name: str, kind: str, choice: np.ndarray | None, predicted: float | None = None):
        if choice is not None:
            out.append(Candidate(budget, name, kind, table.to_config(choice),
                                 table.avg_bits(choice), predicted))

    if predict is not None:
        for rank, (choice, score) in enumerate(search_budget(predict, table, budget, top=top)):
            add(f"qua2-{rank + 1}", "qua2", choice, score)
    anchors, anchor_objectives = evaluated(study, table, ["uniform"])
    uniform_scores = {int(c[0]): o for c, o in zip(anchors, anchor_objectives)}
    scores = [uniform_scores.get(i, -np.inf) for i in range(len(table.options))]
    add("uniform", "baseline", best_uniform(table, budget, scores if uniform_scores else None))
    sampled, objectives = evaluated(study, table, ["random", "uniform"])
    index = best_sampled(sampled, objectives, table, budget)
    add("best-sampled", "baseline", sampled[index] if index is not None else None)
    sensitivity = sweep_sensitivity(study, table)
    if sensitivity is not None:
        add("mixdq-ip", "baseline", mixdq_ip(sensitivity, table, budget))
    from qua2.search.qua2sedimo import composed_choice

    add("qua2sedimo", "baseline", composed_choice(study, table, budget))
    add("edge-recipe", "baseline", edge_recipe(table, budget))
    randoms = random_at_budget(table, budget, random_count, seed=int(budget * 100))
    for i, choice in enumerate(randoms):
        add(f"random-{i + 1}", "baseline", choice)
    return out


def stage_search(study: Study, options: RunOptions) -> None:
    """Pipeline stage: candidates within each budget, qua2's picks and the baselines.

    Budgets asked for explicitly (``options.budgets``, or ``pipeline.budgets`` of the study
    YAML) must be feasible in the search space; default ones outside it are skipped.
    """
    from qua2.study.option_cache import open_option_cache
    from qua2.surrogates.fit import load_fitted

    cache = open_option_cache(study)
    table = cost_table(study, cache)
    explicit = options.budgets or study.config.pipeline.budgets
    for budget in explicit or ():
        table.check_budget(budget)
    kind = None if options.surrogate == "best" else options.surrogate
    predict = search_predictor(study, load_fitted(study, kind), table)
    candidates = search_candidates(study, predict, cache, explicit or DEFAULT_BUDGETS,
                                   options.top)
    say(f"search: {len(candidates)} candidates → {study.path(*CANDIDATES_FILE)}")


def search_candidates(study: Study, predict: Predictor | None, cache: OptionCache,
                      budgets: Sequence[float] = DEFAULT_BUDGETS, top: int = 2
                      ) -> list[Candidate]:
    """Candidates for every budget; written to ``search/candidates.json``."""
    table = cost_table(study, cache)
    low, high = table.bits_range()
    # Every uniform config is verified once as a reference row: uniform 4-bit costs slightly
    # more than 4.0 bits with its overheads, so no budget ≤ 4 would otherwise show it.
    candidates = [Candidate(None, f"anchor-{o.key}", "anchor", table.to_config(np.full(len(
        table.layers), i)), table.avg_bits(np.full(len(table.layers), i)))
        for i, o in enumerate(table.options)]
    for budget in budgets:
        if not low <= budget <= high:  # only default budgets get here (explicit: refused)
            say(f"skipping budget {budget:g}: configurations of this search space have "
                  f"{low:.3f} to {high:.3f} average bits.")
            continue
        candidates += budget_candidates(study, table, predict, budget, top=top)
    path = study.path(*CANDIDATES_FILE)
    path.write_text(json.dumps([c.to_dict() for c in candidates], indent=2))
    return candidates


def load_candidates(study: Study) -> list[Candidate]:
    path = study.path(*CANDIDATES_FILE)
    if not path.exists():
        return []
    entries = read_json(path, rerun_stage(study.directory, "search"))
    return [Candidate.from_dict(d) for d in entries]
