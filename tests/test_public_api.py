"""The public API: what ``qua2`` and each package ``__init__`` export, and that the notebooks
use nothing else.

* ``qua2`` exports the names a researcher uses (``qua2.__all__``), each loaded on first use;
* every package ``qua2/<pkg>/__init__.py`` exports 5–10 names of its own area, in one style: a
  docstring, an ``_EXPORTS`` table (name → defining module, inside the package) read by the
  module ``__getattr__`` of :func:`qua2.lazy.lazy_exports`, and ``__all__ = sorted(_EXPORTS)`` —
  so importing a package imports
  none of its modules (docs/ARCHITECTURE.md, "Public API");
* the notebooks import qua2 only as ``import qua2`` or ``from qua2 import <public name>``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import qua2

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["activations", "explain", "graph", "metrics", "models", "quant", "search", "study",
            "surrogates"]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
HEAVY = {"torch", "diffusers", "shap", "torch_geometric", "xgboost", "ray"}


def _submodules(package: str) -> set[str]:
    module = importlib.import_module(package)
    return {info.name for info in pkgutil.iter_modules(module.__path__)}


# --------------------------------------------------------------------------- qua2
def test_every_top_level_name_resolves():
    assert len(qua2.__all__) == len(set(qua2.__all__))
    for name in qua2.__all__:
        assert getattr(qua2, name) is not None, name
    assert sorted(dir(qua2)) == sorted(qua2.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = qua2.nothing


def test_no_top_level_name_is_also_a_module():
    """``qua2.explain`` must stay the package: a public name equal to a sub-module's name would
    be replaced by that module as soon as the module is imported."""
    assert not set(qua2.__all__) & _submodules("qua2")


def test_run_stages_refuses_an_unknown_stage_before_running_any(tmp_path):
    from qua2.study.config import study_config_from_dict

    study = qua2.Study.create(study_config_from_dict({"name": "x"}), tmp_path / "study")
    with pytest.raises(qua2.Qua2Error, match="unknown stage 'serach'; the stages are model, "):
        qua2.run_stages(study, stages=["model", "serach"])
    assert not (tmp_path / "study" / "model.json").exists()
    (tmp_path / "x.yaml").write_text("name: x\n")
    with pytest.raises(qua2.Qua2Error, match="unknown stage 'fitt'"):
        qua2.run_study(tmp_path / "x.yaml", tmp_path / "new", stages=["fitt"])
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------- packages
@pytest.mark.parametrize("package", PACKAGES)
def test_package_exports_a_handful_that_resolve(package):
    module = importlib.import_module(f"qua2.{package}")
    assert 5 <= len(module.__all__) <= 10, module.__all__
    assert module.__all__ == sorted(set(module.__all__))
    assert not set(module.__all__) & _submodules(module.__name__), "a name shadows a module"
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):  # defined in the package
            assert value.__module__.startswith(f"qua2.{package}."), (name, value.__module__)
    with pytest.raises(AttributeError, match=f"'qua2.{package}' has no attribute 'nothing'"):
        _ = module.nothing


def _top_level(package: str) -> list[ast.stmt]:
    return ast.parse((ROOT / "qua2" / package / "__init__.py").read_text()).body


@pytest.mark.parametrize("package", PACKAGES)
def test_package_init_style(package):
    body = _top_level(package)
    assert ast.get_docstring(ast.Module(body=body, type_ignores=[])), "say what the package does"
    imports = [ast.unparse(node) for node in body if isinstance(node, ast.Import | ast.ImportFrom)]
    assert imports == ["from __future__ import annotations",
                       "from qua2.lazy import lazy_exports"], "no eager import of its modules"
    table = next(node.value for node in body if isinstance(node, ast.Assign)
                 and [ast.unparse(t) for t in node.targets] == ["_EXPORTS"])
    exports = ast.literal_eval(table)
    assert all(target.startswith(f"qua2.{package}.") for target in exports.values()), exports
    assert sorted(exports) == importlib.import_module(f"qua2.{package}").__all__


def test_package_inits_share_one_template():
    """Everything but the docstring and the table is the same text in every package."""
    def rest(package: str) -> list[str]:
        return [ast.dump(node) for node in _top_level(package)[1:]
                if not (isinstance(node, ast.Assign)
                        and [ast.unparse(t) for t in node.targets] == ["_EXPORTS"])]

    first = rest(PACKAGES[0])
    assert all(rest(package) == first for package in PACKAGES[1:])


def test_importing_the_packages_stays_light():
    code = ("import sys, qua2, " + ", ".join(f"qua2.{p}" for p in PACKAGES) +
            f"; print(sorted(set({sorted(HEAVY)!r}) & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- notebooks
def _code_cells(path: Path) -> list[str]:
    notebook = nbformat.read(path, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def _private_uses(source: str) -> list[str]:
    """Every use of qua2 in ``source`` other than ``import qua2``, ``from qua2 import NAME``
    and ``qua2.NAME`` with NAME public."""
    public = set(qua2.__all__)
    wrong = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            wrong += [f"import {a.name}" for a in node.names
                      if a.name.split(".")[0] == "qua2" and a.name != "qua2"]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level or (module.split(".")[0] == "qua2" and module != "qua2"):
                wrong.append(f"from {'.' * node.level}{module} import …")
            elif module == "qua2":
                wrong += [f"from qua2 import {a.name}" for a in node.names
                          if a.name not in public]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "qua2" and node.attr not in public:
            wrong.append(f"qua2.{node.attr}")
    return wrong


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_import_only_the_public_api(path):
    cells = _code_cells(path)
    assert any("qua2" in source for source in cells), "the notebook should use qua2"
    wrong = [use for source in cells for use in _private_uses(source)]
    assert not wrong, f"{path.name} reaches past the public API: {wrong}"


def test_the_notebook_check_catches_deep_imports():
    assert _private_uses("import numpy\nimport qua2\nfrom qua2 import Study\nqua2.run_study") == []
    assert _private_uses("from qua2.study.results import results_frame") == [
        "from qua2.study.results import …"]
    assert _private_uses("import qua2.quant\nfrom qua2 import _PUBLIC\nqua2.plots") == [
        "import qua2.quant", "from qua2 import _PUBLIC", "qua2.plots"]
