"""The study's operation graph: traced once from the study's model, stored as ``graph.json``."""

from __future__ import annotations

import json

from qua2.study.study import Study

GRAPH_FILE = "graph.json"


def study_graph(study: Study):
    """The :class:`~qua2.graph.OpGraph` of the study's denoiser (traced on first use)."""
    from qua2.graph import OpGraph, trace_adapter

    path = study.path(GRAPH_FILE)
    if path.exists():
        return OpGraph.from_dict(json.loads(path.read_text()))
    graph = trace_adapter(study.adapter)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(graph.to_dict()))
    tmp.replace(path)
    return graph
