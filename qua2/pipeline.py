"""The pipeline: every stage of a study, in order, above the packages that do the work.

``qua2 run`` calls :func:`run_study`, which runs the stages of :data:`STAGES` in order
(:func:`run_stages` runs them on a study already open). Each stage is ``stage_NAME(study,
options) -> None`` in the package whose work it does, skips what is already done, and can be
re-run alone; a killed run resumes where it stopped. This module is the only one that knows
the order, and nothing in the package imports it (only the CLI and the public API of
``qua2``), so the packages below form a one-way flow (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qua2.errors import Qua2Error
from qua2.explain.stage import stage_explain
from qua2.export import stage_export
from qua2.report import stage_report
from qua2.search.design import stage_sample
from qua2.search.stage import stage_search
from qua2.search.verification import stage_verify
from qua2.study.stages import (
    RunOptions,
    stage_anchors,
    stage_cache,
    stage_graph,
    stage_model,
    stage_reference,
    stage_sweep,
)
from qua2.study.study import Study
from qua2.surrogates.fit import stage_fit

StageFn = Callable[[Study, RunOptions], None]
STAGES: list[tuple[str, StageFn]] = [
    ("model", stage_model),
    ("reference", stage_reference),
    ("graph", stage_graph),
    ("cache", stage_cache),
    ("anchors", stage_anchors),
    ("sample", stage_sample),
    ("sweep", stage_sweep),
    ("fit", stage_fit),
    ("explain", stage_explain),
    ("search", stage_search),
    ("verify", stage_verify),
    ("export", stage_export),
    ("report", stage_report),
]
STAGE_NAMES = [name for name, _ in STAGES]
__all__ = ["STAGES", "STAGE_NAMES", "RunOptions", "run_replicates", "run_stages", "run_study",
           *(f.__name__ for _, f in STAGES)]


def run_study(config_path: str | Path, out: str | Path, options: RunOptions | None = None,
              stages: list[str] | None = None) -> Study:
    """Create or resume the study of ``config_path`` in ``out`` and run its stages in order."""
    from qua2.study.config import load_study_config
    from qua2.study.validate import check_study_paths

    _check_names(stages)
    config = load_study_config(config_path)
    check_study_paths(config)
    return run_stages(Study.create(config, out), options, stages)


def run_replicates(config_path: str | Path, out: str | Path, replicates: int,
                   options: RunOptions | None = None, stages: list[str] | None = None
                   ) -> list[Study]:
    """Run ``replicates`` studies of ``config_path`` in ``out/replicate-1`` … with independent
    sampler and surrogate seeds (:mod:`qua2.search.replicates`), then pool their verified
    comparisons into ``out/replicates.md`` and ``out/replicates.csv``."""
    from qua2.search.replicates import (
        REPLICATE_DIR,
        pool_replicates,
        replicate_config,
        replicate_dirs,
        write_pooled,
    )
    from qua2.study.config import load_study_config
    from qua2.study.validate import check_study_paths

    _check_names(stages)
    if replicates < 1:
        raise Qua2Error(f"replicates must be at least 1, got {replicates}.")
    config = load_study_config(config_path)
    check_study_paths(config)
    out = Path(out)
    studies = [run_stages(Study.create(replicate_config(config, r),
                                       out / REPLICATE_DIR.format(r)), options, stages)
               for r in range(1, replicates + 1)]
    pooled = pool_replicates(replicate_dirs(out))
    if not pooled.empty:
        write_pooled(out, pooled)
    return studies


def run_stages(study: Study, options: RunOptions | None = None,
               stages: list[str] | None = None) -> Study:
    """Run the named stages (all when ``None``) of an open study, in :data:`STAGES` order."""
    _check_names(stages)
    options = options or RunOptions()
    for name, stage in STAGES:
        if stages is None or name in stages:
            stage(study, options)
    return study


def _check_names(stages: list[str] | None) -> None:
    unknown = sorted(set(stages or ()) - set(STAGE_NAMES))
    if unknown:
        raise Qua2Error(f"unknown stage {unknown[0]!r}; the stages are {', '.join(STAGE_NAMES)}.")
