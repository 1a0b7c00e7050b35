"""The command line: bad input is one sentence and exit code 2; `python -m qua2` works."""

import subprocess
import sys

import pytest

from qua2.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_missing_study_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path))
    assert code == 2
    assert err.startswith("qua2: error: ") and "does not exist" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_yaml_key(capsys, tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text("model: {family: digits-dit}\nsampler: {stepz: 3}\n")
    code, _, err = run_cli(capsys, "run", str(study), "--out", str(tmp_path / "out"))
    assert code == 2 and "unknown key 'sampler.stepz'" in err


def test_unknown_family(capsys, tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text("model: {family: imagen}\n")
    code, _, err = run_cli(capsys, "run", str(study), "--out", str(tmp_path / "out"),
                           "--stages", "model")
    assert code == 2 and "unknown model family 'imagen'" in err


@pytest.mark.parametrize("command", ["status", "results", "sample", "sweep"])
def test_not_a_study_directory(capsys, tmp_path, command):
    extra = ["-n", "1"] if command == "sample" else []
    code, _, err = run_cli(capsys, command, str(tmp_path), *extra)
    assert code == 2 and "is not a qua2 study directory" in err


def test_module_entry_point_and_light_import():
    out = subprocess.run([sys.executable, "-m", "qua2", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("qua2 ")
    code = ("import sys, qua2, qua2.specs; heavy = {'torch', 'diffusers', 'shap', 'ray', "
            "'torch_geometric', 'xgboost'} & set(sys.modules); print(sorted(heavy))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"


def test_search_refuses_zero_bootstrap_rounds_before_searching(capsys, tmp_path):
    from qua2.study.config import study_config_from_dict
    from qua2.study.study import Study

    Study.create(study_config_from_dict({"name": "x"}), tmp_path)
    code, _, err = run_cli(capsys, "search", str(tmp_path), "--bits", "3.5", "--rounds", "0")
    assert code == 2 and "--rounds: 0 is below the minimum of 1" in err
    assert not (tmp_path / "search").exists()
