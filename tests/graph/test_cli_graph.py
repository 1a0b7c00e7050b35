"""``qua2 graph``: pictures of whole graphs and blocks, listing, JSON, and bad input."""

from __future__ import annotations

import argparse
import json

import pytest
from PIL import Image

from qua2.cli import COMMANDS, main
from qua2.cli import graph as graph_cli
from qua2.errors import Qua2Error
from qua2.graph import OpGraph, trace_adapter
from qua2.quant.layers import quantizable_layers


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    graph_cli.add_parser(parser.add_subparsers())
    return graph_cli.run(parser.parse_args(["graph", *argv]))


def test_whole_graph_and_block_pictures(tmp_path, capsys):
    whole, block = tmp_path / "dit.png", tmp_path / "block.png"
    assert _run("--tiny", "dit", "-o", str(whole)) == 0
    assert _run("--tiny", "dit", "--block", "transformer_blocks.1", "-o", str(block)) == 0
    for path in (whole, block):
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 200
    assert "DiTTransformer2DModel" in capsys.readouterr().out


def test_block_by_subgraph_name_and_listing(tmp_path, capsys):
    out = tmp_path / "attn.png"
    assert _run("--tiny", "sd15", "--block", "down_blocks.0.attentions.0/cross_attn",
                "-o", str(out)) == 0
    assert out.exists()
    assert _run("--tiny", "sd15", "--list-blocks") == 0
    assert "down_blocks.0.resnets.0" in capsys.readouterr().out


def test_json_round_trip(tmp_path):
    path = tmp_path / "g.json"
    assert _run("--tiny", "unet2d", "--json", str(path), "-o", str(tmp_path / "g.png")) == 0
    graph = OpGraph.from_dict(json.loads(path.read_text()))
    assert len(graph.layers()) > 0


@pytest.mark.parametrize("argv, message", [
    (("--tiny", "dit", "--block", "nope"), "has no block 'nope'"),
    (("--tiny", "nonesuch"), "unknown tiny model family"),
    (("--model", "digits-dit", "--option", "train_steps"), "KEY=VALUE"),
    (("--tiny", "dit", "-o", "/no/such/folder/x.png"), "does not exist"),
])
def test_bad_input_is_one_sentence(argv, message):
    with pytest.raises(Qua2Error, match=message) as info:
        _run(*argv)
    assert "\n" not in str(info.value)


@pytest.mark.skipif("graph" not in COMMANDS, reason="graph not yet in qua2.cli.COMMANDS")
def test_main_exit_code_2_on_bad_input(capsys):
    assert main(["graph", "--tiny", "dit", "--block", "nope"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("name", ["digits-dit", "digits-unet"])
def test_digits_architectures_trace_through_their_adapter(name):
    import diffusers
    import torch

    from qua2.models.digits import SPECS, DigitsAdapter

    spec = SPECS[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # untrained weights: the graph depends on the architecture only
        module = getattr(diffusers, spec.model_class).from_config(spec.architecture)
    adapter = DigitsAdapter(module, spec, spec.recipe)
    graph = trace_adapter(adapter)
    assert sorted(graph.layers()) == sorted(quantizable_layers(module))
    assert graph.unused_params == ()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny_digits_dit", "tiny_digits_unet"])
def test_trained_digits_models_trace(name, request):
    adapter = request.getfixturevalue(name)  # trains for a few steps on first use
    graph = trace_adapter(adapter)
    assert sorted(graph.layers()) == sorted(quantizable_layers(adapter.module))
