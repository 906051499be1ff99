"""Merging a model's code answer into a Python file (pure functions, no I/O).

The coder asks the model for only the new or changed top-level definitions; once the code is out
of the answer (:mod:`coditect.agents.extract`), :func:`merge_source` merges it into the target
file: a definition whose name exists replaces it in place (decorators included, comments around
it untouched), a new one is appended, missing imports go after the existing imports
(:mod:`coditect.agents.importmerge`). Example calls, prints and ``if __name__ == "__main__":`` blocks in the answer are dropped.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from coditect.agents.importmerge import add_imports, missing_imports

__all__ = [
    "MergeError",
    "MergeResult",
    "identical_definitions",
    "merge_source",
    "top_level_names",
]

_DEF_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class MergeError(ValueError):
    """The answer cannot be merged: no code, a syntax error, or nothing to add."""


@dataclass(frozen=True)
class MergeResult:
    """A merged source and what changed.

    Attributes:
        source: The whole new file.
        added: Names of definitions appended.
        replaced: Names of existing definitions replaced.
        imports_added: Import lines added or extended.
        unchanged: Names of definitions in the answer identical to the file's.
    """

    source: str
    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    imports_added: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """True when anything was added or replaced."""
        return bool(self.added or self.replaced or self.imports_added)


def top_level_names(tree: ast.Module) -> set[str]:
    """Names bound at the top level of a module (definitions, assignments, imports)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, _DEF_TYPES):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


@dataclass(frozen=True)
class _Snippet:
    defs: tuple[tuple[str, str], ...]  # (name, source text) in answer order, last one per name
    imports: tuple[ast.Import | ast.ImportFrom, ...]


def _span(node: ast.stmt) -> tuple[int, int]:
    """1-based first and last line of a top-level statement, decorators included."""
    first = node.lineno
    if isinstance(node, _DEF_TYPES) and node.decorator_list:
        first = min(d.lineno for d in node.decorator_list)
    return first, node.end_lineno or node.lineno


def _is_constant_assign(node: ast.stmt) -> str | None:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        if isinstance(target, ast.Name) and target.id.isupper():
            return target.id
    return None


def _parse_snippet(code: str, self_module: str) -> _Snippet:
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise MergeError(f"the code does not parse: {exc.msg} (line {exc.lineno})") from exc
    lines = code.splitlines()
    defs: dict[str, str] = {}
    imports: list[ast.Import | ast.ImportFrom] = []
    for node in tree.body:
        name = node.name if isinstance(node, _DEF_TYPES) else _is_constant_assign(node)
        if name is not None:
            first, last = _span(node)
            defs.pop(name, None)
            defs[name] = "\n".join(lines[first - 1 : last])
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if not (
                isinstance(node, ast.ImportFrom) and node.module == self_module and node.level == 0
            ):
                imports.append(node)
        # Anything else (example calls, prints, __main__ blocks, docstrings) is dropped.
    if not defs:
        raise MergeError("the code contains no function or class definition")
    return _Snippet(tuple(defs.items()), tuple(imports))


def _new_file(snippet: _Snippet) -> MergeResult:
    missing = missing_imports(ast.Module(body=[], type_ignores=[]), snippet.imports)
    import_lines = [
        f"from {m} import {', '.join(n)}" if kind == "from" else f"import {m}"
        for kind, m, n in missing
    ]
    parts = ["\n".join(import_lines)] if import_lines else []
    parts.extend(src for _, src in snippet.defs)
    return MergeResult(
        source="\n\n\n".join(parts) + "\n",
        added=tuple(name for name, _ in snippet.defs),
        imports_added=tuple(import_lines),
    )


def merge_source(original: str | None, answer_code: str, *, self_module: str = "") -> MergeResult:
    """Merge the definitions in ``answer_code`` into ``original``.

    Args:
        original: The file's current source; None when the file does not exist yet.
        answer_code: Code extracted from the model's answer.
        self_module: Dotted name of the target module, so that the answer importing from the
            file itself is ignored.

    Raises:
        MergeError: The answer does not parse, defines nothing, or the original does not parse.
    """
    snippet = _parse_snippet(answer_code, self_module)
    if original is None or not original.strip():
        return _new_file(snippet)
    try:
        tree = ast.parse(original)
    except SyntaxError as exc:
        raise MergeError(f"the target file does not parse: {exc.msg} (line {exc.lineno})") from exc
    lines = original.splitlines()
    existing: dict[str, tuple[int, int]] = {}
    for node in tree.body:
        name = node.name if isinstance(node, _DEF_TYPES) else _is_constant_assign(node)
        if name is not None:
            existing[name] = _span(node)
    replaced: list[tuple[str, tuple[int, int], str]] = []
    added: list[tuple[str, str]] = []
    unchanged: list[str] = []
    for name, src in snippet.defs:
        if name in existing:
            first, last = existing[name]
            if _same_code("\n".join(lines[first - 1 : last]), src):
                unchanged.append(name)
            else:
                replaced.append((name, (first, last), src))
        else:
            added.append((name, src))
    for _, (first, last), src in sorted(replaced, key=lambda r: r[1][0], reverse=True):
        lines[first - 1 : last] = src.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for _, src in added:
        lines.extend(["", "", *src.splitlines()])
    # Imports last: line numbers of the (unchanged) import block stay valid after the edits above.
    imports_added = add_imports(lines, tree, missing_imports(tree, snippet.imports))
    return MergeResult(
        source="\n".join(lines) + "\n",
        added=tuple(n for n, _ in added),
        replaced=tuple(n for n, _, _ in sorted(replaced, key=lambda r: r[1][0])),
        imports_added=tuple(imports_added),
        unchanged=tuple(unchanged),
    )


def identical_definitions(original: str | None, answer_code: str) -> set[str]:
    """Names of top-level definitions in ``answer_code`` identical to those in ``original``."""
    try:
        old, new = ast.parse(original or ""), ast.parse(answer_code)
    except SyntaxError:
        return set()
    known = {n.name: ast.dump(n) for n in old.body if isinstance(n, _DEF_TYPES)}
    return {
        n.name for n in new.body if isinstance(n, _DEF_TYPES) and known.get(n.name) == ast.dump(n)
    }


def _same_code(a: str, b: str) -> bool:
    """Equal up to formatting and comments."""
    try:
        return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
    except SyntaxError:
        return a.strip() == b.strip()
