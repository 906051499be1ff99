"""Adding missing imports to a Python source (pure functions, no I/O).

New imports go after the file's leading imports (or after the module docstring); a name from a
module the file already imports from with a one-line ``from m import a, b`` extends that line.
"""

from __future__ import annotations

import ast

__all__ = [
    "Missing",
    "add_imports",
    "declare_public",
    "ensure_imports",
    "export_names",
    "literal_all",
    "missing_imports",
    "requalify",
]

_DEF_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_MAX_IMPORT_LINE = 100

Missing = tuple[str, str, tuple[str, ...]]
"""A missing import: (``"import"`` or ``"from"``, module, names)."""


def _span(node: ast.stmt) -> tuple[int, int]:
    first = node.lineno
    if isinstance(node, _DEF_TYPES) and node.decorator_list:
        first = min(d.lineno for d in node.decorator_list)
    return first, node.end_lineno or node.lineno


def missing_imports(
    original: ast.Module, imports: tuple[ast.Import | ast.ImportFrom, ...]
) -> list[Missing]:
    """The imports among ``imports`` that the module ``original`` lacks."""
    have_modules = {
        (a.name, a.asname) for n in original.body if isinstance(n, ast.Import) for a in n.names
    }
    have_from = {
        (n.module or "", n.level, a.name, a.asname)
        for n in original.body
        if isinstance(n, ast.ImportFrom)
        for a in n.names
    }
    missing: list[Missing] = []
    for node in imports:
        if isinstance(node, ast.Import):
            for a in node.names:
                if (a.name, a.asname) not in have_modules:
                    have_modules.add((a.name, a.asname))
                    missing.append(("import", _alias(a), ()))
        else:
            module = "." * node.level + (node.module or "")
            names = []
            for a in node.names:
                key = (node.module or "", node.level, a.name, a.asname)
                if key not in have_from:
                    have_from.add(key)
                    names.append(_alias(a))
            if names:
                missing.append(("from", module, tuple(names)))
    return missing


