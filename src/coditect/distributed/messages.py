"""What travels between the services: a task's body, a worker's outcome, a checkpoint (JSON).

The checkpoint is the one both modes keep (:mod:`coditect.domain.checkpoint`); the distributed
mode leaves its ``results`` and ``files`` empty (the task queue service and the mission branch
hold them).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from coditect.domain.checkpoint import CheckpointStep, MissionCheckpoint
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
        base: The commit the mission branch started from (the project's tests are recorded
            there before any edit); ``""`` from an orchestrator that did not send it.
        generated: Modules the project generates and git ignores (path -> text, such as a
            version module), read from the repository's checkout (:mod:`coditect.generated`):
            the worker writes them into its clone, which has only the commits.
    """

    model_config = _FROZEN

    repo: str
    branch: str
    order: TaskOrder
    attempt: int = 1
    base: str = ""
    generated: dict[str, str] = Field(default_factory=dict)

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
