"""Choosing among qua2's picks: by the selection images when there are any, else the surrogate."""

from qua2.search.selection import _choose
from qua2.search.stage import Candidate
from qua2.specs import QuantConfig, QuantOption
from qua2.study.config import study_config_from_dict
from qua2.study.study import Study


def _pick(name: str, predicted: float | None) -> Candidate:
    config = QuantConfig({f"layer.{name}": QuantOption("uaq", 3)})
    return Candidate(3.5, name, "qua2", config, 3.4, predicted)


def _study(tmp_path, **keys) -> Study:
    return Study(tmp_path, study_config_from_dict({"metrics": {"primary": "digits_fid"}, **keys}))


def test_selection_images_decide_against_the_surrogate(tmp_path):
    first, second = _pick("qua2-1", -10.0), _pick("qua2-2", -12.0)
    scores = {first.config.digest(): 30.0, second.config.digest(): 25.0}  # lower FID is better
    assert _choose(_study(tmp_path), [first, second], scores) == (second, "selection images")


def test_without_selection_images_the_surrogate_decides(tmp_path):
    first, second = _pick("qua2-1", -12.0), _pick("qua2-2", -10.0)
    study = _study(tmp_path, selection_images=0)
    assert _choose(study, [first, second], {}) == (second, "surrogate")
    assert _choose(study, [first], {}) == (first, "only pick")


def test_higher_is_better_metrics_choose_the_larger_score(tmp_path):
    first, second = _pick("qua2-1", None), _pick("qua2-2", None)
    scores = {first.config.digest(): 0.9, second.config.digest(): 0.8}
    study = _study(tmp_path, metrics={"primary": "class_accuracy"})
    assert _choose(study, [first, second], scores)[0] is first
