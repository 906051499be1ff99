"""The world model: what the task queue manager knows about one project directory.

It keeps the SHA-256 of every file (rescanned incrementally: only files whose size or mtime changed
are hashed again), the latest test results and the status of every agent. Every scan that changes
something bumps an integer :attr:`WorldModel.version`, so callers can ask what changed since a
version they saw (:meth:`WorldModel.changed_since`).

Queries are served from memory: a dict by path, a :class:`~coditect.taskqueue.pathindex.PathIndex`
(sorted paths, by directory, by base name; rebuilt only when files appear or disappear) and
per-version caches of glob and changed-since answers, so they stay under a millisecond on 10,000
files (``python bench/world_model.py``).

A symbolic link is known as a link: its record's hash is that of its target *path*, never of
the content it points to, so editing ``a.py`` does not change ``alias.py -> a.py``, and a link
that points outside the project is never read (:meth:`WorldModel.link_target`).
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from coditect.domain.actions import FileRecord
from coditect.domain.agents import AgentStatus
from coditect.domain.results import TestReport
from coditect.state.base import FileIndexStore
from coditect.taskqueue.pathindex import PathIndex, compile_glob, has_magic

__all__ = ["DEFAULT_IGNORES", "ScanStats", "WorldModel", "compile_glob", "is_ignored"]

#: Names (or fnmatch patterns) of files and directories the world model never looks at.
DEFAULT_IGNORES: tuple[str, ...] = (
    ".git",
    "__pycache__",
    ".pytest_cache",
    ".coditect",
    "*.pyc",
    ".venv",
    "node_modules",
    ".mypy_cache",
    ".ruff_cache",
)

# The kernel stamps mtimes from a coarse clock (one tick: 1-10 ms), so a file rewritten with the
# same size within the tick of a scan keeps its mtime. Files whose mtime is this close to a scan's
# start are hashed again at the next scan (git's "racy clean" rule).
_RACY_WINDOW_NS = 50_000_000
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ScanStats:
    """What one :meth:`WorldModel.scan` did.

    Attributes:
        files: Files known after the scan.
        hashed: Files whose content was hashed (new, or size/mtime changed, or racy).
        added: Files that appeared.
        modified: Files whose content hash changed.
        deleted: Files that disappeared.
        duration_s: Wall-clock time of the scan.
    """

    files: int
    hashed: int
    added: int
    modified: int
    deleted: int
    duration_s: float

    @property
    def changed(self) -> int:
        """Number of files added, modified or deleted."""
        return self.added + self.modified + self.deleted


class _Ignore:
    """Compiled ignore rules: exact names, name patterns, and path patterns (containing ``/``)."""

    __slots__ = ("names", "name_res", "path_res")

    def __init__(self, patterns: Sequence[str]) -> None:
        self.names = frozenset(p for p in patterns if "/" not in p and not has_magic(p))
        self.name_res = tuple(
            re.compile(fnmatch.translate(p)) for p in patterns if "/" not in p and has_magic(p)
        )
        self.path_res = tuple(compile_glob(p.strip("/")) for p in patterns if "/" in p)

    def name(self, name: str) -> bool:
        return name in self.names or any(r.match(name) for r in self.name_res)

    def path(self, rel: str) -> bool:
        return any(r.match(rel) for r in self.path_res)


def is_ignored(path: str, ignore: Sequence[str] = DEFAULT_IGNORES) -> bool:
    """True when any component of the POSIX relative ``path`` matches an ignore pattern."""
    rules = _ignore_rules(tuple(ignore))
    parts = path.strip("/").split("/")
    return any(rules.name(p) for p in parts) or rules.path(path)


@functools.lru_cache(maxsize=16)
def _ignore_rules(patterns: tuple[str, ...]) -> _Ignore:
    return _Ignore(patterns)


def _link_sha256(path: str) -> str | None:
    """The hash of a symbolic link: of the path it points to, not of that file's content."""
    try:
        target = os.readlink(path)
    except OSError:
        return None
    return hashlib.sha256(b"symlink\0" + os.fsencode(target)).hexdigest()


