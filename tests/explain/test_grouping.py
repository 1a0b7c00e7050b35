"""Views are sums of layer values: additive, complete, and they show the known preferences."""

from __future__ import annotations

import numpy as np

from qua2.explain.grouping import (
    LABELS,
    group_explanation,
    layer_table,
    mean_abs,
    option_preference,
    views,
)


def test_layer_table_labels_every_layer(data, graph):
    table = layer_table(data.encoder.layers, graph)
    assert list(table.columns) == list(LABELS)
    assert table.loc["transformer_blocks.1.attn1.to_q", "role"] == "self_attn.q"
    assert table.loc["transformer_blocks.1.attn1.to_q", "component"] == "self_attn"
    assert table.loc["transformer_blocks.1.attn1.to_q", "block"] == "transformer_blocks.1"
    assert table.loc["pos_embed.proj", "op_type"] == "conv"
    unknown = layer_table(["not.in.graph"], graph)
    assert unknown.loc["not.in.graph", "role"] == "other"


def test_every_view_keeps_the_total(xgb_explanation, data, graph):
    table = layer_table(data.encoder.layers, graph)
    total = xgb_explanation.values.sum(axis=1)
    for name, explanation in views(xgb_explanation, table).items():
        np.testing.assert_allclose(np.asarray(explanation.values).sum(axis=1), total,
                                   atol=1e-9, err_msg=name)
    blocks = views(xgb_explanation, table)["block_index"].feature_names
    assert blocks == sorted(blocks, key=int)


def test_group_data_is_the_mean_bit_width(xgb_explanation):
    groups = {name: name.split(".")[0] for name in xgb_explanation.layers}
    grouped = group_explanation(xgb_explanation.explanation, groups)
    assert grouped.data.min() >= 3 and grouped.data.max() <= 4
    assert set(mean_abs(grouped).index) == set(grouped.feature_names)


def test_option_preference_shows_the_known_method_preferences(xgb_explanation, data, graph):
    """The synthetic truth: attention prefers kmeans_c, feed-forwards prefer uaq, and
    kmeans_a is worst everywhere (tests.fixtures.synthetic_study.METHOD_MULT)."""
    table = layer_table(data.encoder.layers, graph)
    pref = option_preference(xgb_explanation, table, by="component")
    low = pref[pref["bits"] == 3].set_index(["group", "method"])["mean_shap"]
    assert low["self_attn", "kmeans_c"] > low["self_attn", "uaq"] > low["self_attn", "kmeans_a"]
    assert low["ff", "uaq"] > low["ff", "kmeans_c"] > low["ff", "kmeans_a"]
    by_bits = pref.groupby("bits")["mean_shap"].mean()
    assert by_bits[4] > by_bits[3]
