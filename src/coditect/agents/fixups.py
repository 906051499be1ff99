"""Mechanical fixes to a model's answer that save a repair round with a small model.

Tests written into a source file are dropped, and so are stand-ins written into a test file (a
class or function of the same name as one the tests import); imports the answer forgot (the code
under test, ``pytest``, a standard-library module, a name the module imports under another name)
are added; a function that hides the library function it wraps (``from math import gcd; def
gcd(a, b): return gcd(a, b)``) calls it qualified instead.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import replace
from pathlib import Path

from coditect.agents.codejob import CodeJob, workspace_index
from coditect.agents.codemerge import MergeError, MergeResult, top_level_names
from coditect.agents.importmerge import ensure_imports
from coditect.agents.validation import module_name, undefined_names

__all__ = [
    "adopt_methods",
    "auto_import",
    "drop_foreign_tests",
    "drop_stand_ins",
    "unshadow_imports",
]


def drop_foreign_tests(code: str) -> str:
    """Tests the model put in a source file's answer do not belong there: drop them."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code  # merge_source reports it
    lines = code.splitlines()
    for node in reversed(tree.body):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            del lines[first - 1 : node.end_lineno]
    return "\n".join(lines) + "\n"


def drop_stand_ins(code: str) -> str:
    """A test answer's own copy of a name it imports is dropped: the tests use the imported one.

    A small model asked to test ``TTLCache.expires`` often imports ``TTLCache`` and then defines
    ``class TTLCache`` with the method in the test file; its tests would then check their own
    copy, not the project's code.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code  # merge_source reports it
    imported = {
        a.asname or a.name
        for n in tree.body
        if isinstance(n, ast.ImportFrom)
        for a in n.names
        if a.name != "*"
    }
    lines = code.splitlines()
    for node in reversed(tree.body):
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.name in imported
            and not node.name.startswith("test")
        ):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            del lines[first - 1 : node.end_lineno]
    return "\n".join(lines) + "\n"


def _classes(tree: ast.Module) -> dict[str, set[str]]:
    """Top-level class name -> the names of its methods."""
    return {
        n.name: {m.name for m in n.body if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)}
        for n in tree.body
        if isinstance(n, ast.ClassDef)
    }


def _home(name: str, classes: dict[str, set[str]], focus: tuple[str, ...]) -> str:
    """The class a method answered without its class belongs to, or ""."""
    owners = [c for c, methods in classes.items() if name in methods]
    if len(owners) == 1:
        return owners[0]
    focused = {q.split(".")[0] for q in focus if q.split(".")[0] in classes}
    return next(iter(focused)) if len(focused) == 1 else ""


def adopt_methods(code: str, original: str | None, focus: tuple[str, ...]) -> str:
    """Put a method the answer wrote at top level back into its class.

    A small model asked to change a class often answers with ``def __bool__(self): ...`` alone,
    without the class around it; merged as it is, it would become a module-level function. A
    top-level function whose first parameter is ``self`` (or ``cls``) and that the file does not
    define at top level is a method: it goes into the class that defines a method of that name,
    else into the one class the request is about (``focus``).

    Raises:
        MergeError: Such a method, but no single class it can belong to.
    """
    if not original:
        return code
    try:
        tree = ast.parse(code)
        before = ast.parse(original)
    except SyntaxError:
        return code  # merge_source reports it
    classes = _classes(before)
    top = top_level_names(before)
    lines = code.splitlines()
    moved: list[tuple[str, list[str]]] = []
    for node in reversed(tree.body):
        if not (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.args.args
            and node.args.args[0].arg in ("self", "cls")
            and node.name not in top
        ):
            continue
        home = _home(node.name, classes, focus)
        if not home:
            raise MergeError(
                f"def {node.name}({node.args.args[0].arg}, ...) is a method: answer with the "
                "class it belongs to around it (class Name: ...)"
            )
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        block = lines[first - 1 : node.end_lineno]
        del lines[first - 1 : node.end_lineno]
        moved.append((home, block))
    if not moved:
        return code
    for home, block in reversed(moved):
        lines += ["", "", f"class {home}:", *(f"    {line}" if line else "" for line in block)]
    return "\n".join(lines).strip("\n") + "\n"


def auto_import(merged: MergeResult, job: CodeJob, workspace: Path) -> MergeResult:
    """Add imports a small model often forgets.

    The code under test, pytest, standard-library modules, and names the project's modules
    import from one place (:func:`_project_imports`).
    """
    try:
        missing = undefined_names(ast.parse(merged.source))
    except SyntaxError:
        return merged
    subject = set(job.subject_names)
    if job.subject_path and (workspace / job.subject_path).is_file():
        subject |= {
            n.name
            for n in ast.parse((workspace / job.subject_path).read_text()).body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        }
    lines = []
    usual: dict[str, str] | None = None
    aliased = _aliased(job.original or "")
    for name in missing:
        if name in subject and job.subject_path:
            lines.append(f"from {module_name(job.subject_path)} import {name}")
        elif name == "pytest" or name in sys.stdlib_module_names:
            lines.append(f"import {name}")
        elif name in aliased:
            lines.append(f"from {aliased[name]} import {name}")
        else:
            usual = _project_imports(workspace) if usual is None else usual
            if name in usual:
                lines.append(f"from {usual[name]} import {name}")
    if not lines:
        return merged
    source, added = ensure_imports(merged.source, "\n".join(lines))
    return replace(merged, source=source, imports_added=(*merged.imports_added, *added))


def _aliased(source: str) -> dict[str, str]:
    """Name -> module, for the names ``source`` imports under another name.

    tabulate has ``from itertools import zip_longest as izip_longest``; a model shown that
    module writes ``zip_longest(...)``, which is the very same function under its own name.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    return {
        alias.name: node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and not node.level
        for alias in node.names
        if alias.asname and alias.asname != alias.name and alias.name != "*"
    }


