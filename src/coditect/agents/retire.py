"""What a removal leaves behind, removed with it (pure functions, no I/O).

When a request asks for a function, class or constant to be removed (the answer says
``del NAME``: :mod:`coditect.agents.codemerge`), three kinds of code still name it, and an
engineer removing an API removes them in the same change:

- the module's own ``__all__``, which would make ``from module import *`` fail, and the imports
  only the removed code used;
- the package ``__init__`` that re-exports it (its import and its ``__all__`` entry), which would
  no longer import;
- the project's tests of it, which can no longer pass: a test function (or a test method) that
  references the removed name is retired, a test class whose tests all depend on it goes whole,
  the cases of a parametrized test that alone use it go (the test stays), and the import of
  the name goes when nothing else in the file uses it. A module-level fixture
  or helper that uses it is never touched (nor is the import it needs): its tests fail, and the
  report says so.

Everything here returns ``del`` targets or edited source and leaves every other line byte for
byte.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from coditect.agents.codemerge import MergeError, merge_source
from coditect.agents.importmerge import literal_all
from coditect.index.symbols import imported_from, module_name

__all__ = [
    "FollowUp",
    "Retired",
    "defined",
    "follow_removal",
    "orphaned_imports",
    "package_inits",
    "retired_tests",
    "unexported",
    "users_of",
    "without_in_all",
]

_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class Retired:
    """The ``del`` targets that retire a test file's tests of removed names.

    Attributes:
        tests: Test functions (``test_x``), test methods (``TestC.test_x``) and test classes
            that reference a removed name.
        members: The methods of the test classes in ``tests`` (``TestC.test_x``).
        trimmed: Parametrized tests only some of whose cases use a removed name, the name in
            nothing else of the test: those cases go, the test stays.
        cases: The lines of the cases that go.
        imports: Local names of the file's imports of removed names that nothing else uses.
        kept: Definitions that use a removed name but are not tests (fixtures, helpers): left
            as they are.
    """

    tests: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    members: tuple[str, ...] = ()  # ``Class.method`` of the classes in ``tests``, which go too
    trimmed: tuple[str, ...] = ()  # parametrized tests of which only some cases go
    cases: tuple[tuple[int, int], ...] = ()  # the lines of those cases (1-based, inclusive)

    @property
    def targets(self) -> tuple[str, ...]:
        """Every ``del`` target, tests first."""
        return self.tests + self.imports


def _homes(module: str) -> set[str]:
    """The dotted names a name of ``module`` may be imported from: the module, its packages."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


@dataclass(frozen=True)
class _Uses:
    """How a test file refers to removed names: what it imported them as, or via which module."""

    names: Collection[str]
    bound: dict[str, ast.stmt]  # local name of a removed name -> its import statement
    modules: frozenset[str]  # local names (or dotted chains) bound to the name's module

    @classmethod
    def of(cls, tree: ast.Module, path: str, module: str, names: Collection[str]) -> _Uses:
        homes = _homes(module)
        bound: dict[str, ast.stmt] = {}
        modules: set[str] = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                origin = imported_from(path, node)
                for alias in node.names:
                    if origin in homes and alias.name in names:
                        bound[alias.asname or alias.name] = node
                    elif f"{origin}.{alias.name}" in homes:
                        modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                modules.update(a.asname or a.name for a in node.names if a.name in homes)
        return cls(names, bound, frozenset(modules))

    def __call__(self, node: ast.AST) -> bool:
        """Whether ``node`` refers to a removed name."""
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and sub.id in self.bound:
                return True
            if (
                isinstance(sub, ast.Attribute)
                and sub.attr in self.names
                and ast.unparse(sub.value) in self.modules
            ):
                return True
        return False