def requalify(original: ast.Module, code: str) -> str:
    """Keep an answer's imports from rebinding a name the file imports already.

    A test file that does ``import parse`` and calls ``parse.parse(...)`` breaks entirely when an
    answer's ``from parse import parse`` is added to it: every existing test then calls the
    function's missing attribute. Such an import is dropped from ``code`` and the answer's uses
    of the name are qualified instead (``parse(...)`` -> ``parse.parse(...)``), so the file keeps
    its binding and the new code reaches what it meant. Formatting is kept (text edits).

    Raises:
        ValueError: No rewrite keeps both bindings: the answer rebinds a module the file imports
            to something of another module (``import json`` in the file, ``from simplejson
            import json`` in the answer), or also assigns the name itself.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    qualify, drop = _rebinding(original, tree)
    if not qualify:
        return code
    rebound = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)
    } | {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
    clash = sorted(rebound & set(qualify))
    if clash:
        name = clash[0]
        raise ValueError(
            f"the answer imports `{name}` and also assigns it, but the file imports `{name}` as "
            f"a module: write `{qualify[name]}(...)` instead"
        )
    edits = [
        (n.lineno, n.col_offset, n.end_col_offset or n.col_offset, qualify[n.id])
        for n in ast.walk(tree)
        if isinstance(n, ast.Name) and n.id in qualify
    ]
    lines = code.splitlines(keepends=True)
    for line, col, end, text in sorted(edits, reverse=True):
        raw = lines[line - 1].encode()
        lines[line - 1] = (raw[:col] + text.encode() + raw[end:]).decode()
    for node in sorted(drop, key=lambda n: n.lineno, reverse=True):
        kept = [a for a in node.names if (a.asname or a.name) not in qualify]
        rest = [f"from {node.module} import {', '.join(map(_alias, kept))}\n"] if kept else []
        lines[node.lineno - 1 : node.end_lineno or node.lineno] = rest
    return "".join(lines)


def _rebinding(
    original: ast.Module, answer: ast.Module
) -> tuple[dict[str, str], list[ast.ImportFrom]]:
    """The answer's ``from m import m``-style rebinding of modules ``original`` imports.

    Returns the names to qualify (name -> ``module.name``) and the import statements they are in.

    Raises:
        ValueError: A module's name is rebound to something of another module.
    """
    modules = {
        (a.asname or a.name.partition(".")[0]): a.name
        for n in original.body
        if isinstance(n, ast.Import)
        for a in n.names
    }
    qualify: dict[str, str] = {}
    drop: list[ast.ImportFrom] = []
    for node in answer.body:
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        for a in node.names:
            bound = a.asname or a.name
            if bound not in modules:
                continue
            if modules[bound] != node.module or modules[bound] != bound:
                raise ValueError(
                    f"`from {node.module} import {_alias(a)}` would rebind `{bound}`, which the "
                    f"file imports as a module; write `{modules[bound]}.…` instead"
                )
            qualify[bound] = f"{bound}.{a.name}"
            if node not in drop:
                drop.append(node)
    return qualify, drop


def _alias(a: ast.alias) -> str:
    return f"{a.name} as {a.asname}" if a.asname else a.name


def _import_anchor(tree: ast.Module) -> int:
    """Line after which new imports go (0: at the top of the file)."""
    anchor = 0
    for i, node in enumerate(tree.body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            anchor = _span(node)[1]  # the module docstring
        elif isinstance(node, ast.Import | ast.ImportFrom):
            anchor = _span(node)[1]
        elif isinstance(node, _DEF_TYPES):
            break
    return anchor


def _extend_from_import(
    lines: list[str], tree: ast.Module, module: str, names: tuple[str, ...]
) -> str | None:
    """Add ``names`` to an existing one-line ``from module import ...``; the new line or None."""
    first_def = min(
        (_span(n)[0] for n in tree.body if isinstance(n, _DEF_TYPES)), default=len(lines) + 1
    )
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom) or node.lineno != node.end_lineno:
            continue
        if node.lineno > first_def:
            break
        if "." * node.level + (node.module or "") != module or any(
            a.name == "*" for a in node.names
        ):
            continue
        merged = sorted({_alias(a) for a in node.names} | set(names))
        line = f"from {module} import {', '.join(merged)}"
        if len(line) <= _MAX_IMPORT_LINE and lines[node.lineno - 1].strip().startswith("from "):
            lines[node.lineno - 1] = line
            return line
    return None


def add_imports(lines: list[str], tree: ast.Module, missing: list[Missing]) -> list[str]:
    """Insert ``missing`` into ``lines`` (the source of ``tree``, edited in place); lines added.

    Only the module's leading import block is touched, so edits further down keep ``tree``'s
    line numbers of that block valid.
    """
    added: list[str] = []
    new_lines: list[str] = []
    for kind, module, names in missing:
        if kind == "from":
            extended = _extend_from_import(lines, tree, module, names)
            if extended is not None:
                added.append(extended)
                continue
            new_lines.append(f"from {module} import {', '.join(names)}")
        else:
            new_lines.append(f"import {module}")
    if new_lines:
        anchor = _import_anchor(tree)
        has_imports = any(isinstance(n, ast.Import | ast.ImportFrom) for n in tree.body)
        block = new_lines if has_imports or anchor == 0 else ["", *new_lines]
        if anchor == 0 and lines:
            block = [*block, ""]
        lines[anchor:anchor] = block
        added.extend(new_lines)
    return added


def ensure_imports(original: str, import_code: str) -> tuple[str, tuple[str, ...]]:
    """Add the imports in ``import_code`` that ``original`` lacks; the new source and lines added.

    Raises:
        ValueError: Either text does not parse.
    """
    try:
        tree, wanted = ast.parse(original), ast.parse(import_code)
    except SyntaxError as exc:
        raise ValueError(f"cannot add imports: {exc.msg} (line {exc.lineno})") from exc
    imports = tuple(n for n in wanted.body if isinstance(n, ast.Import | ast.ImportFrom))
    lines = original.splitlines()
    added = add_imports(lines, tree, missing_imports(tree, imports))
    return "\n".join(lines) + "\n", tuple(added)


def export_names(source: str, module: str, names: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """Re-export ``names`` of ``module`` from a package ``__init__`` that re-exports it already.

    The names join the file's ``from <module> import ...`` statement (absolute or relative; one
    line, or parenthesized when the line would be too long) and its literal ``__all__`` (kept
    sorted when it is sorted). Everything else stays byte for byte. Returns the new source and
    the names exported; the source unchanged when the file imports nothing from ``module``.

    Args:
        source: The ``__init__.py`` source.
        module: Dotted name of the module the names are defined in (``pkg.mod``).
        names: Public names newly defined there.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source, ()
    stem = module.rpartition(".")[2]
    target = None
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom) or any(a.name == "*" for a in node.names):
            continue
        absolute = node.level == 0 and node.module == module
        relative = node.level == 1 and node.module == stem
        if absolute or relative:
            target = node
            break
    if target is None:
        return source, ()
    have = {a.asname or a.name for a in target.names}
    new = tuple(n for n in dict.fromkeys(names) if n not in have)
    if not new:
        return source, ()
    lines = source.splitlines(keepends=True)
    eol = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    edits: list[tuple[int, int, list[str]]] = []
    spec = "." + stem if target.level else module
    present = [_alias(a) for a in target.names]
    merged = present + list(new)
    if present == sorted(present):
        merged.sort()
    line = f"from {spec} import {', '.join(merged)}"
    if len(line) > _MAX_IMPORT_LINE:
        body = "".join(f"    {n},{eol}" for n in merged)
        text = [f"from {spec} import ({eol}{body}){eol}"]
    else:
        text = [line + eol]
    edits.append((target.lineno, target.end_lineno or target.lineno, text))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            and isinstance(node.value, ast.List | ast.Tuple)
        ):
            edits.append(_extend_all(lines, node, node.value, new, eol))
    for first, last, text in sorted(edits, reverse=True):
        lines[first - 1 : last] = text
    return "".join(lines), new