def _project_imports(workspace: Path) -> dict[str, str]:
    """Name -> the module the project's own modules import it from (``from M import name``).

    A name that a small model uses without importing it (``timedelta``, ``ISO8601Error``) is
    most often one the project imports elsewhere; when its modules agree on where it comes
    from, that import is added. A name imported from two different places is left alone.
    """
    index = workspace_index(workspace)
    where: dict[str, set[str]] = {}
    for m in index.modules:
        bound = set(m.imported_names)
        for dotted in m.imports:
            module, _, name = dotted.rpartition(".")
            if module and name in bound:
                where.setdefault(name, set()).add(module)
    return {name: next(iter(mods)) for name, mods in where.items() if len(mods) == 1}


class _Qualify(ast.NodeTransformer):
    def __init__(self, name: str, module: str) -> None:
        self.name, self.module, self.count = name, module, 0

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id != self.name or not isinstance(node.ctx, ast.Load):
            return node
        self.count += 1
        attr = ast.parse(f"{self.module}.{self.name}", mode="eval").body
        return ast.copy_location(attr, node)


def unshadow_imports(code: str) -> str:
    """Rewrite ``from m import f`` + ``def f(...): return f(...)`` to call ``m.f``.

    A small model asked for ``gcd`` often imports ``math.gcd`` and wraps it in a function of the
    same name, which then calls itself forever. It meant the library function: qualify the calls
    and import the module. Code without that pattern is returned unchanged.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    body: list[ast.stmt] = []
    changed = False
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            hidden = [a for a in node.names if a.asname is None and a.name in funcs]
            if hidden:
                changed = True
                node.names = [a for a in node.names if a not in hidden]
                calls = 0
                for alias in hidden:
                    fixer = _Qualify(alias.name, node.module)
                    for stmt in funcs[alias.name].body:
                        fixer.visit(stmt)
                    calls += fixer.count
                if calls:
                    body.append(ast.Import(names=[ast.alias(name=node.module)]))
                if not node.names:
                    continue
        body.append(node)
    if not changed:
        return code
    tree.body = body
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"
