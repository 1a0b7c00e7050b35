"""What the search maximises: a fitted surrogate, or a bootstrap ensemble's mean minus its
disagreement (pessimism).

A surrogate fitted on ~100 configurations of a space with 6^73 points is asked, by the search,
about configurations unlike any it was trained on — the search goes exactly where the model
is most optimistic, and on the digits U-Net the fitted XGBoost surrogate predicted its picks
better than the FP model itself (digits-FID 5.7–16.3 vs 19.0). This is the central problem of
offline model-based optimisation (Trabucco et al., "Conservative Objective Models", ICML 2021;
Kumar & Levine, "Model Inversion Networks", NeurIPS 2020): an optimiser exploits the model's
errors. qua2's answer is the classical one:

- **Bootstrap ensemble** (Efron & Tibshirani, 1993; for uncertainty, Lakshminarayanan et al.,
  NeurIPS 2017): the search surrogate refitted ``members`` times on resamples (with
  replacement) of its training rows, each with its own seed. Where the data pin a prediction
  down the members agree; where the search extrapolates they spread.
- **Lower confidence bound** (the pessimistic twin of GP-UCB, Srinivas et al., ICML 2010):
  score = ensemble mean − ``pessimism`` × ensemble standard deviation, higher is better. The
  search then prefers configurations whose quality the data support, which keeps it inside
  the region they cover — a trust region without a hand-set radius (cf. TuRBO, Eriksson et
  al., NeurIPS 2019).

Members are refitted at search time (seeded: the same members every run, nothing to store);
a slow surrogate (the GNN) is used alone, since eight of its fits would cost more than the
study's search.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from qua2.errors import Qua2Error
from qua2.log import say
from qua2.search.budget import CostTable
from qua2.search.refine import Predictor

if TYPE_CHECKING:
    from qua2.study.study import Study
    from qua2.surrogates.base import Surrogate


def surrogate_predictor(surrogate: Surrogate, table: CostTable) -> Predictor:
    """Adapt a fitted surrogate (its own layer/option order) to the table's choice matrices."""
    encoder = surrogate.checked_encoder()
    missing = set(table.layers) - set(encoder.layers)
    unknown = set(table.options) - set(encoder.options)
    if missing or unknown:
        raise Qua2Error(
            "the fitted surrogate does not cover this study's layers/options "
            f"({len(missing)} layers, {len(unknown)} options missing); re-run `qua2 fit`."
        )
    columns = [table.layers.index(layer) for layer in encoder.layers]
    option_map = np.array([encoder.options.index(o) for o in table.options])

    def predict(choices: np.ndarray) -> np.ndarray:
        return surrogate.predict(option_map[np.asarray(choices)][:, columns])

    return predict


def bootstrap_members(surrogate: Surrogate, x: np.ndarray, y: np.ndarray, members: int,
                      seed: int) -> list[Surrogate]:
    """``members`` clones of ``surrogate`` (same hyper-parameters), each fitted on a bootstrap
    resample of ``(x, y)`` with its own ``random_state``."""
    from sklearn.base import clone

    rng = np.random.default_rng(seed)
    fitted = []
    for member in range(members):
        rows = rng.integers(len(x), size=len(x))
        estimator = clone(surrogate).set_params(random_state=seed + member)
        fitted.append(estimator.fit(x[rows], y[rows]))
    return fitted


def pessimistic_predictor(predictors: list[Predictor], pessimism: float) -> Predictor:
    """Mean − ``pessimism`` × standard deviation of ``predictors`` (higher is better)."""

    def predict(choices: np.ndarray) -> np.ndarray:
        scores = np.stack([member(choices) for member in predictors])
        return scores.mean(0) - pessimism * scores.std(0)

    return predict


def search_predictor(study: Study, surrogate: Surrogate, table: CostTable) -> Predictor:
    """The objective the search maximises for ``study``: its fitted ``surrogate`` alone, or a
    pessimistic bootstrap ensemble of it (``pipeline.search_ensemble`` members,
    ``pipeline.search_pessimism`` standard deviations)."""
    from qua2.surrogates.data import load_study_data
    from qua2.surrogates.fit import FitOptions
    from qua2.surrogates.registry import get_surrogate

    pipeline = study.config.pipeline
    if pipeline.search_ensemble == 0:
        return surrogate_predictor(surrogate, table)
    if get_surrogate(surrogate.kind).slow:
        say(f"search: {surrogate.kind} is used alone (an ensemble of "
            f"{pipeline.search_ensemble} of its fits would cost more than the search)")
        return surrogate_predictor(surrogate, table)
    data = load_study_data(study)
    target = data.target(None)
    rows = data.mask(("random", *FitOptions().train_extra), target)  # the final fit's rows
    members = bootstrap_members(surrogate, data.choices[rows], data.values(target)[rows],
                                pipeline.search_ensemble, seed=study.config.seeds.surrogates)
    say(f"search: {surrogate.kind} × {len(members)} bootstrap members, objective = mean − "
        f"{pipeline.search_pessimism:g} × spread")
    return pessimistic_predictor([surrogate_predictor(m, table) for m in members],
                                 pipeline.search_pessimism)
