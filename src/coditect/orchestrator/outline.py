"""The planner's view of a repository: an outline backed by the repository index.

:func:`outline` returns an :class:`Outline`: ``path`` or ``path: name, name`` lines (a list of
strings, as before) that also carries the :class:`~coditect.index.RepoIndex` it was built from,
so that the planner can rank the lines for a request and check the names the request uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from coditect.index import RepoIndex, index_directory, outline_lines

__all__ = ["Outline", "outline"]


class Outline(list[str]):
    """Outline lines, with the index they came from (None for a plain list of paths)."""

    def __init__(self, lines: Iterable[str] = (), index: RepoIndex | None = None) -> None:
        super().__init__(lines)
        self.repo_index = index


def outline(root: Path, paths: Iterable[str], *, max_names: int = 10) -> Outline:
    """``path`` or ``path: name, name`` lines (Python files list their top-level defs/classes).

    Every file is listed (by path); the result carries the index of the Python files.
    """
    files = sorted(paths)
    index = index_directory(root, files)
    py = {
        line.partition(":")[0]: line
        for line in outline_lines(index, max_files=len(files) + 1, max_names=max_names)
    }
    lines = []
    for rel in files:
        entry = index.get(rel)
        if entry is not None and entry.error:
            lines.append(f"{rel}: (does not parse)")
        else:
            lines.append(py.get(rel, rel))
    return Outline(lines, index)
