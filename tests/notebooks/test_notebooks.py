"""The notebooks: stored without outputs and executed on the quick recipe (that they use only
the public API is checked by tests/test_public_api.py).

The full runs (``-m slow``) execute ``01_quickstart`` with ``QUA2_NOTEBOOK_QUICK=1`` (a 30-step
digits-dit in the tests' temporary cache) and then ``02_explain_and_export`` on the study it
made. The default run executes the first cells of ``01`` only (kernel, parameters, YAML).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
TIMEOUT = 1200  # seconds per cell; the machine is shared


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _execute(notebook, directory: Path) -> None:
    from nbclient import NotebookClient

    client = NotebookClient(notebook, timeout=TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(directory)}})
    client.execute()


def _errors(notebook) -> list[str]:
    return [f"{o.ename}: {o.evalue}" for cell in notebook.cells if cell.cell_type == "code"
            for o in cell.outputs if o.output_type == "error"]


def test_both_notebooks_exist():
    assert [p.name for p in PATHS] == ["01_quickstart.ipynb", "02_explain_and_export.ipynb"]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    notebook = _read(path)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def test_quickstart_parameter_cells_run_in_a_kernel(tmp_path, monkeypatch):
    """Smoke: the kernel starts, reads the parameters and writes a valid study YAML."""
    monkeypatch.setenv("QUA2_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("QUA2_NOTEBOOK_OUT", str(tmp_path))
    notebook = _read(NOTEBOOKS / "01_quickstart.ipynb")
    end = next(i for i, c in enumerate(notebook.cells) if "load_study_config" in c.source)
    notebook.cells = notebook.cells[:end + 1]
    _execute(notebook, tmp_path)
    assert not _errors(notebook)
    assert "train_steps: 30" in (tmp_path / "quickstart.yaml").read_text()
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                      for o in c.outputs)
    assert "kmeans_a-w3" in printed and "quick mode: True" in printed


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    notebook = _read(NOTEBOOKS / "01_quickstart.ipynb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QUA2_NOTEBOOK_QUICK", "1")
        patch.setenv("QUA2_NOTEBOOK_OUT", str(out))
        _execute(notebook, out)
    return out, notebook


@pytest.mark.slow
def test_quickstart_runs_on_the_quick_recipe(quickstart_run):
    out, notebook = quickstart_run
    assert not _errors(notebook)
    study = out / "study"
    assert (study / "study.sqlite").exists() and (study / "surrogates" / "cv_report.json").exists()
    for name in ("fp_vs_w3", "pareto", "graph_transformer_block_0"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 5000


@pytest.mark.slow
def test_explain_and_export_runs_on_the_quickstart_study(quickstart_run, tmp_path,
                                                         monkeypatch):
    study = quickstart_run[0] / "study"
    monkeypatch.setenv("QUA2_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("QUA2_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("QUA2_NOTEBOOK_STUDY", str(study))
    notebook = _read(NOTEBOOKS / "02_explain_and_export.ipynb")
    _execute(notebook, tmp_path)
    assert not _errors(notebook)
    assert (study / "explain" / "xgb" / "option_preference.png").exists()
    assert (study / "verification" / "table.md").exists()
    assert (tmp_path / "export" / "qua2_quant.safetensors").exists()
    assert (tmp_path / "figures" / "fp_vs_exported.png").stat().st_size > 5000
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                      for o in c.outputs)
    assert "max |reloaded − fake-quantized| = 0.0" in printed
    # the analysis scripts on a real (tiny) study with explain/ and verification/ outputs
    from analysis import insights

    assert insights.main([str(study), "--out", str(tmp_path / "insights"), "--rounds", "100"]) == 0
    text = (tmp_path / "insights" / "quickstart-dit" / "insights.md").read_text()
    assert "explain/xgb/shap_values.csv" in text and "Verified picks" in text
