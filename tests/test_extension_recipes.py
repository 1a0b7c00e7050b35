"""The four "add one" recipes of docs/ARCHITECTURE.md, done from outside the package.

A metric, a quantization method, a surrogate and a model family are defined in one file that
is not part of qua2 (tests/extensions/toy_plugin.py) and registered with one line each; then a
tiny study runs through every stage up to the search with all four. Nothing else is edited.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.extensions import toy_plugin


@pytest.fixture
def registries():
    """Register the toy extension, and restore every registry afterwards."""
    from qua2 import specs
    from qua2.metrics import registry as metrics
    from qua2.models import registry as models
    from qua2.quant import methods
    from qua2.surrogates import registry as surrogates

    saved = [(d, dict(d)) for d in (metrics.METRICS, methods.METHODS, surrogates.SURROGATES,
                                    models.FAMILIES)]
    grouped = set(specs.GROUPED_METHODS)
    # The four registration lines:
    metrics.register_metric(metrics.MetricSpec("toy_l1", True, frozenset(), "mean |x − x_fp|",
                                                per_image=toy_plugin.mean_abs_error))
    methods.register_method(methods.MethodSpec("absmax", toy_plugin.absmax_quantize,
                                               toy_plugin.absmax_dequantize, {}, "max-abs"))
    surrogates.register_surrogate(surrogates.SurrogateSpec("shrunk_ridge",
                                                           toy_plugin.ShrunkRidge, shap="linear"))
    models.register_family("small-digits", "tests.extensions.toy_plugin:load_small_digits",
                           scoring="embedded", needs_path=False)
    yield
    for registry, content in saved:
        registry.clear()
        registry.update(content)
    specs.GROUPED_METHODS.clear()
    specs.GROUPED_METHODS.update(grouped)


def test_a_study_runs_with_a_registered_metric_method_surrogate_and_family(registries,
                                                                           tmp_path):
    from qua2.pipeline import RunOptions, run_study
    from qua2.study.store import Store

    study_file = tmp_path / "toy.yaml"
    study_file.write_text(textwrap.dedent("""
        name: toy-extension
        model: {family: small-digits, options: {train_steps: 30}}
        sampler: {steps: 2, batch_size: 64}
        images_per_config: 16
        verification_images: 16
        search_space: {methods: [uaq, absmax], bits: [3, 4]}
        config_sampler: {num_configs: 10}
        metrics: {primary: toy_l1}
        pipeline: {sweep: false, surrogates: [shrunk_ridge]}
    """))
    out = tmp_path / "study"
    stages = ["model", "reference", "graph", "cache", "anchors", "sample", "fit", "search"]
    study = run_study(study_file, out, RunOptions(threads=1, budgets=(3.5,)), stages=stages)
    assert study.config.metrics.lower_is_better is True  # from the metric's spec
    with Store(out / "study.sqlite") as store:
        rows = store.rows(status="done")
    assert len(rows) == 10 + 4  # random + uniform anchors (2 methods × 2 widths)
    assert all(r.metrics["toy_l1"] > 0 for r in rows)
    # objective = −toy_l1 (lower is better, no bits penalty)
    assert all(r.metrics["objective"] == pytest.approx(-r.metrics["toy_l1"]) for r in rows)
    used = {o for r in rows for o in r.config["layers"].values()}
    assert {"absmax-w3", "absmax-w4"} <= used
    report = json.loads((out / "surrogates" / "cv_report.json").read_text())
    assert report["best"] == "shrunk_ridge"
    candidates = json.loads((out / "search" / "candidates.json").read_text())
    assert any(c["kind"] == "qua2" and c["budget"] == 3.5 for c in candidates)
