"""The Ray executor on a local Ray instance: same numbers as the local executor, faults handled.

One Ray instance for the whole module (``ray_instance``), started only when a test here runs;
every other test module stays free of Ray. A tiny digits-dit study is prepared once (model,
reference, graph, option cache) and copied for each test, so each test sees fresh rows.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from qua2.pipeline import run_study
from qua2.study.config import ExecutorSection
from qua2.study.queue import queue_random
from qua2.study.store import Store
from qua2.study.study import Study
from qua2.study.workers import evaluate_pending

ray = pytest.importorskip("ray")

#: The tiny study of tests/study/conftest.py with batches of 16, so that 40 verification
#: images span three generation batches and verification can be split across actors.
RAY_STUDY = """
name: tiny-ray
model: {family: digits-dit, options: {train_steps: 30}}
sampler: {steps: 3, batch_size: 16}
images_per_config: 16
verification_images: 40
search_space: {methods: [uaq, kmeans_a], bits: [3, 4]}
config_sampler: {num_configs: 4}
"""

LOCAL = ExecutorSection(kind="local", workers=1, cpus_per_worker=1)
RAY = ExecutorSection(kind="ray", workers=2, cpus_per_worker=1)


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A study directory ready to evaluate: model, FP reference, option cache (built locally)."""
    root = tmp_path_factory.mktemp("ray-study")
    (root / "study.yaml").write_text(RAY_STUDY)
    run_study(root / "study.yaml", root / "prepared",
              stages=["model", "reference", "cache"])
    return root / "prepared"


def _copy(prepared, tmp_path, name: str) -> Study:
    shutil.copytree(prepared, tmp_path / name)
    return Study.open(tmp_path / name)


def _rows(study: Study) -> dict[str, tuple[str, dict]]:
    with Store(study.path("study.sqlite")) as store:
        return {row.id: (row.status, row.metrics) for row in store.rows()}


@pytest.fixture(scope="module")
def local_results(prepared, tmp_path_factory):
    """Random and sweep rows evaluated by the local executor (one process, one thread)."""
    study = _copy(prepared, tmp_path_factory.mktemp("local"), "local")
    queue_random(study, 3)
    evaluate_pending(study, executor=LOCAL)
    return _rows(study)


def test_ray_evaluates_every_row_once_with_the_local_numbers_even_when_an_actor_dies(
        ray_instance, prepared, local_results, tmp_path):
    study = _copy(prepared, tmp_path, "ray")
    queue_random(study, 3)
    killed: list[str] = []

    def kill_first(worker, task):
        if not killed:
            killed.append(task.key)
            os.kill(worker.pid, signal.SIGKILL)  # mid-configuration: evaluation takes > 0.1 s

    from qua2.study.ray_executor import evaluate_with_ray

    recorded = evaluate_with_ray(study, None, RAY, on_dispatch=kill_first)
    rows = _rows(study)
    assert killed and recorded == len(rows) == len(local_results)  # nothing twice, none lost
    assert {status for status, _ in rows.values()} == {"done"}
    # The same computation (same weights, seeds, noise, one thread) in another process:
    # bit-identical, also for the configuration whose first actor was killed.
    assert rows == local_results


def _racing_copy(prepared, tmp_path, name: str) -> Study:
    """A copy of the prepared study with racing on (4 → 8 → 16 images), saved to disk so the
    actors, which open the study by path, race too."""
    study = _copy(prepared, tmp_path, name)
    config = replace(study.config, images=replace(study.config.images, racing=True, min=4,
                                                  error_rate=0.2))
    config.save(study.path("study.yaml"))
    study = Study.open(study.directory)
    queue_random(study, 4)
    return study


def test_a_racing_study_on_ray_gets_the_local_rows_and_verdicts(ray_instance, prepared,
                                                                tmp_path):
    from qua2.study.racing import evaluate_racing

    rows = {}
    for name, executor in (("local", LOCAL), ("ray", RAY)):
        study = _racing_copy(prepared, tmp_path, name)
        evaluate_racing(study, ["random"], executor, name)
        with Store(study.path("study.sqlite")) as store:
            rows[name] = {r.id: (r.status, r.metrics, r.tags) for r in store.rows()}
    assert rows["ray"] == rows["local"]  # continued rows' earlier images travel with the task
    assert any(len(tags.get("race", [])) > 0 for _, _, tags in rows["ray"].values())


def _one_candidate(prepared, tmp_path, name: str, kind: str):
    """A copy of the study, one random configuration as the candidate ``pick``, its cache."""
    from qua2.specs import QuantConfig
    from qua2.study.option_cache import open_option_cache

    study = _copy(prepared, tmp_path, name)
    queue_random(study, 1)
    with Store(study.path("study.sqlite")) as store:
        row = store.rows()[0]
    return study, {"pick": (kind, QuantConfig.from_dict(row.config))}, open_option_cache(study)


