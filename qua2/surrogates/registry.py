"""The surrogate registry: each kind's class and what the rest of qua2 needs to know about it.

One :class:`SurrogateSpec` per kind is the single source of truth: the study validator, the
CLI's ``--surrogate`` choices, fitting (threads, graph, learning curves, fingerprint) and the
explanation (which SHAP explainer) all read it. This module imports nothing heavy; the class
is imported when a surrogate of that kind is built or loaded. To add a kind, write the class
(a :class:`~qua2.surrogates.base.Surrogate`) and register it::

    register_surrogate(SurrogateSpec("forest", "mypackage.forest:ForestSurrogate", shap="tree"))
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from qua2.errors import Qua2Error

if TYPE_CHECKING:
    from qua2.surrogates.base import Surrogate


@dataclass(frozen=True)
class SurrogateSpec:
    """A surrogate kind: its class and its needs.

    ``target`` is ``"module:Class"`` (imported on first use) or the class itself.
    ``shap``: ``tree`` / ``linear`` give exact SHAP values, ``permutation`` a sampled estimate.
    ``threads``: the constructor argument that sets its CPU threads, if any.
    ``needs_graph``: built with ``graph=`` (the study's operation graph).
    ``slow``: its learning curve is computed only on request (``qua2 fit --curve-gnn``).
    ``reads_encoding``: its features come from the config encoding (part of its fingerprint).
    """

    kind: str
    target: str | type
    shap: Literal["tree", "linear", "permutation"] = "permutation"
    threads: str | None = None
    needs_graph: bool = False
    slow: bool = False
    reads_encoding: bool = True

    def load_class(self) -> type[Surrogate]:
        if not isinstance(self.target, str):
            return self.target
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)

    @property
    def exact_shap(self) -> bool:
        return self.shap != "permutation"


SURROGATES: dict[str, SurrogateSpec] = {}


def register_surrogate(spec: SurrogateSpec) -> SurrogateSpec:
    """Add (or replace) a surrogate kind; its name is what YAML, CLI and reports use."""
    SURROGATES[spec.kind] = spec
    return spec


def get_surrogate(kind: str) -> SurrogateSpec:
    """The spec of ``kind``; an unknown kind raises one sentence listing the known ones."""
    if kind not in SURROGATES:
        raise Qua2Error(f"unknown surrogate {kind!r}; choose one of {', '.join(SURROGATES)}.")
    return SURROGATES[kind]


register_surrogate(SurrogateSpec("ridge", "qua2.surrogates.ridge:RidgeSurrogate", shap="linear"))
register_surrogate(SurrogateSpec("xgb", "qua2.surrogates.xgb:XGBSurrogate", shap="tree",
                                 threads="n_jobs"))
register_surrogate(SurrogateSpec("gnn", "qua2.surrogates.gnn:GNNSurrogate", threads="n_threads",
                                 needs_graph=True, slow=True, reads_encoding=False))
