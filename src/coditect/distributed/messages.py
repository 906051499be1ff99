"""What travels between the services: a task's body, a worker's outcome, a checkpoint (JSON)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coditect.domain.tasks import TaskSpec
from coditect.orchestrator.step import StepOutcome, TaskOrder

__all__ = ["CheckpointStep", "MissionCheckpoint", "TaskBody", "WorkerOutcome", "branch_for"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


def branch_for(mission_id: str) -> str:
    """The branch a mission's workers push to."""
    return f"coditect/{mission_id}"


class TaskBody(BaseModel):
    """Everything a worker needs to run one task, without a shared disk.

    Attributes:
        repo: A git URL or path the worker can clone from and push to.
        branch: The mission branch; the worker starts from its head and pushes onto it.
        order: The task step's input, as the coordinator made it (the same in one process).
    """

    model_config = _FROZEN

    repo: str
    branch: str
    order: TaskOrder
    attempt: int = 1

    @property
    def mission_id(self) -> str:
        """The task's mission."""
        return self.order.mission_id

    @property
    def task(self) -> TaskSpec:
        """The task."""
        return self.order.task


#: A worker's report of a task: the task step's outcome, with the commit it pushed.
WorkerOutcome = StepOutcome


class CheckpointStep(BaseModel):
    """One thing the orchestrator decided about a mission, in order.

    Attributes:
        kind: ``complete`` (the task's outcome is in the task queue service), ``fail`` (with
            ``error``) or ``repair`` (``tasks`` replace the failed ``task_id``).
    """

    model_config = _FROZEN

    kind: Literal["complete", "fail", "repair"]
    task_id: str
    error: str = ""
    tasks: list[TaskSpec] = Field(default_factory=list)


class MissionCheckpoint(BaseModel):
    """What a restarted orchestrator needs, besides the stored report, to resume a mission.

    Attributes:
        base: The commit the mission branch started from.
        plan: The planned tasks.
        steps: Completions, failures and repair rounds so far, oldest first.
    """

    model_config = _FROZEN

    base: str
    plan: list[TaskSpec]
    steps: list[CheckpointStep] = Field(default_factory=list)
