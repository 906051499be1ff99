"""What the mission page shows, computed from a report, its events and its LLM calls (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

from coditect.cli.costs_cmd import costs_summary
from coditect.domain.events import AgentAct, AgentLearn, AgentThink, Event, MissionState, TaskState
from coditect.domain.mission import MissionReport, TaskRun
from coditect.domain.tasks import Intent
from coditect.llm.ledger import LedgerEntry

__all__ = ["DIFF_CSS", "TaskView", "diff_html", "event_text", "task_views", "costs"]

_FORMATTER = HtmlFormatter(cssclass="hl", wrapcode=True)
#: Pygments' colours for the diff, scoped to ``.hl``.
DIFF_CSS = _FORMATTER.get_style_defs(".hl")


def diff_html(diff: str) -> str:
    """The unified diff as highlighted HTML (pygments escapes the text)."""
    return highlight(diff, DiffLexer(), _FORMATTER) if diff else ""


def event_text(event: Event) -> str:
    """One line that says what the event is about."""
    if isinstance(event, AgentThink):
        return event.text
    if isinstance(event, AgentAct):
        tokens = (
            f" [{event.input_tokens}+{event.output_tokens} tokens]" if event.output_tokens else ""
        )
        timing = f" {event.duration_s:.2f}s" if event.duration_s else ""
        return f"{event.action}{'' if event.ok else ' (failed)'}: {event.detail}{tokens}{timing}"
    if isinstance(event, AgentLearn):
        return event.lesson
    if isinstance(event, TaskState):
        return f"{event.state.value} (attempt {event.attempt}){': ' + event.error if event.error else ''}"
    assert isinstance(event, MissionState)
    return f"mission {event.state.value}{': ' + event.reason if event.reason else ''}"


@dataclass(frozen=True)
class TaskView:
    """A task row: its run and what its agent thought and did."""

    run: TaskRun
    steps: tuple[str, ...] = ()
    is_test: bool = False
    answers: tuple[str, ...] = ()


def task_views(report: MissionReport, events: Sequence[Event]) -> list[TaskView]:
    """One view per task, with the texts of its agent events and the model's answers in order."""
    steps: dict[str, list[str]] = {}
    answers: dict[str, list[str]] = {}
    for e in events:
        if isinstance(e, AgentThink | AgentAct | AgentLearn) and e.task_id:
            steps.setdefault(e.task_id, []).append(f"{e.type} {event_text(e)}")
            if isinstance(e, AgentAct) and e.answer:
                answers.setdefault(e.task_id, []).append(e.answer)
    return [
        TaskView(
            t,
            tuple(steps.get(t.id, ())),
            t.intent is Intent.RUN_TESTS,
            tuple(answers.get(t.id, ())),
        )
        for t in report.tasks
    ]


@dataclass(frozen=True)
class Costs:
    """Cost per agent and per task."""

    totals: dict[str, Any] = field(default_factory=dict)
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    from_ledger: bool = False


def costs(report: MissionReport, entries: list[LedgerEntry]) -> Costs:
    """From the ledger's calls when there are any, else from the report's per-task tokens."""
    if entries:
        s = costs_summary(report, entries)
        return Costs(totals=s, agents=s["agents"], tasks=s["tasks"], from_ledger=True)
    agents: dict[str, dict[str, Any]] = {}
    tasks = []
    for t in report.tasks:
        row = {
            "calls": "-",
            "input_tokens": t.input_tokens,
            "output_tokens": t.output_tokens,
            "usd": 0.0,
        }
        tasks.append({"task": t.id, "agent": t.agent, **row})
        a = agents.setdefault(
            t.agent or "-", {"calls": "-", "input_tokens": 0, "output_tokens": 0, "usd": 0.0}
        )
        a["input_tokens"] += t.input_tokens
        a["output_tokens"] += t.output_tokens
    totals = {
        "input_tokens": report.tokens.input,
        "output_tokens": report.tokens.output,
        "usd": report.tokens.usd,
    }
    return Costs(totals=totals, agents=agents, tasks=tasks)
