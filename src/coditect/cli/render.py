"""Rich rendering of plans, live task progress and mission reports."""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from coditect.domain.events import AgentAct, Event, TaskState
from coditect.domain.mission import MissionOutcome, MissionReport, TaskRun
from coditect.domain.tasks import GoalState

__all__ = ["LiveProgress", "render_plan", "render_report", "render_status_table"]

_STYLE = {
    GoalState.PENDING: ("·", "dim"),
    GoalState.RUNNING: ("▶", "yellow"),
    GoalState.COMPLETE: ("✔", "green"),
    GoalState.FAILED: ("✘", "red"),
    GoalState.BLOCKED: ("⊘", "red"),
    GoalState.CANCELLED: ("■", "magenta"),
}
_OUTCOME_STYLE = {
    MissionOutcome.SUCCESS: "bold green",
    MissionOutcome.FAILED: "bold red",
    MissionOutcome.CANCELLED: "bold magenta",
    MissionOutcome.REJECTED: "bold magenta",
    MissionOutcome.RUNNING: "bold yellow",
    MissionOutcome.INTERRUPTED: "bold dark_orange",
}


def render_plan(report: MissionReport) -> RenderableType:
    """The plan as a tree of tasks under their dependencies."""
    tree = Tree(f"[bold]Plan[/] ({report.plan_source}) for: {report.request}")
    nodes: dict[str, Tree] = {}
    for task in report.tasks:
        label = f"[cyan]{task.id}[/] [bold]{task.intent}[/] {task.description[:70]}"
        if len(task.depends_on) > 1:
            label += f" [dim](after {', '.join(task.depends_on)})[/]"
        parent = nodes.get(task.depends_on[-1]) if task.depends_on else None
        nodes[task.id] = (parent or tree).add(label)
    return tree


def _task_row(task: TaskRun) -> list[RenderableType]:
    mark, style = _STYLE[task.status]
    return [
        Text(mark, style=style),
        task.id,
        str(task.intent),
        task.agent or "-",
        Text(str(task.status), style=style),
        str(task.attempts),
        f"{task.duration_s:.1f}s" if task.duration_s else "",
        (task.error or "")[:60],
    ]


def _tasks_table(tasks: list[TaskRun], activity: str = "") -> Table:
    table = Table(box=None, pad_edge=False, caption=activity or None, caption_justify="left")
    for col in ("", "task", "intent", "agent", "status", "tries", "time", "note"):
        table.add_column(col)
    for task in tasks:
        table.add_row(*_task_row(task))
    return table


class LiveProgress:
    """Follows task events and redraws a task table in place."""

    def __init__(self, console: Console, report: MissionReport) -> None:
        self.report = report
        self.activity = ""
        self._live = Live(_tasks_table(report.tasks), console=console, refresh_per_second=8)

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh()
        self._live.__exit__(None, None, None)

    def on_event(self, event: Event) -> None:
        """Update the table from one event."""
        if isinstance(event, TaskState):
            known = {t.id: t for t in self.report.tasks}
            task = known.get(event.task_id)
            if task is None:
                return
            task.status = event.state
            task.agent = event.agent or task.agent
            self.activity = f"{event.task_id}: {event.state}"
        elif isinstance(event, AgentAct):
            self.activity = f"{event.agent} {event.action} {event.detail[:60]}"
        self.refresh()

    def refresh(self) -> None:
        """Redraw."""
        self._live.update(_tasks_table(self.report.tasks, self.activity))


def render_report(
    report: MissionReport, *, show_diff: bool = True, show_tasks: bool = True
) -> RenderableType:
    """The outcome of a mission: status, reason, tasks, tests, tokens, diff.

    Args:
        report: The mission's report.
        show_diff: Include the diff panel.
        show_tasks: False when the live task table is already on screen.
    """
    style = _OUTCOME_STYLE[report.status]
    head = Text.assemble("\n", (report.status.value, style), f"  mission {report.mission_id}")
    lines: list[RenderableType] = [head]
    if report.reason:
        lines.append(Text(f"reason: {report.reason}", style="red"))
    if show_tasks:
        lines.append(_tasks_table(report.tasks))
    t = report.tests
    lines.append(
        Text(
            f"tests: {t.passed} passed, {t.failed} failed, {t.errors} errors"
            + (
                f" (written by CODITECT: {', '.join(t.written_by_coditect)})"
                if t.written_by_coditect
                else ""
            )
        )
    )
    lines.append(
        Text(
            f"tokens: {report.tokens.input} in / {report.tokens.output} out   "
            f"wall: {report.wall_s:.1f}s   model: {report.model}"
        )
    )
    if report.violations:
        lines.append(Text(f"violations: {len(report.violations)}", style="yellow"))
        for v in report.violations[:10]:
            lines.append(Text(f"  {v.kind} {v.task_id} {v.path} {v.message[:80]}", style="yellow"))
    if report.changed_files:
        lines.append(Text("changed: " + ", ".join(report.changed_files)))
    if report.branch:
        lines.append(Text(f"branch: {report.branch} ({report.commit[:12]})", style="bold"))
    if report.applied_to:
        lines.append(Text(f"applied to: {report.applied_to}", style="bold"))
    for note in report.notes:
        lines.append(Text(f"note: {note}", style="dim"))
    if show_diff and report.diff:
        lines.append(Panel(Syntax(report.diff, "diff", word_wrap=True), title="diff"))
    return Group(*lines)


def render_status_table(reports: list[MissionReport]) -> Table:
    """One line per mission."""
    table = Table(title="missions")
    for col in ("mission", "status", "started", "wall", "tests", "request"):
        table.add_column(col)
    for r in reports:
        table.add_row(
            r.mission_id,
            Text(r.status.value, style=_OUTCOME_STYLE[r.status]),
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{r.wall_s:.1f}s",
            f"{r.tests.passed}/{r.tests.passed + r.tests.failed + r.tests.errors}",
            r.request[:60],
        )
    return table