def _extend_all(
    lines: list[str], node: ast.Assign, value: ast.List | ast.Tuple, new: tuple[str, ...], eol: str
) -> tuple[int, int, list[str]]:
    old = [e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    first_elt = value.elts[0] if value.elts else None
    quote = (
        lines[first_elt.lineno - 1][first_elt.col_offset]
        if first_elt is not None and lines[first_elt.lineno - 1][first_elt.col_offset] in "'\""
        else '"'
    )
    items = [*old, *(n for n in new if n not in old)]
    if old == sorted(old):
        items = sorted(items)
    first, last = node.lineno, node.end_lineno or node.lineno
    head = lines[first - 1][: value.col_offset]
    open_, close = ("[", "]") if isinstance(value, ast.List) else ("(", ")")
    if first == last:
        inner = ", ".join(f"{quote}{n}{quote}" for n in items)
        if len(items) == 1 and close == ")":
            inner += ","
        tail = lines[last - 1][value.end_col_offset or 0 :]
        return first, last, [f"{head}{open_}{inner}{close}{tail}"]
    # Multi-line: one element per line, with the indentation of the existing elements.
    indent = " " * (value.elts[0].col_offset if value.elts else 4)
    body = "".join(f"{indent}{quote}{n}{quote},{eol}" for n in items)
    tail = lines[last - 1][(value.end_col_offset or 1) - 1 :]
    return first, last, [f"{head}{open_}{eol}", body, tail if tail.endswith(eol) else tail + eol]


def literal_all(source: str) -> tuple[ast.Assign, ast.List | ast.Tuple] | None:
    """The module's ``__all__ = [...]`` (or a tuple) and its list.

    None without a literal one, or when ``source`` does not parse.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            and isinstance(node.value, ast.List | ast.Tuple)
        ):
            return node, node.value
    return None


def declare_public(source: str, names: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """Add new public ``names`` to the module's own literal ``__all__``.

    A module that declares ``__all__`` exports only what it lists (``from mod import *`` in a
    package ``__init__`` re-exports exactly that), so a new public function missing from it is
    not importable from the package. In an ``__all__`` written one name per line, the new lines
    go in sorted place when the list is sorted, else at its end, and every other line stays
    byte for byte; other layouts are rewritten as :func:`export_names` does. Returns the new
    source and the names added; the source unchanged when it has no literal ``__all__``.
    """
    found = literal_all(source)
    if found is None:
        return source, ()
    node, value = found
    elts = [e for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    old = [str(e.value) for e in elts]
    new = tuple(n for n in dict.fromkeys(names) if n not in old and not n.startswith("_"))
    if not new:
        return source, ()
    lines = source.splitlines(keepends=True)
    eol = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    one_per_line = len(elts) == len(value.elts) > 1 and len({e.lineno for e in elts}) == len(elts)
    if not one_per_line or any(e.lineno == node.lineno for e in elts):
        first, last, text = _extend_all(lines, node, value, new, eol)
        lines[first - 1 : last] = text
        return "".join(lines), new
    sample = lines[elts[0].lineno - 1]
    indent = sample[: elts[0].col_offset]
    quote = sample[elts[0].col_offset]
    ordered = old == sorted(old)
    for name in sorted(new) if ordered else new:
        row = f"{indent}{quote}{name}{quote},{eol}"
        before = next((e for e in elts if ordered and str(e.value) > name), None)
        if before is not None:
            at = before.lineno - 1
        else:
            at = elts[-1].lineno
            row_text, end = lines[at - 1], elts[-1].end_col_offset or 0
            if not row_text[end:].lstrip().startswith(","):  # the last name had no comma
                lines[at - 1] = row_text[:end] + "," + row_text[end:]
        lines.insert(at, row)
        again = literal_all("".join(lines))  # positions moved: read them again
        assert again is not None
        node, value = again
        elts = [e for e in value.elts if isinstance(e, ast.Constant)]
    return "".join(lines), new
