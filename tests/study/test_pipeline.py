"""End to end on a tiny digits study: stages, resumption after kill -9, parallel workers."""

import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from qua2.cli import main
from qua2.pipeline import RunOptions, run_study
from qua2.study.results import results_frame, status_summary
from qua2.study.store import Store
from qua2.study.study import Study


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    from tests.study.conftest import TINY_STUDY

    root = tmp_path_factory.mktemp("study")
    (root / "tiny.yaml").write_text(TINY_STUDY)
    stages = ["model", "reference", "graph", "cache", "anchors", "sample"]
    return run_study(root / "tiny.yaml", root / "out", stages=stages)


def test_every_config_evaluated_once(finished_study):
    frame = results_frame(finished_study)
    assert frame["status"].eq("done").all(), frame[["kind", "status", "error"]]
    assert frame.groupby("kind").size().to_dict() == {"random": 6, "uniform": 4}
    assert frame["id"].is_unique


def test_fp_reference_and_paired_metrics(finished_study):
    import json

    fp = json.loads(finished_study.path("reference", "fp_metrics.json").read_text())
    assert math.isinf(fp["psnr"]) and fp["ssim"] == pytest.approx(1.0)
    assert finished_study.path("reference", "fp_samples.png").stat().st_size > 1000
    frame = results_frame(finished_study).set_index("id")
    uniform = frame[frame["kind"] == "uniform"]
    bits = uniform["avg_bits"]
    assert bits.between(2.9, 4.6).all()
    low = uniform[bits < 3.5]["psnr"].mean()
    high = uniform[bits >= 3.5]["psnr"].mean()
    assert math.isfinite(low) and high > low  # 4-bit weights stay closer to FP than 3-bit


def test_status_and_results_commands(finished_study, capsys, tmp_path):
    summary = status_summary(finished_study)
    assert summary["counts"] == {"done": 10}
    assert summary["best"]["objective"] == max(results_frame(finished_study)["objective"])
    assert main(["results", str(finished_study.directory), "--csv",
                 "--out", str(tmp_path / "r.csv")]) == 0
    header = (tmp_path / "r.csv").read_text().splitlines()[0]
    assert "digits_fid" in header and "layer:pos_embed.proj" in header
    assert main(["status", str(finished_study.directory), "--json"]) == 0
    assert '"done": 10' in capsys.readouterr().out


def test_sample_more_with_two_workers(finished_study):
    assert main(["sample", str(finished_study.directory), "-n", "4", "--workers", "2",
                 "--threads", "1"]) == 0
    with Store(finished_study.path("study.sqlite")) as store:
        rows = store.rows(kind="random")
    assert len(rows) == 10 and all(r.status == "done" for r in rows)
    assert len({r.id for r in rows}) == 10


@pytest.mark.slow
def test_kill_minus_nine_then_resume(tiny_study_yaml, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "qua2", "run", str(tiny_study_yaml), "--out", str(out),
               "-n", "30", "--stages", "model", "reference", "cache", "sample"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.time() + 600
    done_before = 0
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.5)
        if (out / "study.sqlite").exists():
            with Store(out / "study.sqlite") as store:
                done_before = store.counts()["done"]
            if done_before >= 3:
                break
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert done_before >= 3, "the run never got going"
    with Store(out / "study.sqlite") as store:
        first = {r.id: r for r in store.rows(status="done")}
    assert 3 <= len(first) < 30
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with Store(out / "study.sqlite") as store:
        rows = store.rows(kind="random")
    assert len(rows) == 30 and all(r.status == "done" for r in rows)
    for row in rows:  # what was done before the kill was kept, not evaluated again
        if row.id in first:
            assert row.metrics == first[row.id].metrics
    assert Study.open(out).config.config_sampler.num_configs == 6  # the YAML, not the override


def test_rerun_same_directory_is_a_no_op(finished_study, tiny_study_yaml):
    before = results_frame(finished_study)
    run_study(tiny_study_yaml, finished_study.directory, RunOptions(),
              stages=["anchors", "sample"])
    after = results_frame(finished_study)
    assert len(after) == len(before)


