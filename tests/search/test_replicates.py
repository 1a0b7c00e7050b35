"""Replicates (issue 19): sibling studies with independent seeds, pooled comparisons."""

import pandas as pd
import pytest

from qua2.search.replicates import claim, pool_replicates, replicate_config, replicate_dirs
from qua2.study.config import study_config_from_dict
from qua2.study.store import Store


def test_replicates_differ_only_in_what_the_study_randomises():
    config = study_config_from_dict({"name": "s", "config_sampler": {"seed": 5}})
    first, third = replicate_config(config, 1), replicate_config(config, 3)
    assert first.config_sampler == config.config_sampler and first.seeds == config.seeds
    assert third.config_sampler.seed == 7 and third.seeds.surrogates == 2
    assert third.seeds.sampling == config.seeds.sampling  # the same images
    assert third.seeds.verification == config.seeds.verification
    assert {first.name, third.name} == {"s-r1", "s-r3"}


def _comparisons(directory, deltas, verdicts):
    (directory / "verification").mkdir(parents=True)
    (directory / "study.yaml").write_text("name: x\n")
    rows = [{"budget": 3.5, "pick": "qua2-1", "other": other, "metric": "digits_fid",
             "delta": delta, "delta_lo": delta - 1.0, "delta_hi": delta + 1.0,
             "verdict": verdict}
            for other, delta, verdict in zip(["uniform", "mixdq-ip", "edge-recipe"], deltas,
                                             verdicts, strict=True)]
    pd.DataFrame(rows).to_csv(directory / "verification" / "comparisons.csv", index=False)


def test_a_claim_holds_only_when_every_replicate_agrees(tmp_path):
    # uniform: better in all three, consistently; mixdq-ip: better twice, worse once;
    # edge-recipe: better twice by a little, tie once — the across interval includes 0.
    _comparisons(tmp_path / "replicate-1", [-10.0, -4.0, -1.5], ["better", "better", "better"])
    _comparisons(tmp_path / "replicate-2", [-11.0, -5.0, -1.2], ["better", "better", "better"])
    _comparisons(tmp_path / "replicate-10", [-9.5, +3.0, +0.4], ["better", "worse", "tie"])
    dirs = replicate_dirs(tmp_path)
    assert [d.name for d in dirs] == ["replicate-1", "replicate-2", "replicate-10"]
    pooled = pool_replicates(dirs).set_index("other")
    assert pooled.loc["uniform", "holds"] == "better"
    assert pooled.loc["uniform", "across_lo"] < -10.17 < pooled.loc["uniform", "across_hi"] < 0
    assert pooled.loc["mixdq-ip", "holds"] == "mixed"
    assert pooled.loc["edge-recipe", "holds"] == "tie"
    assert (pooled["replicates"] == 3).all()


def test_claim_direction_follows_the_metric():
    assert claim(["better"] * 3, -5.0, -1.0, lower_is_better=True) == "better"
    assert claim(["worse"] * 3, -5.0, -1.0, lower_is_better=False) == "worse"
    assert claim(["better", "tie"], 1.0, 3.0, lower_is_better=False) == "better"


@pytest.fixture
def tiny_yaml(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("""
name: tiny-rep
model: {family: digits-dit, options: {train_steps: 30}}
sampler: {steps: 2, batch_size: 16}
images_per_config: 8
verification_images: 16
selection_images: 8
search_space: {methods: [uaq], bits: [3, 4]}
config_sampler: {num_configs: 3}
""")
    return path


def test_run_replicates_makes_sibling_studies_with_other_draws(tiny_yaml, tmp_path):
    from qua2.pipeline import run_replicates

    studies = run_replicates(tiny_yaml, tmp_path / "out", 2,
                             stages=["model", "reference", "cache", "sample"])
    assert [s.directory.name for s in studies] == ["replicate-1", "replicate-2"]
    drawn = []
    for study in studies:
        with Store(study.path("study.sqlite")) as store:
            drawn.append({row.id for row in store.rows(kind="random", status="done")})
    assert len(drawn[0]) == len(drawn[1]) == 3 and drawn[0] != drawn[1]
