"""The one-way flow of the package, enforced: no package imports a layer above its own.

The allowed direction is written once, here, and in docs/ARCHITECTURE.md. Every ``import``
counts — module level and deferred (inside functions) alike — so a cycle cannot hide in a
function body; only imports under ``if TYPE_CHECKING:`` (annotations, never executed) are
left out. A package may import its own modules and any layer below it. The registries
(``qua2/*/registry.py``: metrics, families, surrogates, all data) form one unit of the base
layer, so that a study file can be checked against every registry from the study layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "qua2"

#: Lowest first. ``qua2`` (the root, which re-exports the public API) sits above everything.
LAYERS: list[set[str]] = [
    {"errors", "version", "paths", "io", "log", "progress", "specs", "plots", "stats",
     "registries", "shipped", "lazy"},
    {"quant"},
    {"metrics"},
    {"models"},
    {"graph"},
    {"activations"},
    {"study"},
    {"surrogates"},
    {"explain"},
    {"search"},
    {"export"},
    {"report"},
    {"pipeline"},
    {"cli", "__main__"},
    {"<root>"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(module: str) -> str:
    """The layer unit of a dotted module name: its top package below ``qua2``."""
    parts = module.split(".")
    if len(parts) == 3 and parts[2] == "registry":
        return "registries"
    return parts[1] if len(parts) > 1 else "<root>"


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return skipped


def _imports(path: Path) -> set[str]:
    found = set()
    tree = ast.parse(path.read_text())
    skipped = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "qua2":  # "from qua2 import x" imports the root's names
                names = ["qua2"]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(_unit(n) for n in names if n == "qua2" or n.startswith("qua2."))
    return found


def import_edges() -> dict[tuple[str, str], list[str]]:
    """(importer unit, imported unit) → files, for every qua2-internal import."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        unit = relative.parts[0].removesuffix(".py") if len(relative.parts) > 1 or \
            relative.name != "__init__.py" else "<root>"
        if len(relative.parts) == 2 and relative.name == "registry.py":
            unit = "registries"
        for target in _imports(path) - {unit}:
            edges.setdefault((unit, target), []).append(str(relative))
    return edges


def test_every_unit_has_a_layer():
    units = {u for edge in import_edges() for u in edge}
    units |= {p.name.removesuffix(".py") for p in PACKAGE.iterdir()
              if p.name != "__init__.py" and (p.suffix == ".py" or (p / "__init__.py").exists())}
    # (folders without __init__.py hold data, e.g. shipped_weights/)
    assert units <= set(RANK), f"give these a layer in LAYERS: {sorted(units - set(RANK))}"


def test_no_import_points_up():
    upward = [f"{a} → {b} ({', '.join(files)})" for (a, b), files in import_edges().items()
              if RANK[b] > RANK[a]]
    assert not upward, "imports against the one-way flow:\n" + "\n".join(upward)


def test_no_cycle_between_units_of_one_layer():
    same = [f"{a} ↔ {b}" for (a, b) in import_edges() if RANK[a] == RANK[b]
            and (b, a) in import_edges()]
    assert not same, same


def test_the_checker_sees_deferred_imports(tmp_path):
    """The check would fail on an upward import hidden in a function body."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from qua2.pipeline import run_study\n")
    assert _imports(source) == {"pipeline"}