def test_activation_setting_applies_on_top_of_weights(finished_study, tmp_path):
    """The same config scored with dynamic A4 activations must move away from W-only."""
    import dataclasses

    from qua2.specs import QuantConfig
    from qua2.study.evaluate import Evaluator
    from qua2.study.option_cache import open_option_cache

    config = finished_study.config
    with_acts = dataclasses.replace(config, activations={"bits": 4, "mode": "dynamic"})
    acts_study = Study.create(with_acts, tmp_path / "acts")
    row = results_frame(finished_study).query("kind == 'uniform'").iloc[0]
    quant = QuantConfig.from_dict(Store(finished_study.path("study.sqlite")).get(row["id"]).config)
    weights_only = Evaluator(finished_study, open_option_cache(finished_study)).evaluate(quant)
    acts_study.__dict__["adapter"] = finished_study.adapter  # same model object, no reload
    both = Evaluator(acts_study, open_option_cache(finished_study)).evaluate(quant)
    assert acts_study.precision_label == "A4"
    # Re-evaluated here, possibly on another thread count than the stage that stored the row
    # (evaluate_pending sets it): image rounding of ~1e-6 moves PSNR by ~1e-4 dB at most;
    # 0.01 dB is still far below what A4 activations cost (0.5 dB on this tiny model).
    assert weights_only.metrics["psnr"] == pytest.approx(row["psnr"], abs=0.01)
    assert both.metrics["psnr"] < weights_only.metrics["psnr"] - 0.1
    # The module is back to FP afterwards: the FP reference reproduces. Not bit for bit: the
    # reference stage ran before evaluate_pending changed torch's thread count, and another
    # thread count may block GEMMs differently (~1e-6 on these images). Leftover quantization
    # would move pixels by ~1e-1.
    again = finished_study.generate(finished_study.sampling_seeds())
    from qua2.study.reference import get_reference

    torch.testing.assert_close(again, get_reference(finished_study).images, rtol=0, atol=1e-4)


def test_qua2sedimo_composition_merges_best_variants_within_budget(finished_study):
    """Merged top sub-graph variants, repaired to the budget least-sensitive-first."""
    import numpy as np
    import pandas as pd

    from qua2.search.qua2sedimo import composed_choice
    from qua2.search.stage import cost_table
    from qua2.study.graph import study_graph
    from qua2.study.option_cache import open_option_cache

    table = cost_table(finished_study, open_option_cache(finished_study))
    parts = [p for p in study_graph(finished_study).partition()
             if set(p.layers) & set(table.layers)]
    folder = finished_study.path("explain", "xgb", "x").parent
    best, scores = [], []
    for i, part in enumerate(parts):
        layers = [n for n in part.layers if n in table.layers]
        best.append({"subgraph": part.name, "variant": "|".join(["uaq-w4"] * len(layers))})
        # Sub-graph 0 is by far the most sensitive: it must keep its 4-bit variant.
        scores += [{"subgraph": part.name, "score": 0.0},
                   {"subgraph": part.name, "score": 100.0 if i == 0 else 0.1 * i}]
    pd.DataFrame(best).to_csv(folder / "best_variants.csv", index=False)
    pd.DataFrame(scores).to_csv(folder / "subgraph_scores.csv", index=False)
    choice = composed_choice(finished_study, table, 3.5)
    assert table.avg_bits(choice) <= 3.5 + 1e-9
    first = [table.layers.index(n) for n in parts[0].layers if n in table.layers]
    assert {table.options[i].key for i in choice[first]} == {"uaq-w4"}
    assert np.any([table.options[i].bits == 3 for i in choice])


def test_verification_resumes_from_its_progress_file(finished_study, tmp_path, monkeypatch):
    """Results verified before an interruption are reused, not recomputed."""
    from qua2.search.verification import verify
    from qua2.specs import QuantConfig
    from qua2.study.option_cache import open_option_cache

    cache = open_option_cache(finished_study)
    with Store(finished_study.path("study.sqlite")) as store:
        row = store.rows(kind="uniform")[0]
    candidates = {"fp": ("fp", None), row.id: ("uniform", QuantConfig.from_dict(row.config))}
    progress = tmp_path / "progress.jsonl"
    first = verify(finished_study, candidates, cache, rounds=20, progress_file=progress)
    assert len(progress.read_text().splitlines()) == 2

    def no_generation(*args, **kwargs):
        raise AssertionError("a verified configuration was generated again")

    monkeypatch.setattr(type(finished_study), "generate", no_generation)
    again = verify(finished_study, candidates, cache, rounds=20, progress_file=progress)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in first]
    with pytest.raises(AssertionError, match="generated again"):  # another setting: recomputed
        verify(finished_study, candidates, cache, rounds=21, progress_file=progress)


def test_a_study_made_with_other_weights_is_not_resumed(tiny_study_yaml, tmp_path):
    """The study file names the model, not its weights: model.json's digest guards a resume."""
    import json

    from qua2.errors import Qua2Error

    out = tmp_path / "out"
    run_study(tiny_study_yaml, out, stages=["model"])
    info = json.loads((out / "model.json").read_text())
    run_study(tiny_study_yaml, out, stages=["model"])  # same weights: resumes
    (out / "model.json").write_text(json.dumps({**info, "weights_digest": "0" * 32}))
    with pytest.raises(Qua2Error, match="weights differ"):
        run_study(tiny_study_yaml, out, stages=["model"])
