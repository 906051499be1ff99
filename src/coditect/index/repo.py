"""The repository index: every module's :class:`ModuleIndex`, kept current from file hashes.

:meth:`RepoIndex.update` takes the project's ``path -> sha256`` map (the world model's snapshot)
and re-parses only the modules whose hash changed; entries of deleted files are dropped. Queries
answer from memory: where a name is defined, which definitions reference a symbol (callers) and
which it references (callees), and which test functions exercise it. The graph is by name, as in
Aider's repo map: cheap, good enough to rank neighbours, and no import resolution to get wrong.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from coditect.domain.paths import is_test_path
from coditect.errors import InputError
from coditect.index.symbols import ModuleIndex, Symbol, SymbolKind, index_module

__all__ = ["RepoIndex", "UnsupportedProjectError", "index_directory", "python_files"]


# Entries are pure functions of (path, content): the planner's, the parametrization engine's and
# the coder's indexes of one mission share them instead of parsing each module three times.
_SHARED: dict[tuple[str, str], ModuleIndex] = {}
_MAX_SHARED = 4096


def _remember(entry: ModuleIndex) -> None:
    if len(_SHARED) >= _MAX_SHARED:
        _SHARED.pop(next(iter(_SHARED)))
    _SHARED[(entry.path, entry.sha256)] = entry


class UnsupportedProjectError(InputError):
    """The project holds no Python module, so there is nothing to localize or edit."""


class RepoIndex:
    """Symbols and references of every ``.py`` file of a project, updated incrementally.

    Attributes:
        parsed: How many module parses the index has done (a measure of incrementality).
    """

    def __init__(self) -> None:
        self._modules: dict[str, ModuleIndex] = {}
        self._by_name: dict[str, list[Symbol]] | None = None
        self._referrers: dict[str, list[Symbol]] | None = None
        self.parsed = 0

    # --- building ------------------------------------------------------------------------------

    def update(self, hashes: Mapping[str, str], read: Callable[[str], str]) -> int:
        """Bring the index in line with ``hashes`` (path -> SHA-256); returns modules re-parsed.

        Args:
            hashes: Every file of the project; only ``.py`` paths are indexed.
            read: Returns a file's text (called only for new or changed modules).
        """
        wanted = {p: h for p, h in hashes.items() if p.endswith(".py")}
        changed = 0
        for path in [p for p in self._modules if p not in wanted]:
            del self._modules[path]
            changed += 1
        parsed = 0
        for path, sha in wanted.items():
            old = self._modules.get(path)
            if old is not None and old.sha256 == sha:
                continue
            cached = _SHARED.get((path, sha))
            if cached is not None:
                self._modules[path] = cached
                changed += 1
                continue
            try:
                text = read(path)
            except OSError:
                continue
            entry = self._modules[path] = index_module(path, text, sha)
            _remember(entry)
            parsed += 1
        self.parsed += parsed
        if parsed or changed:
            self._by_name = self._referrers = None
        return parsed

    def put(self, module: ModuleIndex) -> None:
        """Add or replace one module's entry (for callers that parse themselves)."""
        self._modules[module.path] = module
        self._by_name = self._referrers = None

    # --- queries -------------------------------------------------------------------------------

    def __contains__(self, path: object) -> bool:
        return path in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def get(self, path: str) -> ModuleIndex | None:
        """The entry of ``path``, or None."""
        return self._modules.get(path)

    @property
    def modules(self) -> list[ModuleIndex]:
        """Every entry, sorted by path."""
        return [self._modules[p] for p in sorted(self._modules)]

    def source_modules(self) -> list[ModuleIndex]:
        """Entries that are not tests (``conftest.py``, ``tests/``, ``test_*.py``)."""
        return [m for m in self.modules if not is_test_path(m.path)]

    def test_modules(self) -> list[ModuleIndex]:
        """Entries that are tests."""
        return [m for m in self.modules if is_test_path(m.path)]

    def symbols(self, *, tests: bool = False) -> Iterable[Symbol]:
        """Every symbol of the source modules (and of the tests with ``tests=True``)."""
        for m in self.modules:
            if tests or not is_test_path(m.path):
                yield from m.symbols

    def definitions(self, name: str) -> list[Symbol]:
        """Source symbols whose bare name or qualname is ``name``."""
        if self._by_name is None:
            by_name: dict[str, list[Symbol]] = defaultdict(list)
            for s in self.symbols():
                by_name[s.name].append(s)
                if s.qualname != s.name:
                    by_name[s.qualname].append(s)
            self._by_name = dict(by_name)
        return list(self._by_name.get(name, ()))

    def names(self) -> set[str]:
        """Every bare name and qualname defined in the source modules."""
        self.definitions("")
        assert self._by_name is not None
        return set(self._by_name)

    def referrers(self, name: str, *, tests: bool = False, attribute: bool = False) -> list[Symbol]:
        """Definitions (functions, methods, classes) whose body references ``name``.

        With ``attribute``, only those that use it as an attribute (``x.name``): the callers of
        a method.
        """
        if self._referrers is None:
            refs: dict[str, list[Symbol]] = defaultdict(list)
            for s in self.symbols(tests=True):
                if s.kind in (SymbolKind.CONSTANT, SymbolKind.ATTRIBUTE):
                    continue
                for r in s.refs:
                    if r != s.name:
                        refs[r].append(s)
            self._referrers = dict(refs)
        return [
            s
            for s in self._referrers.get(name, ())
            if (tests or not is_test_path(s.path)) and (not attribute or name in s.attrs)
        ]

    def callees(self, symbol: Symbol) -> list[Symbol]:
        """Source definitions ``symbol`` references by name (itself excluded).

        A class member counts only where the name is used as an attribute (``x.size``): a bare
        ``size`` or ``str(...)`` is a variable or a builtin, not some class's method.
        """
        out: dict[tuple[str, str], Symbol] = {}
        for name in sorted(symbol.refs):
            for d in self.definitions(name):
                if d.parent and name not in symbol.attrs:
                    continue
                if d.qualname != symbol.qualname or d.path != symbol.path:
                    out[(d.path, d.qualname)] = d
        return list(out.values())

    def tests_of(self, symbol: Symbol) -> list[Symbol]:
        """Test functions (and test classes' methods) that reference ``symbol`` by name."""
        return [
            s
            for s in self.referrers(symbol.name, tests=True, attribute=bool(symbol.parent))
            if is_test_path(s.path) and s.name.startswith("test")
        ]

    def require_python(self) -> None:
        """Raise when the project has no Python source module at all.

        Raises:
            UnsupportedProjectError: No ``.py`` file outside the tests.
        """
        if not self.source_modules():
            raise UnsupportedProjectError(
                "unsupported project: it has no Python module to change (CODITECT works on "
                "Python projects)",
                hint="run coditect on a directory that contains the project's .py files",
            )


_SKIP_DIRS = frozenset(
    {"__pycache__", "venv", ".venv", "node_modules", "build", "dist", "site-packages"}
)


def python_files(root: Path) -> list[str]:
    """Relative paths of the ``.py`` files under ``root`` (hidden and virtualenv folders skipped)."""
    found = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if any(p.startswith(".") or p in _SKIP_DIRS for p in rel.parts[:-1]):
            continue
        found.append(rel.as_posix())
    return sorted(found)


def index_directory(
    root: Path, paths: Iterable[str] | None = None, index: RepoIndex | None = None
) -> RepoIndex:
    """Index (or bring ``index`` up to date with) the ``.py`` files of a directory.

    Args:
        root: The project directory.
        paths: Relative paths to consider; all ``.py`` files under ``root`` when None.
        index: An index to update incrementally; a new one when None.
    """
    index = index if index is not None else RepoIndex()
    hashes: dict[str, str] = {}
    for rel in python_files(root) if paths is None else paths:
        if rel.endswith(".py"):
            try:
                hashes[rel] = hashlib.sha256((root / rel).read_bytes()).hexdigest()
            except OSError:
                continue
    index.update(hashes, lambda rel: (root / rel).read_text(encoding="utf-8", errors="replace"))
    return index
