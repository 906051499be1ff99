"""Typed events: what agents think, do and learn, and the lifecycle of tasks and missions.

Each event has a ``type`` that doubles as its bus subject suffix (``agent.think``, ``task.state``...).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from coditect.domain.tasks import GoalState

__all__ = [
    "ANSWER_CHARS",
    "AgentAct",
    "AgentLearn",
    "AgentThink",
    "Event",
    "EventBase",
    "MissionState",
    "TaskState",
    "event_adapter",
]


def _now() -> datetime:
    return datetime.now(UTC)


def _event_id() -> str:
    return uuid.uuid4().hex


class EventBase(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(default_factory=_event_id)
    mission_id: str
    task_id: str = ""
    agent: str = ""
    ts: datetime = Field(default_factory=_now)


class AgentThink(EventBase):
    """An agent's reasoning step (e.g. the prompt it is about to send, summarised)."""

    type: Literal["agent.think"] = "agent.think"
    text: str


#: At most this many characters of a model's answer are kept in an ``agent.act`` event.
ANSWER_CHARS = 8000


class AgentAct(EventBase):
    """An action an agent performed, with its outcome."""

    type: Literal["agent.act"] = "agent.act"
    action: str
    detail: str = ""
    ok: bool = True
    input_tokens: int = 0
    output_tokens: int = 0
    duration_s: float = 0.0
    #: The model's answer as it came (``generate`` actions; cut at :data:`ANSWER_CHARS`).
    answer: str = ""


class AgentLearn(EventBase):
    """Something an agent learned that later work can reuse (e.g. a failure and its fix)."""

    type: Literal["agent.learn"] = "agent.learn"
    lesson: str


class TaskState(EventBase):
    """A task changed state."""

    type: Literal["task.state"] = "task.state"
    state: GoalState
    attempt: int = 0
    error: str = ""


class MissionState(EventBase):
    """A mission changed state."""

    type: Literal["mission.state"] = "mission.state"
    state: GoalState
    reason: str = ""


Event = Annotated[
    AgentThink | AgentAct | AgentLearn | TaskState | MissionState, Field(discriminator="type")
]

#: Parses any event from JSON or a dict (``event_adapter.validate_json(raw)``).
event_adapter: TypeAdapter[Event] = TypeAdapter(Event)
