"""Tasks, intents and goal states: the units the planner produces and the queue schedules."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "CAPABILITY_FOR_INTENT",
    "REPRODUCE_INSTRUCTION",
    "GoalState",
    "Intent",
    "TaskSpec",
    "can_do_without",
    "is_reproduction",
]


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


#: The instruction of a bug fix's first task (the request itself is in the prompt already). The
#: coder checks that the tests it writes for it fail on the unchanged code (agents/reproduce.py).
REPRODUCE_INSTRUCTION = (
    "Write a test that reproduces the bug in the request: call the code with the inputs the "
    "request gives and assert the result the request expects, so the test fails on the current "
    "code and passes once the bug is fixed."
)


def is_reproduction(task: TaskSpec) -> bool:
    """True for the task that writes a test reproducing a bug report before it is fixed."""
    return task.intent is Intent.WRITE_TESTS and task.description == REPRODUCE_INSTRUCTION


def can_do_without(task: TaskSpec) -> bool:
    """True for a task whose failure the mission survives: writing new tests.

    The change is still made and the project's own tests still judge it; the mission's outcome
    then says that no new test checks it (UNVERIFIED at best, never SUCCESS).
    """
    return task.intent is Intent.WRITE_TESTS
