"""Figure builders return figures; names and colours are stable."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from qua2.explain import plots
from qua2.explain.colours import component_colour, option_colour, role_colours
from qua2.plots import pareto_figure, pareto_front


def test_short_names_are_readable():
    assert plots.short_name("transformer_blocks.3.attn1.to_out.0") == "tb3.attn1.to_out"
    long = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora.up"
    assert len(plots.short_name(long)) <= 40


def test_colours_are_fixed_per_op_type():
    assert component_colour("self_attn") == component_colour("self_attn.q")
    assert component_colour("ff") != component_colour("self_attn")
    a = role_colours(["self_attn.q", "self_attn.k", "ff.in"])
    b = role_colours(["ff.in", "self_attn.k", "self_attn.q", "adaln"])
    assert a == {k: b[k] for k in a}
    assert option_colour("uaq", 3) != option_colour("uaq", 4) != option_colour("kmeans_c", 4)


def test_pareto_front_is_monotone():
    frame = pd.DataFrame({"id": list("abcde"), "kind": "random",
                          "avg_bits": [3.0, 3.5, 4.0, 4.5, 5.0],
                          "fid": [50.0, 60.0, 30.0, 35.0, 20.0]})
    front = pareto_front(frame, "fid", lower_is_better=True)
    assert list(front["id"]) == ["a", "c", "e"]
    assert isinstance(pareto_figure(frame, "fid", True, 10.0), Figure)


def test_figure_builders_return_figures(xgb_explanation, data, graph):
    from qua2.explain.grouping import layer_table, mean_abs, option_preference, views

    table = layer_table(data.encoder.layers, graph)
    assert isinstance(plots.beeswarm_figure(xgb_explanation, table, top=5), Figure)
    grouped = {k: mean_abs(v) for k, v in views(xgb_explanation, table).items()}
    panels = {k: grouped[k] for k in ("role", "component", "block")}
    assert isinstance(plots.importance_bars_figure(panels, table), Figure)
    pref = option_preference(xgb_explanation, table)
    assert isinstance(plots.option_preference_figure(pref), Figure)
    curve = pd.DataFrame({"surrogate": ["x", "x"], "n_train": [10, 20],
                          "spearman_mean": [0.5, 0.8], "spearman_std": [0.1, 0.05]})
    assert isinstance(plots.learning_curve_figure(curve), Figure)
