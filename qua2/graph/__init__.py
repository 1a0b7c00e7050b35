"""Operation graphs of diffusers denoisers, derived by tracing (no per-family tables).

:func:`trace` (``trace(module, *args, **kwargs)``) or :func:`trace_adapter` runs one forward
call and returns an :class:`OpGraph`: a nodes table (op type, block, stage, role, parameters,
quantizable) and data-flow edges, cut into :class:`SubGraph` s by ``OpGraph.partition()``.
:class:`GraphFeaturizer` turns it into torch-geometric inputs, :func:`draw_graph` into a figure;
the vocabularies are :data:`OP_TYPES`, :data:`ROLE_COMPONENTS` and :data:`STAGES`. See
``docs/graph.md`` for the design and the vocabularies.
"""

from __future__ import annotations

from qua2.lazy import lazy_exports

#: The package's public names → their defining modules, each imported on first use.
_EXPORTS = {
    "trace": "qua2.graph.tracer",
    "trace_adapter": "qua2.graph.tracer",
    "OpGraph": "qua2.graph.opgraph",
    "SubGraph": "qua2.graph.partition",
    "GraphFeaturizer": "qua2.graph.features",
    "draw_graph": "qua2.graph.draw",
    "OP_TYPES": "qua2.graph.vocab",
    "ROLE_COMPONENTS": "qua2.graph.vocab",
    "STAGES": "qua2.graph.vocab",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
