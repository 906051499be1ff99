"""Tasks, intents and goal states: the units the planner produces and the queue schedules."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["CAPABILITY_FOR_INTENT", "GoalState", "Intent", "TaskSpec"]


class Intent(StrEnum):
    """What a task is meant to achieve, before it is turned into concrete actions."""

    ANALYZE = "analyze"
    WRITE_CODE = "write_code"
    WRITE_TESTS = "write_tests"
    RUN_TESTS = "run_tests"


#: Which agent capability serves each intent (used by the resource allocator).
CAPABILITY_FOR_INTENT: dict[Intent, str] = {
    Intent.ANALYZE: "analyze",
    Intent.WRITE_CODE: "code",
    Intent.WRITE_TESTS: "code",
    Intent.RUN_TESTS: "test",
}


class GoalState(StrEnum):
    """State of a goal (a task or a whole mission).

    ``PENDING -> RUNNING -> COMPLETE | FAILED``; ``BLOCKED`` when a dependency failed,
    ``CANCELLED`` when the user stopped the mission.
    """

    PENDING = "pending"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True when the goal will not change state again."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {GoalState.COMPLETE, GoalState.FAILED, GoalState.BLOCKED, GoalState.CANCELLED}
)


class TaskSpec(BaseModel):
    """One node of a mission's task graph, as planned.

    Attributes:
        id: Unique within the mission, e.g. ``"t1"``.
        intent: What the task is for; decides the agent capability.
        description: The instruction for the agent, in plain words.
        depends_on: Ids of tasks that must be COMPLETE before this one starts.
        priority: Higher runs first among ready tasks.
        target_files: Files the planner expects the task to touch (hints, relative paths).
        feedback: For repair tasks: what went wrong in the run being repaired.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    intent: Intent
    description: str = Field(min_length=1)
    depends_on: tuple[str, ...] = ()
    priority: int = 0
    target_files: tuple[str, ...] = ()
    feedback: str = ""

    @field_validator("depends_on", "target_files")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(value))

    @property
    def capability(self) -> str:
        """The agent capability this task needs."""
        return CAPABILITY_FOR_INTENT[self.intent]
