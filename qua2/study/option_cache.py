"""The study's option cache: every (layer, option) of the study's search space, in ``cache/``.

The ``cache`` stage builds it (reusing, verifying and recomputing only what changed); every
later stage and every worker process only opens it. One open cache is kept per study object,
so dequantized weights memoised in memory are shared by all configs a process evaluates.
"""

from __future__ import annotations

from qua2.errors import Qua2Error
from qua2.quant.cache import OptionCache
from qua2.quant.cache_build import stderr_log
from qua2.quant.cache_index import INDEX_NAME
from qua2.study.study import Study

CACHE_DIR = "cache"


def build_option_cache(study: Study) -> OptionCache:
    """Build or update the cache (verifying existing shards) and keep it open."""
    cache = OptionCache.build(study.adapter.module, study.config.search_space.build(),
                              study.directory / CACHE_DIR,
                              layers=study.adapter.quantizable_layers())
    study.option_cache = cache
    return cache


def open_option_cache(study: Study) -> OptionCache:
    """The study's cache: opened if built already, built otherwise; once per study object."""
    if study.option_cache is not None:
        return study.option_cache
    directory = study.directory / CACHE_DIR
    if not (directory / INDEX_NAME).exists():
        return build_option_cache(study)
    try:
        cache = OptionCache(directory, source=lambda: study.adapter.module)
    except Qua2Error as error:  # a damaged index: rebuilt from the shards, which are reused
        stderr_log(f"{error} Rebuilding it now.")
        return build_option_cache(study)
    study.option_cache = cache
    return cache
