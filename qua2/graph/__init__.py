"""Operation graphs of diffusers denoisers, derived by tracing (no per-family tables).

``trace(module, *args, **kwargs)`` runs one forward call and returns an :class:`OpGraph`:
a nodes table (op type, block, stage, role, parameters, quantizable) and data-flow edges.
See ``docs/graph.md`` for the design and the vocabularies.
"""

from qua2.graph.features import GraphFeaturizer
from qua2.graph.opgraph import OpGraph
from qua2.graph.partition import SubGraph, partition
from qua2.graph.tracer import trace, trace_adapter
from qua2.graph.vocab import OP_TYPES, ROLE_COMPONENTS, STAGES

__all__ = ["OP_TYPES", "ROLE_COMPONENTS", "STAGES", "GraphFeaturizer", "OpGraph", "SubGraph",
           "partition", "trace", "trace_adapter"]
