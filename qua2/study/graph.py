"""The study's operation graph: traced once from the study's model, stored as ``graph.json``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from qua2.io import DamagedArtifactError, atomic_write, read_json_object
from qua2.log import say
from qua2.study.study import Study

if TYPE_CHECKING:
    from qua2.graph.opgraph import OpGraph

GRAPH_FILE = "graph.json"


def study_graph(study: Study) -> OpGraph:
    """The :class:`~qua2.graph.OpGraph` of the study's denoiser (traced on first use)."""
    from qua2.graph.opgraph import OpGraph
    from qua2.graph.tracer import trace_adapter

    path = study.path(GRAPH_FILE)
    if path.exists():
        try:
            return OpGraph.from_dict(read_json_object(path, "it is traced again"))
        except (DamagedArtifactError, KeyError, TypeError, ValueError) as error:
            # The graph is a pure function of the model: trace it again rather than fail.
            problem = error.problem if isinstance(error, DamagedArtifactError) else "malformed"
            say(f"{path} is damaged ({problem}); tracing the model again.")
    graph = trace_adapter(study.adapter)
    atomic_write(path, json.dumps(graph.to_dict()).encode())
    return graph
