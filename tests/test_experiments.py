"""The experiment scripts under ``experiments/``: they import, parse, plan and summarise.

``experiments/calibration/run.py`` is a script, not a package module, so it is loaded from its
path. Its real path needs a trained digits model and the digits classifier (tens of seconds on
a cold cache), so the run on a tiny model is a slow test; the rest needs no model.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def calibration():
    spec = importlib.util.spec_from_file_location(
        "calibration_run", ROOT / "experiments" / "calibration" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_arguments_and_a_dry_run_that_loads_and_writes_nothing(calibration, tmp_path, capsys):
    defaults = calibration.build_parser().parse_args([])
    assert defaults.models == ["digits-dit", "digits-unet"] and defaults.images == 256
    assert defaults.settings == list(calibration.SETTINGS)
    out = tmp_path / "run"
    assert calibration.main(["--dry-run", "--out", str(out), "--models", "digits-dit",
                             "--settings", "W16A8", "W4A6", "--methods", "ndtc", "real",
                             "--calib-seeds", "0", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # FP; W16A8: dynamic + 2 methods × 2 seeds; W4A6: weights-only, dynamic + 4
    assert lines[:3] == ["digits-dit FP fp", "digits-dit W16A8 dynamic",
                         "digits-dit W16A8 ndtc (calibration seed 0)"]
    assert "digits-dit W4A6 weights-only" in lines
    assert lines[-1].startswith("12 evaluations of 256 images")
    assert not out.exists()
    with pytest.raises(SystemExit):
        calibration.build_parser().parse_args(["--settings", "W3A3"])


def test_summary_table_and_figure_from_a_run_directory(calibration, tmp_path):
    import pandas as pd
    from safetensors.torch import save_file

    rows, per_image = [], {}
    for method, seed, psnr in (("fp", 0, float("inf")), ("dynamic", 0, 40.0), ("ndtc", 0, 35.0),
                               ("real", 0, 34.0), ("ndtc", 1, 36.0), ("real", 1, 34.5)):
        setting = "FP" if method == "fp" else "W8A8"
        values = torch.full((8,), psnr, dtype=torch.float64) + 0.1 * torch.arange(8)
        per_image[f"{setting}/{method}/{seed}"] = values
        rows.append({"model": "digits-dit", "setting": setting, "method": method,
                     "calib_seed": seed, "psnr": float(values.mean()), "psnr_se": 0.1,
                     "digits_fid": 20.0, "class_accuracy": 0.9, "seconds": 1.0,
                     "keep_fp": "a,b"})
    pd.DataFrame(rows).to_csv(tmp_path / "rows.csv", index=False)
    save_file(per_image, tmp_path / "digits-dit-psnr.safetensors")
    text = calibration.summarise(tmp_path, tmp_path / "published")
    assert "| digits-dit | FP | fp | reference |" in text
    assert "| digits-dit | W8A8 | ndtc | 35.85 | 35.35 – 36.35 | +1.25 ± 0.00 |" in text
    assert (tmp_path / "summary.md").read_text() == text
    for folder in (tmp_path, tmp_path / "published"):
        assert (folder / "calibration.png").stat().st_size > 5000
    assert (tmp_path / "published" / "rows.csv").exists()


@pytest.mark.slow
def test_the_smallest_run_on_a_tiny_model(calibration, tiny_digits_dit, tmp_path):
    args = calibration.build_parser().parse_args([
        "--images", "4", "--steps", "2", "--settings", "W8A8", "--methods", "uniform",
        "--calib-seeds", "0", "--size", "8"])
    rows = calibration.run_model(tiny_digits_dit, "digits-dit", args, tmp_path)
    assert [(r["setting"], r["method"]) for r in rows] == [
        ("FP", "fp"), ("W8A8", "weights-only"), ("W8A8", "dynamic"), ("W8A8", "uniform")]
    assert rows[0]["psnr"] == float("inf")  # the FP images against themselves
    assert all(0 < r["psnr"] < float("inf") for r in rows[1:])
    assert all(0 <= r["class_accuracy"] <= 1 for r in rows)
    assert (tmp_path / "digits-dit-psnr.safetensors").exists()
