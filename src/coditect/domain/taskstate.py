"""A task's state as the distributed task queue keeps it.

Shared by the task queue service, its gRPC client and the coordinator's distributed port.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from coditect.domain.tasks import GoalState

__all__ = ["StoredTaskView", "TaskStateRecord"]


def _now() -> datetime:
    return datetime.now(UTC)


class TaskStateRecord(BaseModel):
    """The state of one task as the distributed workers see it.

    Attributes:
        mission_id: Mission of the task.
        task_id: Task id within the mission.
        state: Goal state.
        attempt: Attempt number (0 for the first).
        worker: Id of the worker running it, if any.
        error: Last error, if any.
        updated_at: When the record was written.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mission_id: str
    task_id: str
    state: GoalState
    attempt: int = 0
    worker: str = ""
    error: str = ""
    updated_at: datetime = Field(default_factory=_now)


@dataclass(frozen=True)
class StoredTaskView:
    """A task's state as the task queue service reports it, with the worker's outcome (JSON)."""

    record: TaskStateRecord
    outcome_json: str = ""
