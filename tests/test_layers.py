"""The import graph of the package: no cycles, and subpackages import only from layers below them.

Every import statement counts, also one inside a function: a cycle or an upward dependency hidden in a
function body is still one (imports under ``if TYPE_CHECKING:`` serve annotations only and do not count).
Layers, bottom first (a subpackage may import its own modules and lower layers):

0. ``lr0fm`` itself: ``catalog`` (dataset names), ``registry`` (the one registry style and the plug-in loader)
1. ``protocols`` (resolutions, LR chains)
2. ``metrics``, ``datasets``, ``models`` (independent of each other)
3. ``lrtk0`` (LR tokens, their training), ``sr`` (super-resolution front-ends)
4. ``benchmark`` (scoring, sweeps, the zero-shot callback), ``synth`` (the diffusion generator)
5. ``toy`` (the toy world, a plug-in), ``analysis`` (the paper's analyses: ``lr0fm report`` and ``lr0fm analyze``)
6. ``lr0fm.cli`` (the command line: imports subcommands by name only)
"""

from __future__ import annotations

import ast
import importlib
import types
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lr0fm"
LAYER = {
    "lr0fm": 0, "lr0fm.catalog": 0, "lr0fm.registry": 0,
    "lr0fm.protocols": 1,
    "lr0fm.metrics": 2, "lr0fm.datasets": 2, "lr0fm.models": 2,
    "lr0fm.lrtk0": 3, "lr0fm.sr": 3,
    "lr0fm.benchmark": 4, "lr0fm.synth": 4,
    "lr0fm.toy": 5, "lr0fm.analysis": 5,
    "lr0fm.cli": 6,
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only, never imported at run time)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """lr0fm modules imported anywhere in ``path`` (``from a import b`` counts ``a.b`` when it is a module)."""
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("lr0fm")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lr0fm") and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


def layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    for n in (2, 1):
        key = ".".join(parts[:n])
        if key in LAYER:
            return key, LAYER[key]
    raise AssertionError(f"{module} is in no layer: add its subpackage to LAYER")


def test_no_upward_or_sideways_imports_between_subpackages() -> None:
    known = modules()
    wrong = []
    for name, path in sorted(known.items()):
        home, rank = layer_of(name)
        for target in sorted(imports(path, known)):
            other, other_rank = layer_of(target)
            if other != home and other_rank >= rank and other_rank != 0:
                wrong.append(f"{name} (layer {rank}) imports {target} (layer {other_rank})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    known = modules()
    graph = {name: imports(path, known) & set(known) for name, path in known.items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(cycles)


def test_the_layer_rules_catch_what_they_should() -> None:
    # the checker itself: an upward import is reported, a layer-0 import is not
    assert layer_of("lr0fm.benchmark.runner") == ("lr0fm.benchmark", 4)
    assert layer_of("lr0fm.catalog") == ("lr0fm.catalog", 0)
    source = PACKAGE / "lrtk0" / "module.py"
    assert "lr0fm.models.base" in imports(source, modules())


@pytest.mark.parametrize("package", ["lr0fm.lrtk0", "lr0fm.metrics", "lr0fm.models", "lr0fm.protocols", "lr0fm.synth"])
def test_lazy_package_exports_resolve(package):
    """Every name a lazily exporting package lists in ``__all__`` resolves to the object its submodule defines."""
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        assert not isinstance(value, types.ModuleType), f"{package}.{name} is a module"
        if name in module._EXPORTS:
            assert getattr(importlib.import_module(f"{package}.{module._EXPORTS[name]}"), name) is value


def test_lazy_exports_refuse_names_of_submodules():
    from lr0fm.lazy import lazy_exports

    with pytest.raises(ValueError, match="generation"):
        lazy_exports("lr0fm.synth", {"generation": "generation"})
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        importlib.import_module("lr0fm.synth").nope  # noqa: B018