def test_ray_verification_matches_local_verification(ray_instance, prepared, tmp_path):
    from qua2.search.verification import verify

    study, candidates, cache = _one_candidate(prepared, tmp_path, "verify", "search")
    local = verify(study, candidates, cache, rounds=30)
    # One candidate, two actors: its 40 seeds are split at the batch size (32 + 8).
    distributed = verify(study, candidates, cache, rounds=30, executor=RAY)
    assert local[0].avg_bits == distributed[0].avg_bits
    # Same images (same generation batches); the scoring network sees batches of 32 and 8
    # instead of 40, which moves features in the last float32 bits (~1e-6 relative):
    # 1e-4 relative is 100× that and far below any difference a comparison reports.
    for metric, value in local[0].metrics.items():
        assert distributed[0].metrics[metric] == pytest.approx(value, rel=1e-4, abs=1e-6), metric
    for metric, draws in local[0].draws.items():
        assert distributed[0].draws[metric] == pytest.approx(draws, rel=1e-4, abs=1e-6), metric


def test_workers_that_cannot_fit_are_refused_or_reduced(ray_instance):
    """An actor without room would wait for resources forever: say so instead."""
    from qua2.errors import Qua2Error
    from qua2.study.ray_executor import _fitting_workers

    # A 2-CPU instance: two 1-CPU actors, once earlier tests' killed actors have let go.
    assert _fitting_workers(5, 1, 0.0) == 2
    with pytest.raises(Qua2Error, match="no room for a worker with 1 CPU"):
        _fitting_workers(2, 1, 1.0, wait=0.5)  # no GPU here


def test_chunks_follow_generation_batches():
    from qua2.study.ray_executor import _chunks

    assert _chunks(40, 16, split=True, workers=2) == [(0, 32), (32, 40)]
    assert _chunks(40, 16, split=False, workers=2) == [(0, 40)]
    assert _chunks(1000, 256, split=True, workers=8) == [(i, min(i + 256, 1000))
                                                         for i in range(0, 1000, 256)]


@pytest.mark.slow
def test_a_configuration_that_kills_its_worker_twice_is_recorded_failed_once(
        ray_instance, prepared, local_results, tmp_path):
    study = _copy(prepared, tmp_path, "deadly")
    queue_random(study, 3)
    deadly = next(iter(local_results))
    kills: list[str] = []

    def kill_deadly(worker, task):
        if task.key == deadly:
            kills.append(task.key)
            os.kill(worker.pid, signal.SIGKILL)

    from qua2.study.ray_executor import evaluate_with_ray

    evaluate_with_ray(study, None, RAY, on_dispatch=kill_deadly)
    rows = _rows(study)
    assert len(kills) == 2
    assert rows[deadly][0] == "failed"
    assert all(rows[key] == value for key, value in local_results.items() if key != deadly)
    with Store(study.path("study.sqlite")) as store:
        assert "died 2 times" in (store.get(deadly).error or "")


@pytest.mark.slow
def test_killed_driver_resumes_without_losing_or_repeating(ray_instance, prepared,
                                                           local_results, tmp_path):
    """SIGKILL the driver (`qua2 sample … --executor ray`) after one row; re-run finishes."""
    study = _copy(prepared, tmp_path, "driver")
    driver = subprocess.Popen(
        [sys.executable, "-m", "qua2", "sample", str(study.directory), "-n", "4", "--executor",
         "ray", "--address", ray_instance, "--workers", "1", "--threads", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    with Store(study.path("study.sqlite")) as store:
        while store.count("done") < 1 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        driver.kill()
        driver.wait()
        first = {row.id: row.metrics for row in store.rows("done")}
        total = store.count()
        assert first and len(first) < total == 4
    evaluate_pending(study, executor=replace(RAY, workers=1))
    rows = _rows(study)
    assert len(rows) == total and {status for status, _ in rows.values()} == {"done"}
    assert all(rows[key][1] == metrics for key, metrics in first.items())  # kept, not redone


@pytest.mark.slow
def test_ctrl_c_puts_rows_in_flight_back_and_stops_the_actors(ray_instance, prepared, tmp_path):
    study = _copy(prepared, tmp_path, "interrupted")
    queue_random(study, 3)
    dispatched: list[int] = []

    def interrupt_on_second(worker, task):
        dispatched.append(worker.pid)
        if len(dispatched) == 2:
            raise KeyboardInterrupt

    from qua2.study.ray_executor import evaluate_with_ray

    with pytest.raises(KeyboardInterrupt):
        evaluate_with_ray(study, None, RAY, on_dispatch=interrupt_on_second)
    with Store(study.path("study.sqlite")) as store:
        assert store.count("running") == 0 and store.count("pending") == 3
    assert len(set(dispatched)) == 2  # both actors were busy: both must be stopped
    deadline = time.monotonic() + 30  # ray.kill is asynchronous
    while any(_alive(pid) for pid in dispatched) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in dispatched)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ray_verification_racing_grows_a_candidate_like_local(ray_instance, prepared, tmp_path):
    """Verification racing on Ray generates only the images a candidate lacks (16 → 40)."""
    from qua2.search.verification_racing import VerificationRace

    study, candidates, cache = _one_candidate(prepared, tmp_path, "verify-race", "qua2")
    grown = {}
    for name, executor in (("local", None), ("ray", RAY)):
        shutil.rmtree(study.path("verification"), ignore_errors=True)
        race = VerificationRace(study, candidates, cache, rounds=30, executor=executor)
        race.grow(["pick"], 16)
        race.grow(["pick"], 40)
        grown[name] = race.scores["pick"].to_arrays()
    assert len(grown["ray"]["per_image/mse"]) == 40
    for key, values in grown["local"].items():  # other scoring batch shapes: last bits
        np.testing.assert_allclose(grown["ray"][key], values, rtol=1e-4, atol=1e-6)
