"""The import rules of docs/architecture.md, checked on the source (an AST walk over bertcli/, nothing imported).

- the core (every module but `cli`, `__main__`, `output` and `commands/`) never imports `bertcli.commands`,
  `bertcli.cli` or `bertcli.output`; `output` imports neither `commands` nor `cli`;
- no command imports another command or `cli` (the private helpers `commands/_*.py` are shared by all);
- torch, transformers and onnxruntime are never imported at module level by a module that `--help`,
  `config`, `tokenize` or `inspect` may load (following every bertcli import, inside functions too);
- no two modules import each other, directly or round a longer cycle (lazy imports count: a cycle held
  open by an import inside a function is still one).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bertcli"
SHELL = {"bertcli.cli", "bertcli.__main__"}
HEAVY = ("torch", "transformers", "onnxruntime")
#: the modules `bertcli --help`, `config`, `tokenize` and `inspect` start from
LIGHT_ENTRY_POINTS = ("bertcli.cli", "bertcli.commands.config", "bertcli.commands.tokenize",
                      "bertcli.commands.inspect")
#: Known breaks of a rule, each to be removed by the change that fixes it (a listed import that is gone fails
#: the test, so the list only shrinks). None now: the run's settings live in `bertcli.settings` (issue 15 item 4).
PENDING: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the module imported (for `from bertcli import output`: bertcli.output)
    line: int
    top_level: bool  # run when the module is imported (not inside a function, not under TYPE_CHECKING)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> list[Import]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, False)
            elif isinstance(child, ast.Import):
                found.extend(Import(name, alias.name, child.lineno, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.append(Import(name, sub if _is_module(sub) else base, child.lineno, top))
            else:
                visit(child, top)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), True)
    return found


ALL = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _within(target: str, module: str) -> bool:
    return target == module or target.startswith(module + ".")


def _is_command(module: str) -> bool:
    return module.startswith("bertcli.commands.")


def _is_core(module: str) -> bool:
    return (module not in SHELL and module not in ("bertcli.output", "bertcli.settings")
            and not _within(module, "bertcli.commands"))


def _violations() -> set[tuple[str, str, int, str]]:
    bad = set()
    for module, imports in ALL.items():
        for imp in imports:
            t = imp.target
            if _is_core(module) and any(_within(t, m) for m in ("bertcli.commands", "bertcli.cli", "bertcli.output",
                                                                 "bertcli.settings")):
                bad.add((module, t, imp.line, "the core imports the commands, the shell, the output layer or the "
                                              "run's settings"))
            if module == "bertcli.output" and any(_within(t, m) for m in ("bertcli.commands", "bertcli.cli")):
                bad.add((module, t, imp.line, "the output layer imports a command or the shell"))
            if _is_command(module):
                if _within(t, "bertcli.cli"):
                    bad.add((module, t, imp.line, "a command imports the shell"))
                elif _is_command(t) and t != module and not t.rpartition(".")[2].startswith("_"):
                    bad.add((module, t, imp.line, "a command imports another command"))
    return bad


def test_the_walk_sees_the_imports_it_checks():
    """The checks below can only fail if the walk finds imports: a few that must be there, lazy ones too."""
    cli = {(i.target, i.top_level) for i in ALL["bertcli.cli"]}
    assert ("bertcli.output", True) in cli and ("typer", True) in cli
    runner = {(i.target, i.top_level) for i in ALL["bertcli.runner"]}
    assert ("torch", False) in runner and ("bertcli.heads", True) in runner
    assert any(i.target == "bertcli.commands._common" for i in ALL["bertcli.commands.tokenize"])
    assert len(ALL) > 30


def test_layers_import_downwards_only():
    bad = _violations()
    pending = {(m, t) for m, t, _, _ in bad} & PENDING
    new = sorted(v for v in bad if (v[0], v[1]) not in PENDING)
    assert not new, "\n".join(f"{m} line {line}: imports {t} ({why})" for m, t, line, why in new)
    assert pending == PENDING, f"fixed, so remove from PENDING: {sorted(PENDING - pending)}"


def _reachable(starts: tuple[str, ...]) -> set[str]:
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        module = todo.pop()
        if module in seen or module not in ALL:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b
        todo += [i.target for i in ALL[module] if _within(i.target, "bertcli")]
    return seen


@pytest.mark.parametrize("entry", LIGHT_ENTRY_POINTS)
def test_light_commands_load_no_heavy_module_at_import(entry):
    reachable = _reachable((entry,))
    assert entry in reachable and "bertcli.errors" in reachable
    heavy = sorted(f"{i.module} line {i.line}: import {i.target}" for m in reachable for i in ALL[m]
                   if i.top_level and any(_within(i.target, h) for h in HEAVY))
    assert not heavy, f"{entry} may load: " + "; ".join(heavy)


def _cycles() -> list[list[str]]:
    """Groups of modules that import each other (strongly connected components of the import graph)."""
    # a module importing its own package (``from bertcli.backends import …`` in bertcli/backends/onnx.py) is no
    # cycle: the package is initialised before any of its modules runs
    graph = {m: sorted({i.target for i in imps if i.target in ALL and not _within(m, i.target)})
             for m, imps in ALL.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return groups


def test_no_import_cycles():
    assert not _cycles(), "modules that import each other: " + "; ".join(" <-> ".join(g) for g in _cycles())
