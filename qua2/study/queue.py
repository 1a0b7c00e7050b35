"""Put configurations into the study store as pending rows (duplicates are skipped).

Row ids are :meth:`QuantConfig.digest`, so the same configuration queued twice — as a random
draw and as an anchor, or by two runs — is stored and evaluated once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qua2.specs import QuantConfig
from qua2.study.option_cache import open_option_cache
from qua2.study.sampler import sample_configs, sweep_configs, uniform_configs
from qua2.study.store import Store
from qua2.study.study import Study


def queue(study: Study, kind: str, configs: Iterable[QuantConfig],
          tags: Iterable[dict[str, Any]] | None = None) -> int:
    """Queue ``configs`` under ``kind``; returns how many were new."""
    from qua2.quant.apply import average_bits
    from qua2.study.racing import start_tags

    cache = open_option_cache(study)
    configs = list(configs)
    first = start_tags(study, kind)
    tags = [{**first, **t} for t in tags] if tags is not None else [dict(first) for _ in configs]
    entries = [(c.digest(), kind, c.to_dict(), average_bits(c, cache), t)
               for c, t in zip(configs, tags)]
    with Store(study.path("study.sqlite"), environment=environment(study)) as store:
        return store.add(entries)


def _layers_and_space(study: Study) -> tuple[list[str], Any]:
    return study.adapter.quantizable_layers(), study.config.search_space.build()


def queue_anchors(study: Study) -> int:
    layers, space = _layers_and_space(study)
    return queue(study, "uniform", uniform_configs(layers, space))


def queue_random(study: Study, count: int) -> int:
    """Queue ``count`` new random configs (continuing the study's seeded sequence)."""
    layers, space = _layers_and_space(study)
    section = study.config.config_sampler
    with Store(study.path("study.sqlite")) as store:
        existing = [row.id for row in store.rows()]
    configs = sample_configs(layers, space, count, low_share=section.low_share,
                             stratified=section.kind == "stratified", seed=section.seed,
                             exclude=existing)
    return queue(study, "random", configs)


def queue_sweep(study: Study) -> int:
    layers, space = _layers_and_space(study)
    pairs = sweep_configs(layers, space)
    return queue(study, "sweep", [c for _, c in pairs],
                 [{"layer": layer, "option": c[layer].key} for layer, c in pairs])


def environment(study: Study) -> dict[str, Any]:
    """What produced the rows: package versions, device, seeds, git commit."""
    import platform
    import subprocess

    import torch

    from qua2.version import __version__

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=False, cwd=Path(__file__).parent).stdout.strip() or None
    except OSError:
        commit = None
    versions = {}
    for name in ("diffusers", "numpy", "scipy", "safetensors"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return {"qua2": __version__, "torch": torch.__version__, **versions,
            "python": platform.python_version(), "platform": platform.platform(),
            "device": str(study.device), "seeds": study.config.to_dict()["seeds"],
            "activations": study.config.activations,
            "git_commit": commit}