def retired_tests(source: str, path: str, module: str, names: Collection[str]) -> Retired:
    """The tests in ``source`` (the test file ``path``) of ``names``, removed from ``module``.

    A test references a removed name when it uses the name it was imported as (``from
    module import name``, also from one of the module's packages), or reaches it as an
    attribute of such a module (``module.name``, ``alias.name``).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return Retired()
    uses = _Uses.of(tree, path, module, names)
    lines = source.splitlines()
    tests: list[str] = []
    kept: list[str] = []
    members: list[str] = []
    trimmed: list[str] = []
    cases: list[tuple[int, int]] = []
    remaining: list[ast.stmt] = []  # what stays of the file, imports of removed names aside
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _is_test(node.name):
            spans = _case_lines(node, uses, lines) if uses(node) else []
            if spans is None:
                tests.append(node.name)
                continue
            if spans:
                trimmed.append(node.name)
                cases.extend(spans)
            remaining.append(node)
        elif isinstance(node, ast.ClassDef) and _is_test_class(node):
            gone = _retired_methods(node, uses)
            if gone is None:
                tests.append(node.name)  # none of the class's tests works without it
                members.extend(f"{node.name}.{m.name}" for m in node.body if isinstance(m, _FUNCS))
                continue
            tests.extend(f"{node.name}.{m.name}" for m in gone)
            remaining.extend(m for m in node.body if not any(m is g for g in gone))
        elif node not in uses.bound.values():
            if isinstance(node, _DEFS) and uses(node):
                kept.append(node.name)
            remaining.append(node)
    still_used = {
        sub.id
        for node in remaining
        for sub in ast.walk(node)
        if isinstance(sub, ast.Name) and sub.id in uses.bound
    }
    imports = tuple(n for n in uses.bound if n not in still_used)
    return Retired(tuple(tests), imports, tuple(kept), tuple(members), tuple(trimmed), tuple(cases))


def _case_lines(
    test: ast.FunctionDef | ast.AsyncFunctionDef, uses: _Uses, lines: list[str]
) -> list[tuple[int, int]] | None:
    """The lines of the parametrize cases of ``test`` that use a removed name.

    None when the test goes whole: its body or signature uses the name, every case does, or a
    case does not stand on lines of its own (semver's ``test_should_raise_deprecation_warnings``
    runs one case per deprecated function: removing ``max_ver`` takes its line, not the test).
    """
    if any(uses(n) for n in test.body) or uses(test.args):
        return None
    spans: list[tuple[int, int]] = []
    for deco in test.decorator_list:
        if not uses(deco):
            continue
        if not (
            isinstance(deco, ast.Call)
            and ast.unparse(deco.func).endswith("parametrize")
            and len(deco.args) >= 2
            and isinstance(deco.args[1], ast.List | ast.Tuple)
            and not any(uses(a) for a in (deco.args[0], *deco.args[2:], *deco.keywords))
        ):
            return None
        cases = deco.args[1].elts
        hit = [e for e in cases if uses(e)]
        if len(hit) == len(cases):
            return None
        for e in hit:
            first, last = e.lineno, e.end_lineno or e.lineno
            before = lines[first - 1].encode()[: e.col_offset]
            after = lines[last - 1].encode()[e.end_col_offset or 0 :]
            if before.strip() or after.strip() not in (b"", b","):
                return None
            spans.append((first, last))
    return spans


def _retired_methods(
    cls: ast.ClassDef, uses: _Uses
) -> list[ast.FunctionDef | ast.AsyncFunctionDef] | None:
    """The test methods of ``cls`` that use a removed name; None when the whole class goes.

    The whole class goes when all its tests use the name, or when what every test of it
    depends on does: a base class, a decorator, a class attribute or a helper method
    (cachetools' ``MRUDecoratorTest`` gets its tests from a mixin and the removed decorator
    from its own ``decorator()`` helper).
    """
    tests = [m for m in cls.body if isinstance(m, _FUNCS) and _is_test(m.name)]
    shared = [*cls.bases, *cls.keywords, *cls.decorator_list]
    shared += [m for m in cls.body if not (isinstance(m, _FUNCS) and _is_test(m.name))]
    if any(uses(n) for n in shared):
        return None
    gone = [m for m in tests if uses(m)]
    return None if gone and len(gone) == len(tests) else gone


def _is_test(name: str) -> bool:
    return name.startswith("test")


def _is_test_class(node: ast.ClassDef) -> bool:
    """A class of tests: pytest's ``Test*``, unittest's ``*Test(s)`` or ``TestCase`` subclass."""
    return (
        node.name.startswith("Test")
        or node.name.endswith(("Test", "Tests"))
        or any(ast.unparse(b).endswith("TestCase") for b in node.bases)
        or any(isinstance(m, _FUNCS) and _is_test(m.name) for m in node.body)
    )


def unexported(source: str, path: str, module: str, names: Collection[str]) -> tuple[str, ...]:
    """The ``del`` targets that stop the package ``__init__`` ``path`` re-exporting ``names``.

    Only names it imports from ``module`` itself (absolutely or relatively) are concerned; the
    ``__all__`` entries go with :func:`without_in_all`.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ()
    targets: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and imported_from(path, node) == module:
            targets.extend(a.asname or a.name for a in node.names if a.name in names)
    return tuple(dict.fromkeys(targets))


def without_in_all(source: str, names: Collection[str]) -> tuple[str, tuple[str, ...]]:
    """``source`` with ``names`` taken out of its literal ``__all__``; the names taken out.

    An entry alone on its line goes with its line; otherwise the list is written again on one
    line. Everything else stays byte for byte.
    """
    found = literal_all(source)
    if found is None:
        return source, ()
    node, value = found
    gone = [
        e
        for e in value.elts
        if isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value in names
    ]
    if not gone:
        return source, ()
    lines = source.splitlines(keepends=True)
    alone = [
        e
        for e in gone
        if e.lineno == e.end_lineno
        and lines[e.lineno - 1].strip().rstrip(",").strip() == ast.get_source_segment(source, e)
        and e.lineno not in (node.lineno, node.end_lineno)
    ]
    if len(alone) == len(gone):
        for e in sorted(alone, key=lambda e: e.lineno, reverse=True):
            del lines[e.lineno - 1]
    else:
        kept = [e for e in value.elts if e not in gone]
        inner = ", ".join(ast.get_source_segment(source, e) or ast.unparse(e) for e in kept)
        if isinstance(value, ast.Tuple) and len(kept) == 1:
            inner += ","
        open_, close = ("[", "]") if isinstance(value, ast.List) else ("(", ")")
        first, last = node.lineno, node.end_lineno or node.lineno
        head = lines[first - 1][: value.col_offset]
        tail = lines[last - 1][value.end_col_offset or 0 :]
        lines[first - 1 : last] = [f"{head}{open_}{inner}{close}{tail}"]
    return "".join(lines), tuple(str(e.value) for e in gone)


