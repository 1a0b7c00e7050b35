"""``qua2 graph``: trace a denoiser and draw its operation graph (whole, or one block).

The model comes from exactly one of: ``--model FAMILY`` (a registered family, e.g. digits-dit,
with ``--path`` for diffusers directories), ``--study DIR`` (the study's model; its stored
graph.json when present), ``--tiny FAMILY`` (a tiny random instance) or ``--full-size FAMILY``
(the published architecture on the meta device, no weights). Nodes are coloured by op type;
weight layers are squares.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from qua2.errors import Qua2Error


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("graph", help="draw a denoiser's operation graph",
                                   description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="FAMILY", help="registered model family")
    source.add_argument("--study", metavar="DIR", help="study directory")
    source.add_argument("--tiny", metavar="FAMILY", help="tiny random model of a family")
    source.add_argument("--full-size", metavar="FAMILY",
                        help="full-size architecture on the meta device (no weights)")
    parser.add_argument("--path", help="local model directory for --model")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="loader option for --model (repeatable), e.g. train_steps=30")
    parser.add_argument("--block", help="draw only this block (or sub-graph, e.g. "
                                        "'transformer_blocks.3/self_attn')")
    parser.add_argument("-o", "--output", help="PNG file (default: graph-NAME[-BLOCK].png)")
    parser.add_argument("--list-blocks", action="store_true",
                        help="print the block names and exit")
    parser.add_argument("--json", metavar="FILE", help="also save the graph as JSON")
    return parser


def run(args: argparse.Namespace) -> int:
    name, graph = _load_graph(args)
    print(graph.summary())
    if args.list_blocks:
        counts = graph.nodes.groupby("block", sort=False).size()
        for block, count in counts.items():
            print(f"  {block:<48} {count:>5} nodes")
        return 0
    if args.json:
        Path(args.json).write_text(json.dumps(graph.to_dict()))
        print(f"wrote {args.json}")
    from qua2.graph.draw import draw_graph

    output = Path(args.output or _default_output(name, args.block))
    if not output.parent.exists():
        raise Qua2Error(f"cannot write {output}: folder {output.parent} does not exist.")
    figure = draw_graph(graph, args.block)
    figure.savefig(output)
    print(f"wrote {output}")
    return 0


def _load_graph(args: argparse.Namespace) -> tuple[str, Any]:
    from qua2.graph.tracer import trace, trace_adapter

    if args.study:
        from qua2.study.graph import study_graph
        from qua2.study.study import Study

        study = Study.open(args.study)
        return Path(args.study).name, study_graph(study)
    if args.model:
        from qua2.models.registry import load_model

        adapter = load_model(args.model, args.path, **_options(args.option))
        return args.model, trace_adapter(adapter)
    from qua2.models import architectures as tiny

    if args.tiny:
        module, example = tiny.tiny_denoiser(args.tiny)
        name = f"tiny-{args.tiny}"
    else:
        module, example = tiny.full_size_denoiser(args.full_size)
        name = args.full_size
    return name, trace(module, *example.args, **example.kwargs)


def _options(items: list[str]) -> dict[str, Any]:
    import yaml

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise Qua2Error(f"--option needs KEY=VALUE, got {item!r}.")
        options[key] = yaml.safe_load(value)
    return options


def _default_output(name: str, block: str | None) -> str:
    suffix = f"-{block.replace('/', '-')}" if block else ""
    return f"graph-{name}{suffix}.png"
