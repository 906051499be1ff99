"""Which files a write task works on: the one module a request changes, and its test file.

Pure functions over paths, names and source text (no I/O), used by
:class:`~coditect.taskqueue.parametrize.Parametrizer` and tested on ``examples/calculator``.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from coditect.domain.paths import is_test_path

__all__ = [
    "ModuleChoice",
    "choose_module",
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
        rule: ``target``, ``upstream``, ``path``, ``symbol``, ``words``, ``fallback`` or ``new``.
    """

    path: str
    rule: str


_PATH_RE = re.compile(r"(?<![\w/.-])((?:\./)?[\w][\w./-]*\.py)\b")
_DOTTED_RE = re.compile(r"\b([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)\b")
_IDENT_RE = re.compile(r"`?([A-Za-z_][A-Za-z0-9_]*)`?(\s*\()?")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*")

# Words that name a function in many repos but mostly appear in requests as plain English.
_COMMON = frozenset(
    """a an the to of in on for and or is it be by as at with that this from into new add adds
    make makes create write function functions class method methods return returns value values
    number numbers result results list dict string text file files name names type test tests
    data main run get set use check new code call should must when not non two one nth""".split()
)

# Words ignored when comparing a request with module and function names: _COMMON without the
# nouns that do say where code belongs ("reverse a string" -> text.py).
_STOP = _COMMON - {"string", "strings", "text", "list", "dict", "file", "files", "data"}

# Topic words: a request word on the right suggests a module whose name has a word on the left.
_TOPICS: tuple[tuple[frozenset[str], frozenset[str]], ...] = (
    (
        frozenset(
            "arith arithmetic math maths numeric numbers number ops operations calc "
            "algebra integers".split()
        ),
        frozenset(
            "fibonacci factorial prime primes gcd lcm divisor divisors divisible power "
            "powers exponent square sqrt root clamp modulo remainder integer integers "
            "sum product multiply divide subtract arithmetic even odd negate absolute "
            "increment decrement exponentiation multiplication division subtraction addition".split()
        ),
    ),
    (
        frozenset("stats statistics stat statistical".split()),
        frozenset(
            "mean median mode average variance deviation stdev percentile quantile "
            "statistics statistic histogram distribution maximum minimum".split()
        ),
    ),
    (
        frozenset(
            "text texts string strings str fmt format formatting parse parsing parser "
            "textutils".split()
        ),
        frozenset(
            "string strings text reverse reversed palindrome vowel vowels word words "
            "character characters char chars uppercase lowercase capitalize title format "
            "formatting parse parsing substring whitespace trim strip pad slug "
            "concatenate".split()
        ),
    ),
)
# Names of general-purpose modules, preferred by the fallback rule over merely large ones.
_GENERAL = frozenset(
    "core utils util helpers common main base arithmetic math ops operations functions lib "
    "calc".split()
)


def choose_module(
    text: str,
    files: Collection[str],
    symbols: Mapping[str, Collection[str]] | None = None,
    *,
    targets: Sequence[str] = (),
    sizes: Mapping[str, int] | None = None,
) -> ModuleChoice:
    """Pick the ONE source module a request should change.

    Rules, first that applies: (1) a path (``calculator/stats.py``, ``stats.py``) or dotted
    module (``calculator.stats``) mentioned in ``text``; (2) the module defining a function or
    class named in ``text`` (``median``, ``parse_number(...)``); (3) a ``targets`` entry (the
    planner's guess) naming an existing non-test, non-``__init__`` ``.py`` file, or a new ``.py``
    path inside a package; the user's own words outrank the model's guess, and a small model
    likes to pick ``__init__.py``, which is rarely where code belongs; (4) the best overlap
    between the request's words and module names, function names and topic words ("string" ->
    ``text.py``); (5) the largest general-purpose (else simply largest) non-``__init__`` module of
    the main package; (6) a new ``<package>/core.py`` (``core.py`` without a package) when there
    is no such module.

    Args:
        text: The request (and task description).
        files: Every file of the project (POSIX relative paths).
        symbols: Module path -> top-level function and class names.
        targets: The task's ``target_files``.
        sizes: Module path -> size in bytes (for the fallback).
    """
    modules = sorted(p for p in files if p.endswith(".py") and not is_test_path(p))
    packages = _package_dirs(files)
    syms = symbols or {}
    choice = (
        _from_mentions(text, modules, packages)
        or _from_symbols(text, modules, syms)
        or _from_targets(targets, modules, packages)
        or _from_words(text, modules, syms)
    )
    return choice or _fallback(modules, packages, sizes or {})


def _package_dirs(files: Iterable[str]) -> set[str]:
    return {
        p.rpartition("/")[0] for p in files if p.endswith("/__init__.py") and not is_test_path(p)
    }


