"""Which configurations a study evaluates: all at random, or sequentially where they help.

``design: {kind: random}`` (the default) draws ``config_sampler.num_configs`` configurations at
random (:mod:`qua2.study.sampler`). ``design: {kind: sequential}`` is sequential model-based
design (Jones et al., "Efficient global optimization", 1998; Hutter et al., SMAC, LION 2011;
Shahriari et al., "Taking the human out of the loop", Proc. IEEE 2016):

1. ``initial`` random configurations (default: a third of ``num_configs``), evaluated;
2. rounds of ``batch`` configurations until ``num_configs``: the tree surrogate (XGBoost) is
   refitted as a bootstrap ensemble on every row so far (:func:`qua2.search.objective.
   bootstrap_members`), and the study's own search (integer programme + local search,
   :func:`qua2.search.refine.search_budget`) proposes, at every search budget, the best
   configurations under the **upper confidence bound** mean + ``optimism`` × spread (GP-UCB,
   Srinivas et al., ICML 2010, with an ensemble's spread for the posterior's): near each
   budget's predicted front, and preferring where the members disagree. These rows have kind
   ``design``.
3. A ``random_share`` of every round are fresh random draws (kind ``random``). They are why the
   rest stays honest: cross-validation folds are drawn from random rows only (selected rows
   would flatter the held-out ρ, :mod:`qua2.surrogates.data`), and SHAP explanations need
   rows that cover the space rather than the front. With the defaults (a third initial, a
   quarter of each round) half of a study's rows are random: enough for 5-fold CV and SHAP to
   see the whole space, while half of the images go where the search looks.

Every round is queued before it is evaluated, so a killed run first evaluates what is pending
and then continues with the next round; the executor (local processes or Ray) is the study's.
Proposals are deterministic given the rows (seeded members), so a re-run proposes the same.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from qua2.log import say
from qua2.search.budget import CostTable
from qua2.search.objective import bootstrap_members, pessimistic_predictor, surrogate_predictor
from qua2.search.refine import search_budget
from qua2.specs import QuantConfig
from qua2.study.queue import queue, queue_random
from qua2.study.stages import RunOptions, evaluate_rows, ready_executor
from qua2.study.stages import stage_sample as stage_random_sample
from qua2.study.store import Store
from qua2.study.study import Study

if TYPE_CHECKING:
    from qua2.search.refine import Predictor

#: Bootstrap members of the proposing ensemble.
MEMBERS = 8
SAMPLED_KINDS = ["random", "design"]


def stage_sample(study: Study, options: RunOptions) -> None:
    """Pipeline stage: evaluate the study's configurations, as its ``design`` says."""
    if study.config.design.kind == "random":
        stage_random_sample(study, options)
        return
    design = study.config.design
    executor = ready_executor(study, options)
    total = options.num_configs or study.config.config_sampler.num_configs
    initial = min(design.initial or math.ceil(total / 3), total)
    if _sampled(study) < initial:
        queue_random(study, initial - _sampled(study))
    evaluate_rows(study, executor, SAMPLED_KINDS, "initial random configs")
    while (have := _sampled(study)) < total:
        size = min(design.batch, total - have)
        randoms = max(1, math.ceil(size * design.random_share))
        round_index = _rounds_done(study) + 1
        proposals = propose(study, size - randoms, round_index)
        added = queue(study, "design", proposals, [{"round": round_index}] * len(proposals))
        added += queue_random(study, size - added)
        if added == 0:  # the space holds no more distinct configurations
            break
        evaluate_rows(study, executor, SAMPLED_KINDS, f"design round {round_index}")


def _sampled(study: Study) -> int:
    with Store(study.path("study.sqlite")) as store:
        return sum(store.count(kind=kind) for kind in SAMPLED_KINDS)


def _rounds_done(study: Study) -> int:
    with Store(study.path("study.sqlite")) as store:
        return max((r.tags.get("round", 0) for r in store.rows(kind="design")), default=0)


def propose(study: Study, count: int, round_index: int) -> list[QuantConfig]:
    """``count`` new configurations, spread over the search budgets, that maximise the
    optimistic ensemble of the tree surrogate fitted on every evaluated row."""
    if count <= 0:
        return []
    from qua2.search.stage import DEFAULT_BUDGETS, cost_table
    from qua2.study.option_cache import open_option_cache

    table = cost_table(study, open_option_cache(study))
    predict = optimistic_predictor(study, table, round_index)
    low, high = table.bits_range()
    budgets = [b for b in (study.config.pipeline.budgets or DEFAULT_BUDGETS) if low <= b <= high]
    with Store(study.path("study.sqlite")) as store:
        seen = {row.id for row in store.rows()}
    # A few more than needed per budget: some may already be in the study.
    top = math.ceil(count / max(1, len(budgets))) + 2
    lists = [[table.to_config(choice) for choice, _ in search_budget(predict, table, b, top=top)]
             for b in budgets]
    picks: list[QuantConfig] = []
    for rank in range(max((len(p) for p in lists), default=0)):  # round-robin over budgets
        for found in lists:
            if rank < len(found) and found[rank].digest() not in seen and len(picks) < count:
                seen.add(found[rank].digest())
                picks.append(found[rank])
    say(f"design round {round_index}: {len(picks)} configurations proposed at budgets "
        f"{', '.join(f'{b:g}' for b in budgets)}")
    return picks


def optimistic_predictor(study: Study, table: CostTable, round_index: int) -> Predictor:
    """Mean + ``design.optimism`` × spread of :data:`MEMBERS` bootstrap refits of XGBoost on
    the study's random, sequential and uniform rows."""
    from qua2.surrogates.data import load_study_data
    from qua2.surrogates.fit import FitOptions, make_surrogate

    data = load_study_data(study)
    target = data.target(None)
    rows = data.mask(("random", "design", "uniform"), target)
    base = make_surrogate("xgb", data, FitOptions(seed=study.config.seeds.surrogates))
    members = bootstrap_members(base, data.choices[rows], data.values(target)[rows], MEMBERS,
                                seed=study.config.seeds.surrogates + 1000 * round_index)
    # pessimistic_predictor is mean − κ·spread; a negative κ makes it the upper bound.
    return pessimistic_predictor([surrogate_predictor(m, table) for m in members],
                                 -study.config.design.optimism)
