"""diffusers pipelines loaded from local directories, driven through their own ``__call__``.

One generic adapter (:class:`~qua2.models.families.auto.PipelineAdapter`) serves ``family:
auto`` and every named diffusers family of the registry (:mod:`qua2.models.registry`); importing
this package is cheap — diffusers is imported when a pipeline is loaded.
"""

from __future__ import annotations

from qua2.lazy import lazy_exports

#: The package's public names → their defining modules, each imported on first use.
_EXPORTS = {
    "PipelineAdapter": "qua2.models.families.auto",
    "PromptCache": "qua2.models.families.auto",
    "load_any_pipeline": "qua2.models.families.loading",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
