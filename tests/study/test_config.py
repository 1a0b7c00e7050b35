from pathlib import Path

import pytest

from qua2.errors import Qua2Error
from qua2.study.config import StudyConfig, load_study_config, study_config_from_dict

EXPERIMENTS = Path(__file__).parents[2] / "experiments"


@pytest.mark.parametrize("name", ["digits-dit.yaml", "digits-unet.yaml", "digits-dit-quick.yaml"])
def test_shipped_digits_studies_parse(name):
    config = load_study_config(EXPERIMENTS / name)
    assert config.model.family == name.removesuffix(".yaml").removesuffix("-quick")
    assert len(config.search_space.build()) == 6


def test_resolved_config_round_trips(tmp_path):
    config = study_config_from_dict({"name": "x", "sampler": {"steps": 5}})
    config.save(tmp_path / "study.yaml")
    assert load_study_config(tmp_path / "study.yaml") == config
    assert config.config_sampler.low_share == (0.0, 1.0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"modle": {}}, "unknown key 'modle'"),
        ({"model": {"famly": "x"}}, "unknown key 'model.famly'"),
        ({"sampler": {"steps": "many"}}, "'sampler.steps' must be int"),
        ({"sampler": {"steps": 0}}, "'sampler.steps' must be at least 1"),
        ({"config_sampler": {"kind": "sobol"}}, "'config_sampler.kind' must be one of"),
        ({"config_sampler": {"low_share": [0.5, 0.2]}}, "low_share must be"),
        ({"search_space": {"bits": [3, 12]}}, "bits must be an integer from 2 to 8"),
        ({"model": "digits"}, "model must be a mapping"),
        ({"pipeline": {"surrogates": ["svm"]}}, "unknown surrogate 'svm'"),
        ({"pipeline": {"surrogates": []}}, "must name at least one"),
        ({"pipeline": {"sweep": "no"}}, "'pipeline.sweep' must be bool"),
    ],
)
def test_bad_values_name_the_key(data, message):
    with pytest.raises(Qua2Error, match=message):
        study_config_from_dict(data)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(Qua2Error, match="does not exist"):
        load_study_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(Qua2Error, match="not valid YAML"):
        load_study_config(bad)


def test_defaults_are_the_paper_search_space():
    space = StudyConfig().search_space.build()
    assert {o.key for o in space} == {
        "uaq-w3", "uaq-w4", "kmeans_c-w3", "kmeans_c-w4", "kmeans_a-w3", "kmeans_a-w4"}


@pytest.mark.parametrize(
    ("activations", "message"),
    [({"bits": 12}, "activation bits must be an integer from 4 to 8"),
     ({"bits": 8, "mode": "static", "calibration": "magic"}, "unknown calibration method"),
     ({"bitz": 8}, r"unknown key\(s\) \['bitz'\]")],
)
def test_activation_settings_are_validated(activations, message):
    with pytest.raises(Qua2Error, match=message):
        study_config_from_dict({"activations": activations})


def test_activation_setting_label():
    config = study_config_from_dict({"activations": {"bits": 6}})
    assert config.activation_setting().label == "A6"
    assert StudyConfig().activation_setting() is None


def test_pipeline_choices_do_not_make_a_different_study(tmp_path):
    """Turning the sweep off (or on) resumes the same study; changing a result key refuses."""
    from qua2.study.study import Study

    Study.create(study_config_from_dict({"name": "x"}), tmp_path)
    Study.create(study_config_from_dict({"name": "x", "pipeline": {"sweep": False},
                                         "workers": 2}), tmp_path)
    with pytest.raises(Qua2Error, match="different configuration"):
        Study.create(study_config_from_dict({"name": "x", "images_per_config": 8}), tmp_path)


def test_sweep_stage_obeys_pipeline_sweep(tmp_path, capsys):
    from qua2.study.stages import RunOptions, stage_sweep
    from qua2.study.study import Study

    study = Study.create(study_config_from_dict({"pipeline": {"sweep": False}}), tmp_path)
    stage_sweep(study, RunOptions())
    assert "sweep: skipped" in capsys.readouterr().err
    assert not (tmp_path / "study.sqlite").exists()
