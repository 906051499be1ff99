"""Merging a model's code answer into a Python file (pure functions, no I/O).

The coder asks the model for only the new or changed top-level definitions; once the code is out
of the answer (:mod:`coditect.agents.extract`), :func:`merge_source` merges it into the target
file: a definition whose name exists replaces it in place (decorators included, comments around
it untouched), a new one is appended, missing imports go after the existing imports
(:mod:`coditect.agents.importmerge`), and ``del NAME`` (``del Class.member``, or ``del member``
in a class of the answer) removes a definition, a constant or an import from the file. Example
calls, prints and ``if __name__ == "__main__":`` blocks in the answer are dropped.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass

from coditect.agents.importmerge import add_imports, missing_imports, requalify

__all__ = [
    "MergeError",
    "MergeResult",
    "NothingToMergeError",
    "identical_definitions",
    "member_name",
    "merge_source",
    "statement_span",
    "top_level_names",
]

_DEF_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class MergeError(ValueError):
    """The answer cannot be merged: no code, a syntax error, or nothing to add."""


class NothingToMergeError(MergeError):
    """The answer's code defines nothing and deletes nothing (only calls, prints, imports)."""


@dataclass(frozen=True)
class MergeResult:
    """A merged source and what changed.

    Attributes:
        source: The whole new file.
        added: Names of definitions appended.
        replaced: Names of existing definitions replaced.
        imports_added: Import lines added or extended.
        unchanged: Names of definitions in the answer identical to the file's.
        deleted: Names of definitions, constants or imports removed (``Class.member`` for
            members).
        absent: Names the answer deletes that the file does not have (another file of the
            change may define them).
        code: The answer's code that was merged ("" when not recorded): merged again onto
            the file as a later task finds it, it is the same candidate there.
    """

    source: str
    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    imports_added: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    code: str = ""
    deleted: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """True when anything was added, replaced or deleted."""
        return bool(self.added or self.replaced or self.imports_added or self.deleted)


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
    deletes: tuple[str, ...] = ()  # ``del`` targets: "name" or "Class.member"


def statement_span(node: ast.stmt) -> tuple[int, int]:
    """1-based first and last line of a statement, decorators included."""
    first = node.lineno
    if isinstance(node, _DEF_TYPES) and node.decorator_list:
        first = min(d.lineno for d in node.decorator_list)
    return first, node.end_lineno or node.lineno


def _is_constant_assign(node: ast.stmt) -> str | None:
    """The name of a module constant (``NAME = ...``, ``NAME: T = ...``) or ``__all__``."""
    target: ast.expr | None = None
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        target = node.target
    if isinstance(target, ast.Name) and (target.id.isupper() or target.id == "__all__"):
        return target.id
    return None


def _flush_left(code: str) -> str:
    """``code`` without the indentation all its lines share.

    Asked to change a method of a class shown in an excerpt, a model often answers with the
    method as it stands in the class, indented (semver's ``Version.bump_minor``: three answers
    in a row were rejected with "unexpected indent (line 1)"). At the left margin it is a
    top-level ``def m(self, ...)``, which is merged into its class.
    """
    first = next((line for line in code.splitlines() if line.strip()), "")
    return textwrap.dedent(code) if first[:1].isspace() else code


def _parse_snippet(code: str, self_module: str) -> _Snippet:
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise MergeError(f"the code does not parse: {exc.msg} (line {exc.lineno})") from exc
    lines = code.splitlines()
    defs: dict[str, str] = {}
    imports: list[ast.Import | ast.ImportFrom] = []
    deletes: list[str] = []
    for node in tree.body:
        name = node.name if isinstance(node, _DEF_TYPES) else _is_constant_assign(node)
        if isinstance(node, ast.Delete):
            for target in node.targets:
                name = _deleted_name(target, self_module)
                if name is not None and name not in deletes:
                    deletes.append(name)
        elif name is not None:
            first, last = statement_span(node)
            defs.pop(name, None)
            defs[name] = "\n".join(lines[first - 1 : last])
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if not (
                isinstance(node, ast.ImportFrom) and node.module == self_module and node.level == 0
            ):
                imports.append(node)
        # Anything else (example calls, prints, __main__ blocks, docstrings) is dropped.
    if not defs and not deletes:
        raise NothingToMergeError("the code contains no function or class definition")
    both = [n for n in deletes if n in defs]
    if both:
        raise MergeError(
            f"the code both deletes and defines {', '.join(both)}: write the new definition "
            "alone to replace it, or only `del NAME` to remove it"
        )
    return _Snippet(tuple(defs.items()), tuple(imports), tuple(deletes))