def defined(source: str, names: Collection[str]) -> list[str]:
    """Those of ``names`` that ``source`` defines at the top level (not those it imports).

    Only a definition's removal takes its exports and tests with it: an import a removal
    tidied away removes nothing from the project.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    own = {
        n.id
        for node in tree.body
        if not isinstance(node, ast.Import | ast.ImportFrom)
        for n in ast.walk(node)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and not isinstance(node, _DEFS)
    }
    own |= {node.name for node in tree.body if isinstance(node, _DEFS)}
    return [n for n in names if n in own]


def users_of(source: str, names: Collection[str]) -> dict[str, list[str]]:
    """Removed name -> the definitions of ``source`` that still use it.

    Methods are named ``Class.method``; a name no definition uses is left out.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    out: dict[str, list[str]] = {}
    for node in tree.body:
        units = [(node.name, node)] if isinstance(node, _FUNCS) else []
        if isinstance(node, ast.ClassDef):
            units = [(f"{node.name}.{m.name}", m) for m in node.body if isinstance(m, _FUNCS)]
        for qual, unit in units:
            used = {n.id for n in ast.walk(unit) if isinstance(n, ast.Name) and not _stored(n)}
            for name in names:
                if name in used:
                    out.setdefault(name, []).append(qual)
    return out


def orphaned_imports(before: str, after: str) -> tuple[str, ...]:
    """Top-level imports of ``after`` that only code removed since ``before`` used.

    A name the module used before and uses no more (nor lists in ``__all__``) was imported
    for the removed code (cachetools' ``func.py`` imports ``MRUCache`` for ``mru_cache``
    alone). An import nothing used before (a re-export) stays as it is.
    """
    try:
        old, new = ast.parse(before), ast.parse(after)
    except SyntaxError:
        return ()
    imported = [
        (a.asname or a.name).split(".")[0]
        for node in new.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for a in node.names
        if a.name != "*"
    ]
    used_before, used_after = _used(old), _used(new)
    return tuple(dict.fromkeys(n for n in imported if n in used_before and n not in used_after))


def _used(tree: ast.Module) -> set[str]:
    """Names a module uses: loaded names, attribute roots, and its ``__all__`` entries."""
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not _stored(n)}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            used |= {
                e.value
                for e in ast.walk(node.value)
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            }
    return used


def _stored(node: ast.Name) -> bool:
    return isinstance(node.ctx, ast.Store | ast.Del)


@dataclass(frozen=True)
class FollowUp:
    """A file changed because a removal left code in it that names what was removed.

    Attributes:
        path: The file.
        source: Its new content.
        deleted: What went: ``del`` targets (tests, imports) and ``__all__`` entries.
    """

    path: str
    source: str
    deleted: tuple[str, ...]


def follow_removal(
    path: str, names: Collection[str], sources: Mapping[str, str], tests: Collection[str]
) -> list[FollowUp]:
    """The package ``__init__`` files and tests to change after ``names`` left module ``path``.

    Args:
        path: The module the top-level ``names`` were removed from.
        names: The removed names.
        sources: The current content of the candidate files: the ``__init__.py`` of the
            module's packages and the test files (a file missing here is not changed).
        tests: Which of ``sources`` are test files.
    """
    module = module_name(path)
    out: list[FollowUp] = []
    for other in sorted(sources):
        source = sources[other]
        trimmed: tuple[str, ...] = ()
        base = source
        if other in tests:
            retired = retired_tests(source, other, module, names)
            if retired.cases:  # cases first: what is left of the file is judged again
                trimmed = tuple(f"{t} (cases)" for t in retired.trimmed)
                cut = {i for first, last in retired.cases for i in range(first, last + 1)}
                kept_lines = source.splitlines(keepends=True)
                base = "".join(line for i, line in enumerate(kept_lines, 1) if i not in cut)
                retired = retired_tests(base, other, module, names)
            targets = retired.targets
        elif PurePosixPath(other).name == "__init__.py" and other != path:
            targets = unexported(source, other, module, names)
        else:
            continue
        new = base
        try:
            if targets:
                new = merge_source(base, "\n".join(f"del {t}" for t in targets)).source
        except MergeError:  # left as it is: its tests fail, and the report says which
            continue
        if other not in tests:
            new, entries = without_in_all(new, targets)
            targets = (*targets, *(e for e in entries if e not in targets))
        if new != source:
            out.append(FollowUp(other, new, (*trimmed, *targets)))
    return out


def package_inits(path: str) -> list[str]:
    """The ``__init__.py`` files of the packages holding the module at ``path``, innermost first."""
    parents = PurePosixPath(path).parents
    return [str(p / "__init__.py") for p in parents if str(p) != "."]
