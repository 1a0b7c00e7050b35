"""Lazy public names for a package ``__init__``: ``name → defining module``, imported on first use.

Importing ``qua2`` or one of its packages must stay light (no torch, diffusers, shap, ray …),
yet ``from qua2.quant import OptionCache`` should work. A module-level ``__getattr__``
(PEP 562) does both: the table says where each public name lives, and the defining module is
imported only when the name is first asked for. Every package ``__init__`` ends with::

    __all__ = sorted(_EXPORTS)
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str], eager: Iterable[str] = ()
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` for the names in ``exports`` (and,
    listed by ``__dir__`` only, the ``eager`` names the package defines itself)."""
    listed = sorted({*exports, *eager})

    def get_attribute(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    def list_names() -> list[str]:
        return list(listed)

    return get_attribute, list_names
