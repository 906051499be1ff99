"""What travels between the services: a task's body and a worker's outcome (JSON on the wire)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coditect.domain.actions import Violation
from coditect.domain.results import TaskResult
from coditect.domain.tasks import TaskSpec

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
        upstream: Results of the tasks already completed in this mission, oldest first.
    """

    model_config = _FROZEN

    mission_id: str
    request: str
    repo: str
    branch: str
    task: TaskSpec
    attempt: int = 1
    upstream: list[TaskResult] = Field(default_factory=list)


class WorkerOutcome(BaseModel):
    """A worker's report of a completed task.

    Attributes:
        commit: The branch head after the task's push ("" when the task changed no file).
        changed_files: Files the task changed (project-relative).
        fencing_token: The push lock's token when the change was pushed.
    """

    model_config = _FROZEN

    result: TaskResult
    violations: list[Violation] = Field(default_factory=list)
    agent: str = ""
    attempts: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    duration_s: float = 0.0
    commit: str = ""
    changed_files: list[str] = Field(default_factory=list)
    fencing_token: int = 0


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
