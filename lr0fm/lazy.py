"""Lazy package exports: a package's public names load their submodule on first use.

Command modules (``lr0fm.<package>.cli``) sit inside packages whose public API needs torch or SciPy; with
eager re-exports in ``__init__`` every ``lr0fm <command> --help`` would pay those imports. A package instead
declares ``__getattr__ = lazy_exports(__name__, {"Name": "submodule", ...})`` (PEP 562).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """Module ``__getattr__`` of ``package`` that imports ``package.<exports[name]>`` when ``name`` is first read.

    Args:
        package: the package's ``__name__``.
        exports: public name -> submodule (relative to ``package``) that defines it.

    Returns:
        A function to assign to the package's ``__getattr__``.

    Raises:
        ValueError: a public name is also a submodule of ``package``: importing that submodule would rebind
            the package attribute to the module, so the name could not be exported lazily.

    """
    clashes = sorted(name for name in exports if importlib.util.find_spec(f"{package}.{name}") is not None)
    if clashes:
        raise ValueError(f"{package}: lazy exports {clashes} are also submodule names; rename the submodules")

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
