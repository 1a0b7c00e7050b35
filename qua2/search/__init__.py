"""Search at an exact average-bit budget, baselines, and verification on held-out seeds.

:class:`CostTable` (from :func:`cost_table`) holds every (layer, option)'s exact bytes, so a
budget is one linear constraint; :func:`solve_mckp` solves the integer programme and
:func:`search_budget` runs surrogate → integer programme → local search.
:func:`search_candidates` adds the baselines (:mod:`~qua2.search.baselines`) and writes the
:class:`Candidate` s (:func:`load_candidates`); :func:`verify_candidates` scores them for real
with bootstrap intervals (:class:`Verified`, :func:`load_verification`).
"""

from __future__ import annotations

from qua2.lazy import lazy_exports

#: The package's public names → their defining modules, each imported on first use.
_EXPORTS = {
    "CostTable": "qua2.search.budget",
    "cost_table": "qua2.search.stage",
    "solve_mckp": "qua2.search.knapsack",
    "search_budget": "qua2.search.refine",
    "Candidate": "qua2.search.stage",
    "search_candidates": "qua2.search.stage",
    "load_candidates": "qua2.search.stage",
    "Verified": "qua2.search.verification",
    "verify_candidates": "qua2.search.verification",
    "load_verification": "qua2.search.verification",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
