"""A cheap outline of a repository for the planner: each file with its top-level names."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

__all__ = ["outline"]


def outline(root: Path, paths: Iterable[str], *, max_names: int = 10) -> list[str]:
    """``path`` or ``path: name, name`` lines (Python files list their top-level defs/classes)."""
    lines: list[str] = []
    for rel in sorted(paths):
        if not rel.endswith(".py"):
            lines.append(rel)
            continue
        try:
            tree = ast.parse((root / rel).read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError, OSError):
            lines.append(f"{rel}: (does not parse)")
            continue
        names = [
            n.name
            for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        ]
        if len(names) > max_names:
            names = [*names[:max_names], "..."]
        lines.append(f"{rel}: {', '.join(names)}" if names else rel)
    return lines
