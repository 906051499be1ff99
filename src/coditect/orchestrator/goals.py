"""The goal manager: a state machine per task and for the mission, with completion and failure rules.

Rules:

* the mission is COMPLETE when every task that is still part of the plan is COMPLETE (a failed
  test run that was superseded by a repair round no longer counts);
* it FAILS when a task fails without being superseded, when a dependency failure blocks a task,
  when the number of task errors reaches the error threshold, or on the mission timeout;
* a task the mission can do without (writing new tests: the project's own tests still judge the
  change) is *skipped* when it fails: it stays FAILED in the report, its dependents run, and
  the mission can still complete; the outcome then says the change was not tested by new tests;
* it is CANCELLED when the user stops it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from coditect.domain.graph import TaskGraph
from coditect.domain.tasks import GoalState, TaskSpec

__all__ = ["GoalManager", "GoalPolicy", "InvalidTransitionError"]


_ALLOWED: dict[GoalState, frozenset[GoalState]] = {
    GoalState.PENDING: frozenset(
        {GoalState.RUNNING, GoalState.BLOCKED, GoalState.CANCELLED, GoalState.FAILED}
    ),
    GoalState.RUNNING: frozenset(
        {GoalState.COMPLETE, GoalState.FAILED, GoalState.CANCELLED, GoalState.PENDING}
    ),
}


class InvalidTransitionError(ValueError):
    """A task was moved between states the state machine does not allow (a programming error)."""


@dataclass(frozen=True)
class GoalPolicy:
    """Failure-detection thresholds.

    Attributes:
        mission_timeout_s: The mission fails when it runs longer than this.
        error_threshold: The mission fails after this many task errors (retries included).
        max_repairs: Repair rounds allowed after a failing test run.
    """

    mission_timeout_s: float = 900.0
    error_threshold: int = 6
    max_repairs: int = 2


class GoalManager:
    """Tracks the state of every task of a mission and derives the mission's state."""

    def __init__(
        self,
        graph: TaskGraph,
        policy: GoalPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.graph = graph
        self.policy = policy or GoalPolicy()
        self._clock = clock
        self._started = clock()
        self._states = {t.id: GoalState.PENDING for t in graph}
        self._errors: dict[str, str] = {}
        self._superseded: dict[str, str] = {}
        self._skipped: dict[str, str] = {}
        self._error_count = 0
        self._cancel_reason = ""
        self.repairs = 0

    # --- task transitions -------------------------------------------------------------------
    def state(self, task_id: str) -> GoalState:
        """The state of one task."""
        return self._states[task_id]

    def _move(self, task_id: str, new: GoalState) -> None:
        old = self._states[task_id]
        if new not in _ALLOWED.get(old, frozenset()):
            raise InvalidTransitionError(f"task {task_id}: {old} -> {new} is not allowed")
        self._states[task_id] = new

    def start(self, task_id: str) -> None:
        """PENDING -> RUNNING."""
        self._move(task_id, GoalState.RUNNING)

    def complete(self, task_id: str) -> None:
        """RUNNING -> COMPLETE."""
        self._move(task_id, GoalState.COMPLETE)

    def record_error(self, task_id: str, error: str) -> None:
        """Count an error (a retried attempt or a failure) towards the error threshold."""
        self._error_count += 1
        self._errors[task_id] = error

    def fail(self, task_id: str, error: str) -> set[str]:
        """RUNNING -> FAILED; returns the tasks now BLOCKED by it."""
        self._move(task_id, GoalState.FAILED)
        self.record_error(task_id, error)
        blocked = {
            t for t in self.graph.descendants(task_id) if self._states[t] is GoalState.PENDING
        }
        for tid in blocked:
            self._states[tid] = GoalState.BLOCKED
            self._errors.setdefault(tid, f"blocked: dependency {task_id} failed")
        return blocked

    def skip(self, task_id: str, error: str) -> None:
        """RUNNING -> FAILED for a task the mission can do without: nothing is blocked by it."""
        self._move(task_id, GoalState.FAILED)
        self.record_error(task_id, error)
        self._skipped[task_id] = error

    @property
    def skipped(self) -> dict[str, str]:
        """The tasks that failed and were done without, with their errors."""
        return dict(self._skipped)

    def supersede(self, failed_id: str, replacements: Iterable[TaskSpec]) -> None:
        """Add a repair round for a FAILED task; it stops counting against completion."""
        if self._states[failed_id] is not GoalState.FAILED:
            raise InvalidTransitionError(f"only a failed task can be superseded ({failed_id})")
        new = list(replacements)
        self.graph = self.graph.extended(new)
        for task in new:
            self._states[task.id] = GoalState.PENDING
        for tid in self.graph.descendants(failed_id) - {t.id for t in new}:
            if self._states[tid] is GoalState.BLOCKED:
                self._states[tid] = GoalState.PENDING
                self._errors.pop(tid, None)
        self._superseded[failed_id] = new[-1].id if new else ""
        self.repairs += 1

    def extend(self, tasks: Iterable[TaskSpec]) -> None:
        """Add new PENDING tasks (a review feedback round) to a mission whose tasks all ended."""
        new = list(tasks)
        self.graph = self.graph.extended(new)
        for task in new:
            self._states[task.id] = GoalState.PENDING

    def cancel(self, reason: str = "cancelled by the user") -> None:
        """Cancel every task that has not ended."""
        self._cancel_reason = reason
        for tid, state in self._states.items():
            if not state.is_terminal:
                self._states[tid] = GoalState.CANCELLED

    # --- derived mission state --------------------------------------------------------------
    def error(self, task_id: str) -> str:
        """The last error of a task (empty if none)."""
        return self._errors.get(task_id, "")

    def superseded_by(self, task_id: str) -> str:
        """The task that replaced ``task_id`` in a repair round, if any."""
        return self._superseded.get(task_id, "")

    @property
    def elapsed_s(self) -> float:
        """Seconds since the mission started."""
        return self._clock() - self._started

    @property
    def can_repair(self) -> bool:
        """Whether another repair round is allowed."""
        return self.repairs < self.policy.max_repairs

    def mission_state(self) -> tuple[GoalState, str]:
        """The mission's state and, when it ended badly, why."""
        if self._cancel_reason:
            return GoalState.CANCELLED, self._cancel_reason
        live = {
            t: s
            for t, s in self._states.items()
            if t not in self._superseded and t not in self._skipped
        }
        failed = [t for t, s in live.items() if s is GoalState.FAILED]
        if failed:
            reason = f"task {failed[0]} failed: {self._errors.get(failed[0], '')}"
            first = next(iter(self._superseded), None)
            if first is not None and first != failed[0] and self._errors.get(first):
                # A repair round failed after an earlier failure: that one is the first cause.
                reason = f"task {first} failed: {self._errors[first]}; then {reason}"
            return GoalState.FAILED, reason
        if self._error_count >= self.policy.error_threshold:
            return GoalState.FAILED, f"error threshold reached ({self._error_count} errors)"
        if self.elapsed_s > self.policy.mission_timeout_s:
            return GoalState.FAILED, f"mission timed out after {self.policy.mission_timeout_s:.0f}s"
        if all(s is GoalState.COMPLETE for s in live.values()):
            return GoalState.COMPLETE, ""
        if any(s is not GoalState.PENDING for s in live.values()):
            return GoalState.RUNNING, ""
        return GoalState.PENDING, ""

    @property
    def done(self) -> bool:
        """True once the mission state is terminal."""
        return self.mission_state()[0].is_terminal
