"""Which files a write task works on: the module(s) a request changes, and their test file.

Pure functions over the repository index (:mod:`coditect.index`), used by
:class:`~coditect.taskqueue.parametrize.Parametrizer`. The module comes from evidence in the code
(:func:`~coditect.index.rank.localize`), never from word lists.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from coditect.domain.paths import is_test_path
from coditect.index import Localization, RepoIndex, localize
from coditect.index.rank import narrow_focus

__all__ = [
    "MAX_EXTRA_MODULES",
    "ModuleChoice",
    "choose_module",
    "clear_leader",
    "dotted_names",
    "imports_any",
    "is_test_path",
    "module_for_test",
    "parse_imports",
    "parse_symbols",
    "target_test_file",
]


# --- choosing the module -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModuleChoice:
    """The module a write task works on and the rule that picked it.

    Attributes:
        path: POSIX path relative to the project root (may not exist yet for a new module).
        rule: ``upstream``, ``path`` (named in the request), ``symbol`` (defines a name the
            request gives as code), ``ranked`` (best by the localization on two or more request
            words, clearly or over a planner's pick it leads clearly), ``target``
            (the planner's pick), ``new`` (a new module the planner named), ``weak`` (best by
            the localization, on weak evidence), ``package`` (no evidence: the main package).
        focus: Qualnames in ``path`` the request is most likely about, best first.
        also: Further existing modules the change needs (the request names code in them, or
            the planner listed them), at most :data:`MAX_EXTRA_MODULES`.
    """

    path: str
    rule: str
    focus: tuple[str, ...] = ()
    also: tuple[str, ...] = ()


#: Further modules one code task may change besides its main one.
MAX_EXTRA_MODULES = 2


def _named_modules(loc: Localization) -> list[str]:
    """The module of each name the request gives as code that only one module defines.

    A common name (``run``) defined in several modules says nothing about where.
    """
    where: dict[str, set[str]] = {}
    for sym in loc.mentioned:
        where.setdefault(sym.name, set()).add(sym.path)
    return [next(iter(p)) for p in where.values() if len(p) == 1]


def _also(
    path: str,
    targets: Sequence[str],
    modules: Sequence[str],
    named: Sequence[str],
    pickable: frozenset[str] | None,
) -> tuple[str, ...]:
    # The planner's further picks need the evidence its first one needs (see _pickable).
    listed = [
        t
        for t in (t.strip().removeprefix("./") for t in targets)
        if not t.endswith("__init__.py")
        and not is_test_path(t)
        and (pickable is None or t in pickable)
    ]
    out = [p for p in dict.fromkeys([*named, *listed]) if p != path and p in modules]
    return tuple(out[:MAX_EXTRA_MODULES])


# A file ranked first is "clearly" best when it leads the next one by this factor; below it,
# the planner's pick from the ranked outline decides.
_CLEAR_LEAD = 1.5
_MAX_FOCUS = 3
_MIN_WORDS = 2


def _focus(loc: Localization, path: str) -> tuple[str, ...]:
    named = [s.qualname for s in loc.mentioned if s.path == path]
    ranked = [r.symbol.qualname for r in loc.symbols_in(path, _MAX_FOCUS + 2)]
    return narrow_focus([*named, *ranked], _MAX_FOCUS)


def choose_module(
    text: str,
    index: RepoIndex,
    *,
    targets: Sequence[str] = (),
    files: Collection[str] = (),
    loc: Localization | None = None,
) -> ModuleChoice:
    """Pick the source module a request changes, first rule that applies.

    (1) A module the request names by path or dotted name; (2) the module defining a name the
    request writes as code (``parse_date()``, `` `Parser` ``, ``snake_case``); (3) the
    localization's best module when it leads clearly, on two or more request words; (4) an
    existing module the planner named in ``targets`` (the model chose from the ranked outline),
    unless that evidence leads it clearly too; (5) a new module the planner named inside an
    existing package; (6) the localization's best module; (7) the largest module of the main
    package, which is its ``__init__.py`` when all the code is there.

    Args:
        text: The request (and task description).
        index: The repository index.
        targets: The task's ``target_files``.
        files: Every file of the project (for new-module checks); defaults to the index's.
        loc: A localization of ``text`` already computed.

    Raises:
        UnsupportedProjectError: The project has no Python module.
    """
    index.require_python()
    loc = loc if loc is not None else localize(index, text)
    modules = [m.path for m in index.source_modules()]
    named, pickable = _named_modules(loc), _pickable(loc)
    choice = _choose(loc, index, modules, targets, set(files) | set(modules), named, pickable)
    also = _also(choice.path, targets, modules, named, pickable)
    return ModuleChoice(choice.path, choice.rule, choice.focus, also) if also else choice


def _choose(
    loc: Localization,
    index: RepoIndex,
    modules: Sequence[str],
    targets: Sequence[str],
    known: set[str],
    named: Sequence[str],
    pickable: frozenset[str] | None,
) -> ModuleChoice:
    if loc.mentioned_paths:
        path = loc.mentioned_paths[0]
        return ModuleChoice(path, "path", _focus(loc, path))
    if named:
        # The module defining most of the named code, ranked order breaking ties.
        order = {f.path: i for i, f in enumerate(loc.files)}
        counts = Counter(named)
        path = min(counts, key=lambda p: (-counts[p], order.get(p, len(order)), p))
        return ModuleChoice(path, "symbol", _focus(loc, path))
    ranked = [f for f in loc.files if f.score > 0]
    leader = _leader(pickable)
    if leader is not None:
        return ModuleChoice(leader, "ranked", _focus(loc, leader))
    cands = [t.strip().removeprefix("./") for t in targets]
    cands = [t for t in cands if t.endswith(".py") and not is_test_path(t)]
    for t in cands:
        if t in modules and (pickable is None or t in pickable):
            return ModuleChoice(t, "target", _focus(loc, t))
    for t in cands:
        if t not in known and _new_module_ok(t, modules, _package_dirs(known)):
            return ModuleChoice(t, "new")
    if ranked:
        rule = "weak" if pickable is None else "ranked"
        return ModuleChoice(ranked[0].path, rule, _focus(loc, ranked[0].path))
    return ModuleChoice(_main_module(index), "package")


def clear_leader(loc: Localization) -> str | None:
    """The best-ranked module when it leads every other clearly, on two or more request words.

    Such a module is the one a change goes into whatever a planner picks (:func:`choose_module`
    rule 3), so a plan needs no model to choose it.
    """
    return _leader(_pickable(loc))


def _leader(pickable: frozenset[str] | None) -> str | None:
    return next(iter(pickable)) if pickable is not None and len(pickable) == 1 else None


def _pickable(loc: Localization) -> frozenset[str] | None:
    """The existing modules a planner's pick may name; None: any (the evidence is weak).

    On two or more request words (one is weak evidence, often the request's verb matching a
    name), those the best-ranked module does not lead by :data:`_CLEAR_LEAD`. A small model
    picks from the ranked outline by a word of the request (``function`` -> ``func.py``) as
    readily as by the code; a module the best one leads clearly has less evidence than the
    choice needs.
    """
    ranked = [f for f in loc.files if f.score > 0]
    if not ranked or len(ranked[0].words) < _MIN_WORDS:
        return None
    return frozenset(f.path for f in ranked if ranked[0].score < _CLEAR_LEAD * f.score)


def _package_dirs(files: Iterable[str]) -> set[str]:
    return {
        p.rpartition("/")[0] for p in files if p.endswith("/__init__.py") and not is_test_path(p)
    }


def _new_module_ok(path: str, modules: Sequence[str], packages: set[str]) -> bool:
    parent = path.rpartition("/")[0]
    return parent in packages or any(m.rpartition("/")[0] == parent for m in modules)


def _main_module(index: RepoIndex) -> str:
    """The largest module (by definitions, then lines) of the package with the most code."""
    mods = index.source_modules()
    weight = Counter[str]()
    for m in mods:
        top = m.path.removeprefix("src/").split("/")[0]
        weight[top] += m.lines
    top = max(sorted(weight), key=lambda t: weight[t])
    pool = [m for m in mods if m.path.removeprefix("src/").split("/")[0] == top]
    best = max(pool, key=lambda m: (len(m.symbols), m.lines, m.path))
    return best.path


# --- test files ----------------------------------------------------------------------------------


def _module_name(module: str) -> str:
    head, _, name = module.rpartition("/")
    name = name.removesuffix(".py")
    if name == "__init__":
        name = head.rpartition("/")[2] or "package"
    return name


def target_test_file(module: str, files: Collection[str]) -> str:
    """The test file of ``module``: the existing one, else a new one matching the repo's layout."""
    name = _module_name(module)
    wanted = {f"test_{name}.py", f"{name}_test.py"}
    tests = sorted(p for p in files if is_test_path(p))
    existing = [p for p in tests if p.rpartition("/")[2] in wanted]
    if existing:
        return min(existing, key=lambda p: (not p.startswith("tests/"), len(p), p))
    dirs = Counter(p.rpartition("/")[0] for p in tests if p.rpartition("/")[2] != "conftest.py")
    if dirs:
        top = max(sorted(dirs), key=lambda d: dirs[d])
    else:
        top = "tests"
    return f"{top}/test_{name}.py" if top else f"test_{name}.py"


def beside_test_file(test: str, files: Collection[str]) -> str:
    """A new test file next to ``test``, named like it (``tests/test_time_2.py``).

    For tests that cannot go into ``test`` itself: a module that cannot be imported (a test
    dependency the machine lacks) would never run them.
    """
    head, slash, name = test.rpartition("/")
    stem = name.removesuffix(".py")
    for n in range(2, 100):
        if stem.endswith("_test"):
            new = f"{stem.removesuffix('_test')}_{n}_test.py"
        else:
            new = f"{stem}_{n}.py"
        if f"{head}{slash}{new}" not in files:
            return f"{head}{slash}{new}"
    return test


def module_for_test(test: str, modules: Sequence[str]) -> str | None:
    """The module a test file is named after (``tests/test_stats.py`` -> ``pkg/stats.py``)."""
    name = test.rpartition("/")[2].removesuffix(".py").removeprefix("test_").removesuffix("_test")
    found = sorted(
        (m for m in modules if _module_name(m) == name and not m.endswith("__init__.py")), key=len
    )
    return found[0] if found else None


# --- imports -------------------------------------------------------------------------------------


def parse_imports(source: str) -> set[str]:
    """Dotted names a module imports (``from a import b`` yields ``a`` and ``a.b``)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names if a.name != "*")
    return out


def parse_symbols(source: str) -> tuple[str, ...]:
    """Top-level function and class names of a module (empty when it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ()
    return tuple(
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    )


def dotted_names(module: str) -> set[str]:
    """Import names of a module path (``src/pkg/m.py`` -> ``src.pkg.m`` and ``pkg.m``)."""
    rel = module.removesuffix(".py").removesuffix("/__init__")
    names = {rel.replace("/", ".")}
    if rel.startswith("src/"):
        names.add(rel[4:].replace("/", "."))
    return names


def imports_any(imports: Iterable[str], targets: set[str]) -> bool:
    """True when one of ``imports`` reaches one of the dotted ``targets``."""
    for imp in imports:
        for t in targets:
            # Importing the module, something inside it, or a package above it (re-exports).
            if imp == t or imp.startswith(t + ".") or t.startswith(imp + "."):
                return True
    return False
