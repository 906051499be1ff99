"""A mission's checkpoint: what a new process needs, besides the stored report, to continue it.

Both modes keep one after every settled task. The distributed orchestrator's workers push each
task's commit onto the mission branch and the task queue service keeps each task's outcome, so
its checkpoint needs only the base commit, the plan and the coordinator's decisions. A mission run
in one process (``coditect run``) has nothing outside its process: its checkpoint also carries
each settled task's result and the workspace's changed files, so that ``coditect resume`` can
rebuild the workspace and continue after the last completed task.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coditect.domain.results import TaskResult
from coditect.domain.tasks import TaskSpec

__all__ = ["CheckpointStep", "FileState", "MissionCheckpoint"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class CheckpointStep(BaseModel):
    """One thing the coordinator decided about a mission, in order.

    Attributes:
        kind: ``complete``, ``fail`` (with ``error``), ``skip`` (a failed task the mission
            does without, with ``error``) or ``repair`` (``tasks`` replace the failed
            ``task_id``).
    """

    model_config = _FROZEN

    kind: Literal["complete", "fail", "skip", "repair"]
    task_id: str
    error: str = ""
    tasks: list[TaskSpec] = Field(default_factory=list)


class FileState(BaseModel):
    """One file the mission changed, as it was in the workspace when the checkpoint was taken.

    Attributes:
        path: Project-relative POSIX path.
        original_sha256: SHA-256 of the file as the mission started ("": it did not exist); a
            resume refuses to overwrite a file that no longer matches it.
        deleted: The mission removed the file.
        content_b64: The file's bytes, base64 (a regular file).
        link: The target of a symbolic link ("": not a link).
        executable: The owner may execute the file (the one mode bit git keeps).
    """

    model_config = _FROZEN

    path: str
    original_sha256: str = ""
    deleted: bool = False
    content_b64: str = ""
    link: str = ""
    executable: bool = False


class MissionCheckpoint(BaseModel):
    """What a new process needs, besides the stored report, to continue a mission.

    Attributes:
        base: The commit the mission started from ("": a plain directory, not a git repository).
        plan: The planned tasks (repair rounds come from ``steps``).
        steps: Completions, failures and repair rounds so far, oldest first.
        results: Task id -> the result of each settled task that gave one (empty in the
            distributed mode, where the task queue service keeps them).
        files: The files the mission had changed (empty in the distributed mode, where they
            are commits on the mission branch).
    """

    model_config = _FROZEN

    base: str
    plan: list[TaskSpec]
    steps: list[CheckpointStep] = Field(default_factory=list)
    results: dict[str, TaskResult] = Field(default_factory=dict)
    files: list[FileState] = Field(default_factory=list)

    @property
    def completed(self) -> list[str]:
        """The ids of the tasks completed, in order."""
        return [s.task_id for s in self.steps if s.kind == "complete"]
