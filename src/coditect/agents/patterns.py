"""Pattern detection of common issues in Python source (pure, AST-based, no execution).

Each check yields :class:`~coditect.domain.results.Finding` objects with a ``kind``:
``bare_except``, ``mutable_default``, ``none_comparison``, ``eval_exec``, ``missing_docstring``
and ``duplicate_branch`` (an if/else whose branches are identical, or an ``if`` that returns
exactly what the code after it returns: a condition that changes nothing, often a bug).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from coditect.domain.results import Finding

__all__ = ["find_issues"]

_MUTABLE_CALLS = frozenset({"list", "dict", "set", "bytearray"})
_FUNC = (ast.FunctionDef, ast.AsyncFunctionDef)


def _same(a: list[ast.stmt], b: list[ast.stmt]) -> bool:
    return len(a) == len(b) and all(ast.dump(x) == ast.dump(y) for x, y in zip(a, b, strict=True))


def _enclosing_names(tree: ast.Module) -> dict[int, str]:
    """Map id(node) -> name of the innermost function containing it."""
    owner: dict[int, str] = {}
    for func in ast.walk(tree):
        if isinstance(func, _FUNC):
            for node in ast.walk(func):
                owner[id(node)] = func.name  # inner functions come later in walk order and win
    return owner


def _duplicate_branches(tree: ast.Module, path: str) -> Iterator[Finding]:
    owner = _enclosing_names(tree)
    for parent in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(parent, field, None)
            if not isinstance(block, list):
                continue
            for i, stmt in enumerate(block):
                if not isinstance(stmt, ast.If):
                    continue
                where = f" in {owner[id(stmt)]}()" if id(stmt) in owner else ""
                if stmt.orelse and _same(stmt.body, stmt.orelse):
                    yield Finding(
                        path=path,
                        line=stmt.lineno,
                        kind="duplicate_branch",
                        message=f"both branches of the if/else{where} are identical; "
                        "the condition has no effect (likely a bug)",
                    )
                elif (
                    not stmt.orelse
                    and isinstance(stmt.body[-1], ast.Return | ast.Raise)
                    and _same(stmt.body, block[i + 1 : i + 1 + len(stmt.body)])
                ):
                    yield Finding(
                        path=path,
                        line=stmt.lineno,
                        kind="duplicate_branch",
                        message=f"the if{where} does the same as the code after it "
                        f"(line {block[i + 1].lineno}); the condition has no "
                        "effect (likely a bug)",
                    )


def _simple_checks(tree: ast.Module, path: str) -> Iterator[Finding]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is None:
            yield Finding(
                path=path,
                line=node.lineno,
                kind="bare_except",
                message="bare `except:` also catches KeyboardInterrupt and SystemExit",
            )
        elif isinstance(node, _FUNC):
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None and _is_mutable(default):
                    yield Finding(
                        path=path,
                        line=default.lineno,
                        kind="mutable_default",
                        message=f"{node.name}() has a mutable default argument, "
                        "shared between calls",
                    )
        elif isinstance(node, ast.Compare):
            for op, right in zip(node.ops, node.comparators, strict=True):
                if isinstance(op, ast.Eq | ast.NotEq) and (_is_none(right) or _is_none(node.left)):
                    yield Finding(
                        path=path,
                        line=node.lineno,
                        kind="none_comparison",
                        message="comparison to None with ==/!=; use `is` / `is not`",
                    )
                    break
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("eval", "exec")
        ):
            yield Finding(
                path=path,
                line=node.lineno,
                kind="eval_exec",
                message=f"{node.func.id}() runs arbitrary code",
            )


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _is_mutable(node: ast.expr) -> bool:
    if isinstance(node, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.DictComp | ast.SetComp):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _MUTABLE_CALLS
    )


def _missing_docstrings(tree: ast.Module, path: str) -> Iterator[Finding]:
    for node in tree.body:
        if isinstance(node, (*_FUNC, ast.ClassDef)) and not node.name.startswith("_"):
            if ast.get_docstring(node) is None:
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                yield Finding(
                    path=path,
                    line=node.lineno,
                    kind="missing_docstring",
                    message=f"public {kind} {node.name} has no docstring",
                )


def find_issues(tree: ast.Module, path: str, *, is_test: bool = False) -> list[Finding]:
    """All findings in one parsed module, sorted by line (docstrings are not required in tests)."""
    found = [*_duplicate_branches(tree, path), *_simple_checks(tree, path)]
    if not is_test:
        found.extend(_missing_docstrings(tree, path))
    return sorted(found, key=lambda f: (f.line, f.kind))