def _new_module_ok(path: str, modules: Sequence[str], packages: set[str]) -> bool:
    parent = path.rpartition("/")[0]
    return parent in packages or any(m.rpartition("/")[0] == parent for m in modules)


def _from_targets(
    targets: Sequence[str], modules: Sequence[str], packages: set[str]
) -> ModuleChoice | None:
    cands = [t.strip().removeprefix("./") for t in targets]
    cands = [
        t
        for t in cands
        if t.endswith(".py") and not is_test_path(t) and not t.endswith("__init__.py")
    ]
    for t in cands:
        if t in modules:
            return ModuleChoice(t, "target")
    for t in cands:
        if _new_module_ok(t, modules, packages):
            return ModuleChoice(t, "new")
    return None


def _from_mentions(text: str, modules: Sequence[str], packages: set[str]) -> ModuleChoice | None:
    new: str | None = None
    for raw in _PATH_RE.findall(text):
        mention = raw.removeprefix("./")
        if is_test_path(mention):
            continue
        if mention in modules:
            return ModuleChoice(mention, "path")
        suffixed = sorted((m for m in modules if m.endswith("/" + mention)), key=len)
        if suffixed:
            return ModuleChoice(suffixed[0], "path")
        if new is None and "/" in mention and _new_module_ok(mention, modules, packages):
            new = mention
    for dotted in _DOTTED_RE.findall(text):
        rel = dotted.replace(".", "/")
        for cand in (f"{rel}.py", f"src/{rel}.py"):
            if cand in modules:
                return ModuleChoice(cand, "path")
    return ModuleChoice(new, "new") if new is not None else None


def _from_symbols(
    text: str, modules: Sequence[str], symbols: Mapping[str, Collection[str]]
) -> ModuleChoice | None:
    strong: set[str] = set()
    plain: dict[str, int] = {}
    for m in _IDENT_RE.finditer(text):
        ident = m.group(1)
        if "_" in ident or m.group(2) or m.group(0).startswith("`"):
            strong.add(ident)
        plain.setdefault(ident, m.start())
    best: tuple[int, int, str] | None = None
    for mod in modules:
        score, first = 0, len(text)
        for name in symbols.get(mod, ()):
            if name in strong:
                score += 3
            elif name in plain and len(name) >= 4 and name.lower() not in _COMMON:
                score += 1
            else:
                continue
            first = min(first, plain.get(name, len(text)))
        if score and (best is None or (-score, first) < (best[0], best[1])):
            best = (-score, first, mod)
    return ModuleChoice(best[2], "symbol") if best is not None else None


def _words(text: str) -> set[str]:
    out: set[str] = set()
    for w in _WORD_RE.findall(text.replace("_", " ")):
        w = w.lower()
        if w not in _STOP and len(w) > 1:
            out.add(w)
            out.add(_stem(w))
    return out


def _stem(word: str) -> str:
    for suffix, repl in (("ies", "y"), ("ing", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: len(word) - len(suffix)] + repl
    return word


def _name_words(mod: str) -> set[str]:
    stem = mod.rpartition("/")[2].removesuffix(".py")
    return {w for w in stem.lower().split("_") if w} | {stem.lower()}


def _from_words(
    text: str, modules: Sequence[str], symbols: Mapping[str, Collection[str]]
) -> ModuleChoice | None:
    words = _words(text)
    if not words:
        return None
    best: tuple[int, str] | None = None
    for mod in modules:
        if mod.endswith("__init__.py"):
            continue
        names = _name_words(mod)
        score = 3 * len(names & words) + 3 * len({_stem(n) for n in names} & words)
        fn_words = _words(" ".join(symbols.get(mod, ())))
        score += len(fn_words & words)
        for mod_words, req_words in _TOPICS:
            if names & mod_words:
                score += 2 * len(req_words & words)
        if score and (best is None or score > best[0]):
            best = (score, mod)
    return ModuleChoice(best[1], "words") if best is not None else None


def _main_package(modules: Sequence[str], packages: set[str]) -> str | None:
    tops = [p for p in packages if p.rpartition("/")[0] not in packages]
    if not tops:
        return None
    counts = Counter(
        next((t for t in tops if m == t or m.startswith(t + "/")), "") for m in modules
    )
    return max(sorted(tops), key=lambda t: counts.get(t, 0))


def _fallback(modules: Sequence[str], packages: set[str], sizes: Mapping[str, int]) -> ModuleChoice:
    pkg = _main_package(modules, packages)
    pool = [
        m
        for m in modules
        if not m.endswith("__init__.py") and (pkg is None or m.startswith(pkg + "/"))
    ]
    if pool:
        general = [m for m in pool if _name_words(m) & _GENERAL]
        pick = max(general or pool, key=lambda m: (sizes.get(m, 0), m))
        return ModuleChoice(pick, "fallback")
    return ModuleChoice(f"{pkg}/core.py" if pkg else "core.py", "new")


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
