"""Choosing among qua2's picks per budget on their own images, apart from verifying the choice.

The search keeps its top configurations per budget (``--top``, default 2). Choosing the better
of them on the held-out verification images and then reporting that one's score on the same
images as "verified" is the winner's curse: the maximum of noisy estimates is biased upward
(Thaler, 1988; for model selection, Cawley & Talbot, JMLR 2010). So qua2 chooses on a third set
of seeds — ``seeds.selection``, ``selection_images`` images, disjoint from the sampling and
verification seeds (checked when the study file is read) — or, with ``selection_images: 0``,
by the surrogate's prediction alone, and verifies only the chosen pick
(:mod:`qua2.search.verification`). ``search/selection.json`` records, per budget, every pick's
selection score and which one was chosen how.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from qua2.io import atomic_write_json
from qua2.search.stage import Candidate
from qua2.study.study import Study

if TYPE_CHECKING:
    from qua2.quant.cache import OptionCache
    from qua2.study.config import ExecutorSection

SELECTION_FILE = ("search", "selection.json")
#: One JSON line per pick scored on the selection seeds (an interrupted run resumes from it).
PROGRESS_FILE = ("search", "selection_progress.jsonl")


def select_picks(study: Study, candidates: list[Candidate], cache: OptionCache, rounds: int = 200,
                 executor: ExecutorSection | None = None) -> list[Candidate]:
    """``candidates`` keeping one qua2 pick per budget, chosen on the selection seeds."""
    budgets: dict[float | None, list[Candidate]] = {}
    for candidate in candidates:
        if candidate.kind == "qua2":
            budgets.setdefault(candidate.budget, []).append(candidate)
    contested = {c.config.digest(): (c.kind, c.config)
                 for picks in budgets.values() if len(picks) > 1 for c in picks}
    scores = _selection_scores(study, contested, cache, rounds, executor)
    chosen, records = set(), []
    for budget, picks in budgets.items():
        winner, how = _choose(study, picks, scores)
        chosen.add(id(winner))
        records.append({"budget": budget, "chosen": winner.name, "id": winner.config.digest(),
                        "by": how, "images": study.config.selection_images if scores else 0,
                        "picks": [{"name": p.name, "id": p.config.digest(),
                                   "predicted": p.predicted,
                                   "selection_score": scores.get(p.config.digest())}
                                  for p in picks]})
    atomic_write_json(study.path(*SELECTION_FILE), records)
    return [c for c in candidates if c.kind != "qua2" or id(c) in chosen]


def _selection_scores(study: Study, contested: dict[str, Any], cache: OptionCache, rounds: int,
                      executor: ExecutorSection | None) -> dict[str, float]:
    """The primary metric of each contested pick on the selection seeds (none: no images)."""
    if not contested or study.config.selection_images == 0:
        return {}
    from qua2.search.verification import verify

    primary = study.config.metrics.primary_metric
    results = verify(study, contested, cache, rounds=rounds, executor=executor,
                     progress_file=study.path(*PROGRESS_FILE), seeds="selection")
    return {r.name: r.metrics[primary] for r in results}


def _choose(study: Study, picks: list[Candidate], scores: dict[str, float]
            ) -> tuple[Candidate, str]:
    if len(picks) == 1:
        return picks[0], "only pick"
    if not scores:
        return max(picks, key=lambda c: -math.inf if c.predicted is None else c.predicted), \
            "surrogate"
    sign = -1.0 if study.config.metrics.primary_lower_is_better else 1.0
    return max(picks, key=lambda c: sign * scores[c.config.digest()]), "selection images"