def _deleted_name(target: ast.expr, self_module: str) -> str | None:
    """The name a ``del`` target removes: ``name`` or ``Class.member``.

    A name qualified with the file's own module is that name (asked to remove ``dasherize``
    from the package inflection, the model answered ``del inflection.dasherize``). None for
    a target that is no name (``del x[0]`` is example code, dropped like other statements).
    """
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute) and self_module:
        owner = ast.unparse(target.value)
        if owner == self_module or owner == self_module.rpartition(".")[2]:
            return target.attr
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
        return f"{target.value.id}.{target.attr}"
    return None


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

    A top-level definition replaces the one of the same name in place, or is appended. A class
    that exists already is merged member by member: each method or class attribute in the
    answer replaces the member of the same name (re-indented to the class's indentation) or is
    added at the end of the class, and members the answer leaves out stay as they are. A member
    whose body is only ``...`` or ``pass`` where the original has code is a placeholder copied
    from an excerpt, not a change. A top-level ``def m(self, ...)`` that is a method of exactly
    one class of the file is merged into that class.

    Args:
        original: The file's current source; None when the file does not exist yet.
        answer_code: Code extracted from the model's answer.
        self_module: Dotted name of the target module, so that the answer importing from the
            file itself is ignored.

    Raises:
        MergeError: The answer does not parse, defines nothing, or the original does not parse.
    """
    answer_code = _flush_left(answer_code)
    if original is None or not original.strip():
        snippet = _parse_snippet(answer_code, self_module)
        if snippet.deletes:
            raise MergeError(f"cannot delete {', '.join(snippet.deletes)}: the file is empty")
        return _new_file(snippet)
    try:
        tree = ast.parse(original)
    except SyntaxError as exc:
        raise MergeError(f"the target file does not parse: {exc.msg} (line {exc.lineno})") from exc
    try:
        answer_code = requalify(tree, answer_code)
    except ValueError as exc:
        raise MergeError(str(exc)) from exc
    snippet = _parse_snippet(answer_code, self_module)
    lines = original.splitlines()
    existing, classes = _top_level(tree)
    edits: list[_Edit] = []
    added: list[tuple[str, str]] = []
    unchanged: list[str] = []
    for name, src in snippet.defs:
        if not _merge_existing(name, src, lines, existing, classes, edits, unchanged):
            added.append((name, src))
    _delete(snippet.deletes, tree, lines, edits, unchanged)
    absent = [n for n in snippet.deletes if n in unchanged]
    _no_overlap(edits)
    for edit in sorted(edits, key=lambda e: (e.first, e.last), reverse=True):
        if edit.replaced:
            lines[edit.first - 1 : edit.last] = edit.lines
        else:  # insertion after line ``last``
            lines[edit.last : edit.last] = edit.lines
    if added or snippet.deletes:
        while lines and not lines[-1].strip():
            lines.pop()
    for _, src in added:
        lines.extend(["", "", *src.splitlines()])
    # Imports last: line numbers of the (unchanged) import block stay valid after the edits above.
    imports_added = add_imports(lines, tree, missing_imports(tree, snippet.imports))
    ordered = sorted(edits, key=lambda e: e.first)
    # The file's end stays as it was (blank lines, or no final newline) unless code was appended.
    end = "\n" if added or original.endswith("\n") else ""
    return MergeResult(
        source="\n".join(lines) + end,
        added=tuple([n for n, _ in added] + [e.name for e in ordered if not e.replaced]),
        replaced=tuple(e.name for e in ordered if e.replaced and not e.deleted),
        imports_added=tuple(imports_added),
        unchanged=tuple(unchanged),
        deleted=tuple(n for e in ordered if e.deleted for n in e.names or (e.name,)),
        absent=tuple(absent),
    )


def _top_level(
    tree: ast.Module,
) -> tuple[dict[str, tuple[int, int]], dict[str, ast.ClassDef]]:
    """Spans of the top-level definitions and constants, and the classes by name."""
    existing: dict[str, tuple[int, int]] = {}
    classes: dict[str, ast.ClassDef] = {}
    for node in tree.body:
        name = node.name if isinstance(node, _DEF_TYPES) else _is_constant_assign(node)
        if name is not None:
            existing[name] = statement_span(node)
        if isinstance(node, ast.ClassDef):
            classes[node.name] = node
    return existing, classes


def _merge_existing(
    name: str,
    src: str,
    lines: list[str],
    existing: dict[str, tuple[int, int]],
    classes: dict[str, ast.ClassDef],
    edits: list[_Edit],
    unchanged: list[str],
) -> bool:
    """Record the edits for a definition of the answer that exists in the file; False if new."""
    owner = _method_owner(name, src, existing, classes, lines)
    if name in classes or owner is not None:
        cls = classes[name] if owner is None else classes[owner]
        member_src = src if owner is None else f"class {owner}:\n" + _indent(src, "    ")
        _merge_class(cls, member_src, lines, edits, unchanged)
        return True
    if name not in existing:
        return False
    first, last = existing[name]
    if _is_class(src) and lines[first - 1].lstrip().startswith(("def ", "async def ", "@")):
        # A function replaced by a class of its name: every caller breaks (found on parse:
        # `class parse:` with a placeholder method answered for the function parse()).
        raise MergeError(
            f"{name} is a function in the file; the answer redefines it as a class: "
            f"write the function {name} itself"
        )
    if _same_code("\n".join(lines[first - 1 : last]), src):
        unchanged.append(name)
    else:
        edits.append(_Edit(first, last, tuple(src.splitlines()), name, replaced=True))
    return True


@dataclass(frozen=True)
class _Edit:
    """Replace lines ``first..last`` (1-based), or insert after line ``last``."""

    first: int
    last: int
    lines: tuple[str, ...]
    name: str
    replaced: bool
    deleted: bool = False
    names: tuple[str, ...] = ()  # every name a deletion removes, when it is more than ``name``


def _no_overlap(edits: list[_Edit]) -> None:
    """Raise when two edits touch the same lines (deleting a class and changing its method)."""
    spans = sorted((e.first, e.last, e.name) for e in edits if e.replaced)
    for (_, last, name), (first, _, other) in zip(spans, spans[1:], strict=False):
        if first <= last:
            raise MergeError(f"the code both changes {name} and {other}, which overlap")


def _delete(
    names: tuple[str, ...],
    tree: ast.Module,
    lines: list[str],
    edits: list[_Edit],
    unchanged: list[str],
) -> None:
    """Record the removal of ``names``; a name already gone is unchanged (what is asked holds).

    Names one import binds are taken out of it in one edit (``del max_ver`` and ``del min_ver``
    of ``from ._deprecated import (..., max_ver, min_ver, ...)``).
    """
    imports: dict[int, tuple[ast.Import | ast.ImportFrom, int, list[ast.alias], list[str]]] = {}
    for name in names:
        found = None if "." in name else _binding(tree.body, name, imports=True)
        if found is not None and isinstance(node := found[1], ast.Import | ast.ImportFrom):
            index, _, aliases = found
            entry = imports.setdefault(id(node), (node, index, [], []))
            entry[2].extend(a for a in aliases if a not in entry[2])
            entry[3].append(name)
            continue
        deletion = _deletion(name, tree, lines)
        if deletion is None:
            unchanged.append(name)
        else:
            edits.append(deletion)
    for node, index, aliases, bound in imports.values():
        if len(aliases) < len(node.names):
            edits.append(_import_trimmed(node, aliases, lines, tuple(bound)))
        else:
            first, last = _removed_lines(lines, node, last_of_block=index == len(tree.body) - 1)
            edits.append(_Edit(first, last, (), bound[0], True, deleted=True, names=tuple(bound)))


def _deletion(name: str, tree: ast.Module, lines: list[str]) -> _Edit | None:
    """The edit that removes ``name`` (``Class.member`` for a member) from the file.

    None when the file has no such name (deleting it again changes nothing).

    The statement goes with the comment lines right above it and, when blank lines set it
    apart, those after it (those before it when it ends its block), so that what is left stays
    spaced as it was; a statement among others without blank lines (an import, a constant)
    goes alone.

    Raises:
        MergeError: Removing it would empty a class.
    """
    owner, _, member = name.rpartition(".")
    body: list[ast.stmt] = tree.body
    if owner:
        cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == owner), None)
        if cls is None:
            return None
        body = cls.body
    found = _binding(body, member, imports=not owner)
    if found is None:
        return None
    index, node, aliases = found
    if isinstance(node, ast.Import | ast.ImportFrom) and len(aliases) < len(node.names):
        return _import_trimmed(node, aliases, lines, (name,))
    if owner and len(body) == 1:
        raise MergeError(f"cannot delete {name}: it is all there is in class {owner}")
    first, last = _removed_lines(lines, node, last_of_block=index == len(body) - 1)
    return _Edit(first, last, (), name, replaced=True, deleted=True)


def _binding(
    body: list[ast.stmt], name: str, *, imports: bool
) -> tuple[int, ast.stmt, list[ast.alias]] | None:
    """The statement of ``body`` that binds ``name``: its index, itself, the import's aliases."""
    for index, node in enumerate(body):
        if isinstance(node, ast.Import | ast.ImportFrom):
            aliases = [a for a in node.names if (a.asname or a.name).split(".")[0] == name]
            if aliases and imports:
                return index, node, aliases
        elif member_name(node) == name:
            return index, node, []
    return None


def _removed_lines(lines: list[str], node: ast.stmt, *, last_of_block: bool) -> tuple[int, int]:
    """The lines that go with ``node``: its comment lines, and blank lines that set it apart."""
    first, last = statement_span(node)
    indent = lines[first - 1][: len(lines[first - 1]) - len(lines[first - 1].lstrip())]
    while first > 1 and lines[first - 2].startswith(indent + "#"):
        first -= 1
    if last_of_block:  # the blank lines before it go
        while first > 1 and not lines[first - 2].strip():
            first -= 1
    elif first == 1 or not lines[first - 2].strip():  # set apart: the blank lines after it go
        while last < len(lines) and not lines[last].strip():
            last += 1
    return first, last


def _import_trimmed(
    node: ast.Import | ast.ImportFrom,
    aliases: list[ast.alias],
    lines: list[str],
    names: tuple[str, ...],
) -> _Edit:
    """The edit that removes ``aliases`` from an import that binds other names too.

    An import written one name per line loses those lines and keeps its layout (and its
    comments); any other is written again on one line.
    """
    first, last = statement_span(node)
    parenthesized = "(" in lines[first - 1]  # not a backslash continuation
    if first < last and parenthesized and all(a.lineno == a.end_lineno for a in aliases):
        spelled = {a.lineno: _spelled(a) for a in aliases}
        if all(lines[n - 1].strip() in (s, s + ",") for n, s in spelled.items()):
            text = tuple(
                ln for n, ln in enumerate(lines[first - 1 : last], first) if n not in spelled
            )
            return _Edit(first, last, text, names[0], replaced=True, deleted=True, names=names)
    kept = [a for a in node.names if a not in aliases]
    if isinstance(node, ast.ImportFrom):
        new: ast.stmt = ast.ImportFrom(module=node.module, names=kept, level=node.level)
    else:
        new = ast.Import(names=kept)
    indent = lines[first - 1][: len(lines[first - 1]) - len(lines[first - 1].lstrip())]
    text = (indent + ast.unparse(new),)
    return _Edit(first, last, text, names[0], replaced=True, deleted=True, names=names)


def _spelled(alias: ast.alias) -> str:
    return f"{alias.name} as {alias.asname}" if alias.asname else alias.name


def _is_class(src: str) -> bool:
    try:
        return isinstance(ast.parse(src).body[0], ast.ClassDef)
    except (SyntaxError, IndexError):
        return False


def _indent(src: str, prefix: str) -> str:
    return "".join(prefix + line if line.strip() else line for line in src.splitlines(True))


def _method_owner(
    name: str,
    src: str,
    existing: dict[str, tuple[int, int]],
    classes: dict[str, ast.ClassDef],
    lines: list[str],
) -> str | None:
    """The one class a top-level ``def name(self, ...)`` of the answer is a method of.

    Also when the file has a top-level function of that name too, as long as that function
    takes no ``self``: parse.py has a function ``parse(format, string)`` and a method
    ``Parser.parse(self, string)``; an answer's ``def parse(self, string)`` is the method.
    """
    node = _function(src)
    if node is None or not _takes_self(node):
        return None
    if name in existing:
        first, last = existing[name]
        same_name = _function("\n".join(lines[first - 1 : last]))
        if same_name is None or _takes_self(same_name):
            return None
    owners = [c for c, cls in classes.items() if any(member_name(m) == name for m in cls.body)]
    return owners[0] if len(owners) == 1 else None


def _function(src: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The function ``src`` defines first, or None (a class, a constant, not Python)."""
    try:
        node = ast.parse(textwrap.dedent(src)).body[0]
    except (SyntaxError, IndexError):
        return None
    return node if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else None


def _takes_self(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    args = node.args.posonlyargs + node.args.args
    return bool(args) and args[0].arg in ("self", "cls")


def member_name(node: ast.stmt) -> str | None:
    """The name a statement defines: a function, class or one-name assignment; else None."""
    if isinstance(node, _DEF_TYPES):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        return target.id if isinstance(target, ast.Name) else None
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def _placeholder(node: ast.stmt) -> bool:
    """A definition whose body is only ``...``/``pass`` (after an optional docstring)."""
    body = getattr(node, "body", None)
    if not body:
        return False
    rest = body[1:] if ast.get_docstring(node) is not None else body  # type: ignore[arg-type]
    return all(
        isinstance(s, ast.Pass)
        or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and s.value.value is ...)
        for s in rest
    )


def _merge_class(
    cls: ast.ClassDef,
    answer_src: str,
    lines: list[str],
    edits: list[_Edit],
    unchanged: list[str],
) -> None:
    new_cls = ast.parse(answer_src).body[0]
    if not isinstance(new_cls, ast.ClassDef):
        # Replacing a class by a function or a constant of its name would delete the class.
        raise MergeError(
            f"{cls.name} is a class in the file; the answer redefines it as "
            f"{'a function' if isinstance(new_cls, _DEF_TYPES) else 'something else'}: "
            f"write the class line and the methods to change"
        )
    new_lines = answer_src.splitlines()
    old_members = {member_name(m): m for m in cls.body if member_name(m) is not None}
    body_indent = " " * cls.body[0].col_offset
    insert_after = cls.end_lineno or cls.lineno
    inserts: list[str] = []
    inserted: list[str] = []
    for member in new_cls.body:
        if isinstance(member, ast.Delete):
            _delete_members(cls, member, lines, edits, unchanged)
            continue
        name = member_name(member)
        if name is None:
            continue  # a docstring or ``pass`` of the answer's class
        first, last = statement_span(member)
        text = _reindent(new_lines[first - 1 : last], member.col_offset, body_indent)
        qual = f"{cls.name}.{name}"
        old = old_members.get(name)
        if old is not None:
            o_first, o_last = statement_span(old)
            old_text = "\n".join(lines[o_first - 1 : o_last])
            if _placeholder(member) and not _placeholder(old):
                continue
            if _same_code(_dedent(old_text), _dedent("\n".join(text))):
                unchanged.append(qual)
                continue
            edits.append(_Edit(o_first, o_last, tuple(text), qual, replaced=True))
        elif not _placeholder(member) or isinstance(member, ast.Assign | ast.AnnAssign):
            inserts.extend(["", *text] if isinstance(member, _DEF_TYPES) else text)
            inserted.append(qual)
    if inserts:
        edits.append(_Edit(insert_after, insert_after, tuple(inserts), ", ".join(inserted), False))


def _delete_members(
    cls: ast.ClassDef,
    statement: ast.Delete,
    lines: list[str],
    edits: list[_Edit],
    unchanged: list[str],
) -> None:
    """Record the removal of the members a ``del`` in the answer's class names."""
    names = [f"{cls.name}.{t.id}" for t in statement.targets if isinstance(t, ast.Name)]
    _delete(tuple(names), ast.Module(body=[cls], type_ignores=[]), lines, edits, unchanged)


def _reindent(block: list[str], col: int, indent: str) -> list[str]:
    out = []
    for line in block:
        if not line.strip():
            out.append("")
            continue
        strip = min(col, len(line) - len(line.lstrip()))
        out.append(indent + line[strip:])
    return out


def _dedent(text: str) -> str:
    return textwrap.dedent(text)


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
