"""A study: its YAML config, its directory and store, and the stages that evaluate configs.

:func:`load_study_config` / :func:`study_config_from_dict` give a validated
:class:`StudyConfig`; :class:`Study` is the directory (``Study.create`` / ``Study.open``) with
its model, seeds and generation; :class:`RunOptions` are a run's overrides of the config.
Reading a study: :func:`results_frame`, :func:`status_summary`, :func:`open_option_cache`,
:func:`study_graph`.
"""

from __future__ import annotations

from qua2.lazy import lazy_exports

#: The package's public names → their defining modules, each imported on first use.
_EXPORTS = {
    "Study": "qua2.study.study",
    "StudyConfig": "qua2.study.config",
    "load_study_config": "qua2.study.config",
    "study_config_from_dict": "qua2.study.config",
    "RunOptions": "qua2.study.stages",
    "results_frame": "qua2.study.results",
    "status_summary": "qua2.study.results",
    "open_option_cache": "qua2.study.option_cache",
    "study_graph": "qua2.study.graph",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
