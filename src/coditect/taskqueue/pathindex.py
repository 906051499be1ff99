"""Glob matching over POSIX relative paths and an immutable index that answers globs fast.

:class:`PathIndex` keeps the paths sorted (so everything under a directory is one contiguous
range), grouped by directory, and their unique base names sorted and grouped by extension. A glob
is answered by narrowing on the literal directory prefix and on the base name (its literal head
via bisection, else its literal extension) before any regex runs on a full path, so typical
patterns (``src/pkg/*.py``, ``**/test_*.py``) cost time in proportion to their matches, not to
the size of the tree.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable

__all__ = ["PathIndex", "compile_glob", "has_magic"]


def has_magic(pattern: str) -> bool:
    """True when ``pattern`` contains a glob wildcard (``*``, ``?`` or ``[``)."""
    return any(c in pattern for c in "*?[")


@functools.lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """Compile a glob over POSIX relative paths into a regex matched against the whole path.

    ``*`` and ``?`` never cross a ``/``; ``**`` as a whole segment matches zero or more
    directories (``**/test_*.py`` matches ``test_a.py`` and ``a/b/test_a.py``); ``[...]`` is a
    character class as in :mod:`fnmatch` (``[!...]`` negates).
    """
    segments = pattern.strip("/").split("/")
    out: list[str] = []
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg == "**":
            # Zero or more whole segments, each followed by "/" (or everything when last).
            out.append(".*" if i == last else "(?:[^/]+/)*")
            continue
        out.append(_segment_regex(seg))
        if i != last:
            out.append("/")
    return re.compile("".join(out) + r"\Z")


@functools.lru_cache(maxsize=1024)
def _compile_segment(seg: str) -> re.Pattern[str]:
    return re.compile(_segment_regex(seg) + r"\Z")


def _segment_regex(seg: str) -> str:
    out: list[str] = []
    i, n = 0, len(seg)
    while i < n:
        c = seg[i]
        if c == "*":
            while i + 1 < n and seg[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = seg.find("]", i + 2 if i + 1 < n and seg[i + 1] in "!^" else i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = seg[i + 1 : j].replace("\\", "\\\\")
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _after(prefix: str) -> str:
    """The smallest string greater than every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class PathIndex:
    """An immutable index of a set of POSIX relative file paths."""

    __slots__ = ("by_dir", "dirs", "paths", "_by_ext", "_by_name", "_names")

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths: list[str] = sorted(paths)
        by_dir: dict[str, list[str]] = {}
        by_name: dict[str, list[int]] = {}
        for i, p in enumerate(self.paths):
            d, _, name = p.rpartition("/")
            by_dir.setdefault(d, []).append(p)
            by_name.setdefault(name, []).append(i)
        self.by_dir = by_dir
        self.dirs: list[str] = sorted(by_dir)
        self._by_name = by_name
        self._names: list[str] = sorted(by_name)
        by_ext: dict[str, list[str]] = {}
        for name in self._names:
            if "." in name:
                by_ext.setdefault(name.rpartition(".")[2], []).append(name)
        self._by_ext = by_ext

    def under(self, directory: str) -> list[str]:
        """Every path below ``directory`` (all paths for "")."""
        if not directory:
            return self.paths
        lo, hi = self._range(directory)
        return self.paths[lo:hi]

    def _range(self, directory: str) -> tuple[int, int]:
        start = directory + "/"
        return bisect.bisect_left(self.paths, start), bisect.bisect_left(self.paths, _after(start))

    def glob(self, pattern: str) -> list[str]:
        """Sorted paths matching ``pattern`` (see :func:`compile_glob`)."""
        segs = pattern.strip("/").split("/")
        n_lit = 0
        while n_lit < len(segs) - 1 and segs[n_lit] != "**" and not has_magic(segs[n_lit]):
            n_lit += 1
        prefix = "/".join(segs[:n_lit])
        middle, last = segs[n_lit:-1], segs[-1]
        if not has_magic(pattern) and "**" not in segs:
            full = "/".join(segs)
            i = bisect.bisect_left(self.paths, full)
            return [full] if i < len(self.paths) and self.paths[i] == full else []
        match = compile_glob(pattern).match
        if last == "**":
            cands = self.under(prefix)
            return list(cands) if not middle else [p for p in cands if match(p)]
        if not middle:  # wildcards only in the base name: one directory
            return [p for p in self.by_dir.get(prefix, ()) if match(p)]
        names = self._matching_names(last)
        lo, hi = self._range(prefix) if prefix else (0, len(self.paths))
        if hi - lo < sum(len(self._by_name[n]) for n in names):
            # The directory range is smaller than the name matches: walk the range instead.
            wanted = set(names)
            paths = [p for p in self.paths[lo:hi] if p.rpartition("/")[2] in wanted]
        else:
            idx = sorted(i for n in names for i in self._by_name[n] if lo <= i < hi)
            paths = [self.paths[i] for i in idx]
        if middle == ["**"]:  # prefix/**/name: the base name decides alone
            return paths
        return [p for p in paths if match(p)]

    def _matching_names(self, seg: str) -> list[str]:
        """Unique base names matching the segment pattern ``seg``."""
        if not has_magic(seg):
            return [seg] if seg in self._by_name else []
        first = min(i for i, c in enumerate(seg) if c in "*?[")
        head = seg[:first]
        tail_start = max(seg.rfind("*"), seg.rfind("?"), seg.rfind("]")) + 1
        tail = seg[tail_start:]
        cands: list[str]
        if head:
            lo = bisect.bisect_left(self._names, head)
            hi = bisect.bisect_left(self._names, _after(head))
            cands = self._names[lo:hi]
        elif "." in tail:
            cands = self._by_ext.get(tail.rpartition(".")[2], [])
        else:
            cands = self._names
        match = _compile_segment(seg).match
        return [name for name in cands if match(name)]