def _sha256(path: str) -> str | None:
    """Hash a file, or None when it vanished or cannot be read."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


class WorldModel:
    """File hashes, test results and agent status of one project directory.

    Args:
        root: The project directory.
        ignore: Names or fnmatch patterns of files/directories to skip (matched against each path
            component; a pattern containing ``/`` is matched against the whole relative path).
    """

    def __init__(self, root: Path, *, ignore: Sequence[str] = DEFAULT_IGNORES) -> None:
        self.root = Path(root)
        self._ignore_patterns = tuple(ignore)
        self._ignore = _ignore_rules(self._ignore_patterns)
        self._records: dict[str, FileRecord] = {}
        self._changed_at: dict[str, int] = {}  # path -> version it last changed in (or vanished)
        self._history: dict[int, tuple[str, ...]] = {}  # version -> paths changed in it
        self._vanished: dict[str, int] = {}  # deleted path -> version it vanished in
        self._racy: set[str] = set()
        self._links: dict[str, str] = {}  # link path -> the path it points to (as written)
        self._version = 0
        self._tests: TestReport | None = None
        self._agents: dict[str, AgentStatus] = {}
        self._reset_indexes()

    # --- indexes --------------------------------------------------------------------------------
    def _reset_indexes(self) -> None:
        self._index: PathIndex | None = None
        self._cache_version = -1
        self._glob_cache: dict[str, list[FileRecord]] = {}
        self._since_cache: dict[int, list[str]] = {}

    def _paths(self) -> PathIndex:
        """The path index (rebuilt only when files appear or disappear)."""
        if self._index is None:
            self._index = PathIndex(self._records)
        return self._index

    def _caches(self) -> None:
        """Drop query caches made for an older version."""
        if self._cache_version != self._version:
            self._glob_cache.clear()
            self._since_cache.clear()
            self._cache_version = self._version

    # --- scanning -------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """Bumped by every scan (or load) that changes something; 0 before anything is known."""
        return self._version

    def scan(self) -> ScanStats:
        """Walk the directory and update the index incrementally.

        Only files whose size or mtime changed since the last scan (or since records loaded from a
        store) are hashed again; files no longer present are reported as deleted.
        """
        t0 = time.perf_counter()
        scan_start_ns = time.time_ns()
        seen: dict[str, os.stat_result] = {}
        links: dict[str, str] = {}
        self._walk(str(self.root), "", seen, links)
        self._links = links
        hashed = added = modified = 0
        changed: list[str] = []
        racy: set[str] = set()
        unreadable: set[str] = set()
        updates: dict[str, FileRecord] = {}
        for rel, st in seen.items():
            old = self._records.get(rel)
            if (
                old is not None
                and old.size == st.st_size
                and old.mtime_ns == st.st_mtime_ns
                and rel not in self._racy
            ):
                continue
            full = os.path.join(self.root, rel)
            digest = _link_sha256(full) if rel in links else _sha256(full)
            hashed += 1
            if digest is None:
                unreadable.add(rel)
                continue
            if st.st_mtime_ns >= scan_start_ns - _RACY_WINDOW_NS:
                racy.add(rel)
            updates[rel] = FileRecord(
                path=rel, size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=digest
            )
            if old is None:
                added += 1
                changed.append(rel)
            elif old.sha256 != digest:
                modified += 1
                changed.append(rel)
        # A file that vanished between listing and hashing counts as deleted as well.
        gone = [p for p in self._records if p not in seen or p in unreadable]
        self._racy = racy
        self._commit(updates, changed, gone, paths_changed=bool(added or gone))
        return ScanStats(
            files=len(self._records),
            hashed=hashed,
            added=added,
            modified=modified,
            deleted=len(gone),
            duration_s=time.perf_counter() - t0,
        )

    def _commit(
        self,
        updates: dict[str, FileRecord],
        changed: list[str],
        gone: list[str],
        *,
        paths_changed: bool,
    ) -> None:
        """Apply a scan's findings; bump the version when any content changed."""
        self._records.update(updates)
        for p in gone:
            self._records.pop(p, None)
        if paths_changed:
            self._index = None
        if updates or gone:
            self._cache_version = -1  # cached globs hold records (a touch changes the mtime)
        if changed or gone:
            self._version += 1
            self._history[self._version] = (*changed, *gone)
            for p in changed:
                self._changed_at[p] = self._version
                self._vanished.pop(p, None)
            for p in gone:
                self._changed_at[p] = self._vanished[p] = self._version
        self._paths()  # build the index now, so that queries never pay for it

    def _walk(
        self, top: str, prefix: str, seen: dict[str, os.stat_result], links: dict[str, str]
    ) -> None:
        stack = [(top, prefix)]
        ignore = self._ignore
        while stack:
            path, rel_dir = stack.pop()
            try:
                it = os.scandir(path)
            except OSError:
                continue
            with it:
                for entry in it:
                    name = entry.name
                    if ignore.name(name):
                        continue
                    rel = f"{rel_dir}{name}"
                    if ignore.path_res and ignore.path(rel):
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append((entry.path, rel + "/"))
                        elif entry.is_symlink():
                            # Links to files are known as links (module docstring); links
                            # to directories and dangling links are not files.
                            if entry.is_file():
                                seen[rel] = entry.stat(follow_symlinks=False)
                                links[rel] = os.readlink(entry.path)
                        elif entry.is_file():
                            seen[rel] = entry.stat()
                    except OSError:
                        continue

    # --- queries --------------------------------------------------------------------------------
    def get(self, path: str) -> FileRecord | None:
        """The record of one file (POSIX path relative to the root), or None."""
        return self._records.get(path)

    def link_target(self, path: str) -> str | None:
        """Where ``path`` points, as written in the link, when it is a symbolic link; else None."""
        return self._links.get(path)

    def links(self) -> dict[str, str]:
        """Every symbolic link to a file: link path -> the path it points to (as written)."""
        return dict(self._links)

    def __contains__(self, path: object) -> bool:
        return path in self._records

    def __len__(self) -> int:
        return len(self._records)

    def files(self) -> list[str]:
        """All known paths, sorted."""
        return list(self._paths().paths)

    def records(self) -> list[FileRecord]:
        """All known records, sorted by path."""
        return [self._records[p] for p in self._paths().paths]

    def snapshot(self) -> dict[str, str]:
        """Path -> SHA-256 of every known file."""
        return {p: r.sha256 for p, r in self._records.items()}

    def directories(self) -> list[str]:
        """Directories that directly contain at least one known file ("" is the root), sorted."""
        return list(self._paths().dirs)

    def list_dir(self, directory: str) -> list[str]:
        """Paths of the files directly inside ``directory`` ("" for the root), sorted."""
        return list(self._paths().by_dir.get(directory.strip("/"), ()))

    def glob(self, pattern: str) -> list[FileRecord]:
        """Records whose path matches ``pattern`` (see :func:`compile_glob`), sorted by path."""
        self._caches()
        cached = self._glob_cache.get(pattern)
        if cached is None:
            recs = self._records
            cached = [recs[p] for p in self._paths().glob(pattern)]
            if len(self._glob_cache) >= 1024:
                self._glob_cache.clear()
            self._glob_cache[pattern] = cached
        return list(cached)

    def changed_since(self, version: int) -> list[str]:
        """Paths added, modified or deleted in scans (or loads) after ``version``, sorted."""
        if version >= self._version:
            return []
        self._caches()
        cached = self._since_cache.get(version)
        if cached is None:
            cached = self._changed_since(max(version, 0))
            self._since_cache[version] = cached
        return list(cached)

    def _changed_since(self, version: int) -> list[str]:
        entries = [self._history.get(v, ()) for v in range(version + 1, self._version + 1)]
        if sum(map(len, entries)) < 256:
            return sorted({p for entry in entries for p in entry})
        # Many changes (e.g. since the first scan): one pass over the sorted index beats sorting.
        at = self._changed_at
        current = [p for p in self._paths().paths if at[p] > version]
        gone = [p for p, v in self._vanished.items() if v > version]
        if gone:
            current += gone
            current.sort()  # two sorted runs: timsort merges them in linear time
        return current

    def last_changed(self, path: str) -> int | None:
        """The version in which ``path`` last changed (appeared, was modified or vanished)."""
        return self._changed_at.get(path)

    def read_text(self, path: str) -> str:
        """The text of a file under the root (UTF-8, undecodable bytes replaced)."""
        return (self.root / path).read_text(encoding="utf-8", errors="replace")

    def is_ignored(self, path: str) -> bool:
        """True when ``path`` falls under this model's ignore rules."""
        return is_ignored(path, self._ignore_patterns)

    # --- tests and agents -----------------------------------------------------------------------
    def record_tests(self, report: TestReport) -> None:
        """Remember the latest test run."""
        self._tests = report

    @property
    def latest_tests(self) -> TestReport | None:
        """The latest recorded test run, if any."""
        return self._tests

    def set_agent_status(self, status: AgentStatus) -> None:
        """Record (or replace) the status of the agent named ``status.name``."""
        self._agents[status.name] = status

    def agents(self) -> list[AgentStatus]:
        """Known agent statuses, sorted by name."""
        return [self._agents[n] for n in sorted(self._agents)]

    # --- persistence ----------------------------------------------------------------------------
    async def load(self, store: FileIndexStore, root_key: str) -> int:
        """Load a saved file index so the next scan only hashes files changed since it was saved.

        Loaded records count as changed in a new version (a caller that saw nothing sees them).

        Returns:
            The number of records loaded.
        """
        records = await store.load_file_index(root_key)
        if not records:
            return 0
        self._version += 1
        for rec in records:
            self._records[rec.path] = rec
            self._changed_at[rec.path] = self._version
            self._vanished.pop(rec.path, None)
        self._history[self._version] = tuple(r.path for r in records)
        self._index = None
        self._racy.clear()
        return len(records)

    async def save(self, store: FileIndexStore, root_key: str) -> None:
        """Save the file index under ``root_key`` (replacing what was saved before)."""
        await store.save_file_index(root_key, self.records())
