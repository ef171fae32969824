"""The package layout is the data flow: no module imports a later stage, and there is no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "expert"

# request -> facts -> estimator -> engine -> ranking -> rendering, plus the plumbing before and the
# commands after. A module may import its own stage and earlier ones, never a later one.
STAGES = ["core", "resources", "catalog", "request", "estimate", "candidates", "rulelang", "store", "decide",
          "render", "governance", "cli", "entry", "__init__", "__main__"]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, me: str | None = None) -> list[tuple[str, int]]:
    """Every expert module a file imports (module level and inside functions), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = me or _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []
    # Imports only a type checker runs (`if TYPE_CHECKING:`) create no runtime dependency or cycle.
    typing_only = {id(n) for top in ast.walk(tree)
                   if isinstance(top, ast.If) and "TYPE_CHECKING" in ast.unparse(top.test)
                   for stmt in top.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "expert"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "expert":
                continue
            out.append((mod, node.lineno))
            for a in node.names:  # `from . import cache` imports a submodule
                sub = f"{mod}.{a.name}"
                if (PKG.parent / Path(*sub.split("."))).with_suffix(".py").is_file():
                    out.append((sub, node.lineno))
    return out


def _stage(module: str) -> int:
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    return STAGES.index(head)


MODULES = sorted(PKG.rglob("*.py"))


def _later(path: Path, me: str) -> list[str]:
    return [f"line {line}: {mod} ({STAGES[_stage(mod)]})" for mod, line in _imports(path, me)
            if _stage(mod) > _stage(me)]


def test_every_module_belongs_to_a_stage():
    for path in MODULES:
        _stage(_module_name(path))  # raises ValueError for a folder that is not a stage


@pytest.mark.parametrize("path", MODULES, ids=[_module_name(p) for p in MODULES])
def test_no_module_imports_a_later_stage(path):
    me = _module_name(path)
    later = _later(path, me)
    assert not later, f"{me} ({STAGES[_stage(me)]}) imports a later stage: " + "; ".join(later)


def test_no_import_cycles():
    graph = {_module_name(p): {m for m, _ in _imports(p)} for p in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if n == m or n not in graph:
                continue
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_checker_catches_a_backward_import(tmp_path):
    fake = tmp_path / "fake.py"
    fake.write_text("from ..decide.ranking import rank\n\ndef f():\n    from expert.render import render\n")
    found = _later(fake, "expert.catalog.fake")
    assert found == ["line 1: expert.decide.ranking (decide)", "line 4: expert.render (render)"]
