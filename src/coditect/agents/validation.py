"""Static checks on a merged source before the coder writes it (no code is executed).

The source must compile; every import must resolve (standard library, a module of the project,
or an installed package), except one inside a ``try`` that handles ImportError (an optional
dependency); a name imported from a project module must be defined there (taking the edits of
the same task into account); every name used must be bound in a scope that reaches it
(pyflakes' scope analysis: a method's name is not visible as a bare name in another method); a
test file must define at least one ``test_`` function. Problems the file had before the change
are not the change's doing and are not reported.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pyflakes import checker as pyflakes_checker
from pyflakes import messages as pyflakes_messages

from coditect.agents.codemerge import top_level_names

__all__ = ["ProjectView", "check_source", "module_name", "unbound_names", "undefined_names"]

_BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__", "__doc__", "__spec__", "__path__"}


def module_name(rel_path: str) -> str:
    """Dotted module name of a project file (``src/`` layouts included): ``pkg/mod.py`` -> ``pkg.mod``."""
    parts = list(Path(rel_path).with_suffix("").parts)
    if parts and parts[0] == "src":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@dataclass(frozen=True)
class ProjectView:
    """The project as a task sees it: the workspace plus the edits it is about to write.

    Attributes:
        pending: Relative path -> new source of files written by this task.
    """

    workspace: Path
    pending: Mapping[str, str] = field(default_factory=dict)

    def _roots(self, near: str) -> list[Path]:
        roots = [self.workspace, self.workspace / "src"]
        parent = (self.workspace / near).parent
        if parent not in roots:
            roots.append(parent)  # pytest puts a test file's directory on sys.path (rootdir mode)
        return roots

    def is_local(self, top: str, near: str) -> bool:
        """True when ``top`` is a top-level module or package of the project."""
        return any(
            (r / f"{top}.py").is_file() or (r / top).is_dir() or self._pending(r / f"{top}.py")
            for r in self._roots(near)
        )

    def _pending(self, path: Path) -> bool:
        return self._rel(path) in self.pending

    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.workspace).as_posix()
        except ValueError:
            return ""

    def find_module(self, dotted: str, near: str) -> tuple[str, str | None] | None:
        """(relative path, source) of a project module; source None for a namespace directory."""
        rel = Path(*dotted.split("."))
        for root in self._roots(near):
            for candidate in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
                key = self._rel(candidate)
                if key in self.pending:
                    return key, self.pending[key]
                if candidate.is_file():
                    return key, candidate.read_text(encoding="utf-8", errors="replace")
            if (root / rel).is_dir():
                return self._rel(root / rel), None
        return None


def undefined_names(tree: ast.Module) -> list[str]:
    """Names loaded somewhere but bound nowhere in the module (a generous, scope-blind check)."""
    bound: set[str] = set(_BUILTINS)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            bound.update(node.names)
        elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            bound.add(node.name)
    loads = [
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    ]
    return sorted(set(loads) - bound)


def _check_import(node: ast.Import | ast.ImportFrom, path: str, view: ProjectView) -> list[str]:
    if isinstance(node, ast.ImportFrom) and node.level:
        return []  # relative imports resolve inside the package; the test run will tell
    modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    problems: list[str] = []
    for dotted in modules:
        top = dotted.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        if not view.is_local(top, path):
            if importlib.util.find_spec(top) is None:
                problems.append(
                    f"`import {dotted}`: no module {top!r} in the project, the standard library "
                    "or the installed packages"
                )
            continue
        found = view.find_module(dotted, path)
        if found is None:
            problems.append(f"`import {dotted}`: the project has no module {dotted!r}")
        elif isinstance(node, ast.ImportFrom):
            problems.extend(_check_names(node, dotted, found, path, view))
    return problems


def _check_names(
    node: ast.ImportFrom, dotted: str, found: tuple[str, str | None], path: str, view: ProjectView
) -> list[str]:
    rel, source = found
    if source is None:
        return []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [f"module {dotted!r} ({rel}) does not parse"]
    defined = top_level_names(tree)
    if "__getattr__" in defined or any(
        isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in tree.body
    ):
        return []
    problems = []
    for alias in node.names:
        name = alias.name
        if name == "*" or name in defined or view.find_module(f"{dotted}.{name}", path):
            continue
        problems.append(f"`from {dotted} import {name}`: {name!r} is not defined in {rel}")
    return problems


_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(
        (isinstance(t, ast.Name) and t.id in _IMPORT_ERRORS)
        or (isinstance(t, ast.Attribute) and t.attr in _IMPORT_ERRORS)
        for t in types
    )


def _guarded_imports(tree: ast.Module) -> set[int]:
    """The ids of the imports of a ``try`` that handles ImportError: optional dependencies.

    ``try: import wcwidth`` / ``except ImportError: wcwidth = None`` is how a project says a
    package is optional, and ``try: from threading import RLock`` / ``except ImportError: from
    dummy_threading import RLock`` how it names a fallback: neither import need resolve here
    (the body's and the handlers' imports alike).
    """
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try | ast.TryStar) and any(
            _catches_import_error(h) for h in node.handlers
        ):
            for stmt in [*node.body, *node.handlers]:
                guarded.update(
                    id(n) for n in ast.walk(stmt) if isinstance(n, ast.Import | ast.ImportFrom)
                )
    return guarded


def _shadowed_imports(tree: ast.Module) -> list[str]:
    """A definition with the name of an import hides it (``from math import gcd; def gcd``)."""
    imported = {
        (a.asname or a.name).split(".")[0]: (
            a.name if isinstance(n, ast.Import) else f"{n.module}.{a.name}"
        )
        for n in tree.body
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    return [
        f"def {n.name} hides the imported {imported[n.name]!r} (calling it would call itself): "
        f"import the module instead, or write the code without it"
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and n.name in imported
    ]


def _found(tree: ast.Module, path: str, view: ProjectView) -> tuple[list[str], list[str]]:
    """The import and shadowing problems of ``tree``, and its undefined names."""
    problems: list[str] = []
    optional = _guarded_imports(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in optional:
            problems.extend(_check_import(node, path, view))
    problems.extend(_shadowed_imports(tree))
    star = any(isinstance(n, ast.ImportFrom) and n.names[0].name == "*" for n in ast.walk(tree))
    return problems, [] if star else unbound_names(tree, path)


def unbound_names(tree: ast.Module, path: str = "<answer>") -> list[str]:
    """Names used where no scope binds them (pyflakes' analysis), sorted."""
    found = pyflakes_checker.Checker(tree, filename=path).messages
    return sorted(
        {str(m.message_args[0]) for m in found if isinstance(m, pyflakes_messages.UndefinedName)}
    )


def check_source(
    source: str,
    *,
    path: str,
    view: ProjectView,
    require_tests: bool = False,
    before: str | None = None,
) -> list[str]:
    """Problems that would make ``source`` (the new content of ``path``) unusable; empty if none.

    ``before``: the file's content before the change. A problem it already had (an import of
    a module this machine lacks, a name the project defines at run time) is not the change's
    doing and is not reported.
    """
    try:
        tree = ast.parse(source)
        compile(tree, path, "exec")
    except SyntaxError as exc:
        return [f"{path} does not compile: {exc.msg} (line {exc.lineno})"]
    problems, missing = _found(tree, path, view)
    if before:
        try:
            old_problems, old_missing = _found(ast.parse(before), path, view)
        except SyntaxError:
            old_problems, old_missing = [], []
        problems = [p for p in problems if p not in old_problems]
        missing = [n for n in missing if n not in old_missing]
    if missing:
        problems.append(f"undefined name(s): {', '.join(missing)} (missing import or definition?)")
    if require_tests and not any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test")
        for n in ast.walk(tree)
    ):
        problems.append(f"{path} defines no test function (def test_...)")
    return problems
