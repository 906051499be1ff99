"""A mission's timeline: one line per event with its offset from the first one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from coditect.domain.events import (
    AgentAct,
    AgentLearn,
    AgentThink,
    Event,
    MissionState,
    TaskState,
)

__all__ = ["TimelineRow", "summarize", "timeline"]


class TimelineRow(BaseModel):
    """One line of a timeline.

    Attributes:
        ts: When the event happened (UTC).
        offset_s: Seconds since the mission's first event.
        type: Event type.
        task_id: Task, or empty for mission-level events.
        agent: Agent, or empty.
        summary: A short human-readable description.
    """

    model_config = ConfigDict(frozen=True)

    ts: datetime
    offset_s: float
    type: str
    task_id: str
    agent: str
    summary: str


def _clip(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def summarize(event: Event) -> str:
    """A one-line description of an event."""
    if isinstance(event, AgentThink):
        return _clip(event.text)
    if isinstance(event, AgentAct):
        outcome = "ok" if event.ok else "FAILED"
        tokens = f" tokens {event.input_tokens}/{event.output_tokens}" if event.input_tokens else ""
        detail = f": {event.detail}" if event.detail else ""
        return _clip(f"{event.action} {outcome}{tokens} {event.duration_s:.2f}s{detail}")
    if isinstance(event, AgentLearn):
        return _clip(event.lesson)
    if isinstance(event, TaskState):
        extra = f" (attempt {event.attempt})" if event.attempt else ""
        error = f": {event.error}" if event.error else ""
        return _clip(f"{event.state.value}{extra}{error}")
    if isinstance(event, MissionState):
        reason = f": {event.reason}" if event.reason else ""
        return _clip(f"{event.state.value}{reason}")
    return ""  # pragma: no cover - the Event union is exhaustive


def timeline(events: Sequence[Event]) -> list[TimelineRow]:
    """Timeline rows of ``events`` in the order given (the source's order)."""
    if not events:
        return []
    start = min(e.ts for e in events)
    return [
        TimelineRow(
            ts=e.ts,
            offset_s=(e.ts - start).total_seconds(),
            type=e.type,
            task_id=e.task_id,
            agent=e.agent,
            summary=summarize(e),
        )
        for e in events
    ]
