"""The task graph as an SVG drawing: layered left to right by dependency depth.

Plain SVG rendered on the server, so the page needs no graph library: a task sits one column to
the right of its deepest dependency; a repair (or review feedback) round is drawn in the column
after the task it supersedes, joined to it by a dashed arrow. Nodes carry ``data-task`` and a
``st-<state>`` class, which the page's script updates from the live events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from coditect.domain.mission import TaskRun

__all__ = ["Placed", "layout", "render_svg"]

_W, _H = 170, 54  # node size
_DX, _DY = 60, 22  # gaps between columns, rows
_PAD = 12


@dataclass(frozen=True)
class Placed:
    """A task and where its node is drawn."""

    task: TaskRun
    column: int
    row: int

    @property
    def x(self) -> int:
        """Left edge."""
        return _PAD + self.column * (_W + _DX)

    @property
    def y(self) -> int:
        """Top edge."""
        return _PAD + self.row * (_H + _DY)


def layout(tasks: Sequence[TaskRun]) -> list[Placed]:
    """Columns by longest dependency path (repair rounds after what they supersede); rows in order."""
    by_id = {t.id: t for t in tasks}
    supersedes = {t.superseded_by: t.id for t in tasks if t.superseded_by}
    column: dict[str, int] = {}

    def col(tid: str, trail: frozenset[str] = frozenset()) -> int:
        if tid in column:
            return column[tid]
        if tid in trail:  # a cycle cannot be planned; guard anyway rather than recurse forever
            return 0
        task = by_id[tid]
        parents = [d for d in task.depends_on if d in by_id]
        if tid in supersedes:
            parents.append(supersedes[tid])
        trail = trail | {tid}
        column[tid] = 1 + max((col(p, trail) for p in parents), default=-1)
        return column[tid]

    rows: dict[int, int] = {}
    placed = []
    for task in tasks:
        c = col(task.id)
        placed.append(Placed(task, c, rows.get(c, 0)))
        rows[c] = rows.get(c, 0) + 1
    return placed


def _edge(a: Placed, b: Placed, cls: str) -> str:
    x1, y1 = a.x + _W, a.y + _H // 2
    x2, y2 = b.x, b.y + _H // 2
    mid = (x1 + x2) / 2
    return (
        f'<path class="{cls}" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 4},{y2}" '
        f'marker-end="url(#arrow)"/>'
    )


def _node(p: Placed) -> str:
    t = p.task
    extra = " superseded" if t.superseded_by else ""
    extra += " reused" if t.reused else ""
    title = escape(f"{t.id} {t.intent.value}: {t.description}\n{t.error}".strip())
    label = escape(f"{t.id} · {t.intent.value}")
    sub = escape(f"{t.status.value}" + (f" · {t.agent}" if t.agent else ""))
    return (
        f'<g class="node st-{t.status.value}{extra}" data-task="{escape(t.id)}" '
        f'transform="translate({p.x},{p.y})"><title>{title}</title>'
        f'<rect width="{_W}" height="{_H}" rx="8"/>'
        f'<text x="10" y="22" class="label">{label}</text>'
        f'<text x="10" y="41" class="sub">{sub}</text></g>'
    )


def render_svg(tasks: Sequence[TaskRun]) -> str:
    """The whole graph as one ``<svg>`` element (empty graph: a note instead)."""
    if not tasks:
        return '<p class="muted">no plan yet</p>'
    placed = layout(tasks)
    at = {p.task.id: p for p in placed}
    edges = []
    for p in placed:
        for dep in p.task.depends_on:
            if dep in at:
                edges.append(_edge(at[dep], p, "edge"))
        if p.task.superseded_by in at:
            edges.append(_edge(p, at[p.task.superseded_by], "edge repair"))
    width = _PAD * 2 + (max(p.column for p in placed) + 1) * (_W + _DX) - _DX
    height = _PAD * 2 + (max(p.row for p in placed) + 1) * (_H + _DY) - _DY
    return (
        f'<svg id="graph" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="task graph">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
        + "".join(edges)
        + "".join(_node(p) for p in placed)
        + "</svg>"
    )
