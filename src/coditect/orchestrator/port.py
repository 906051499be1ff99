"""The port between the coordinator and where tasks run: submit, receive pushed events, cancel.

The :class:`~coditect.orchestrator.coordinator.Coordinator` is written once; a
:class:`TaskPort` decides where a ready task runs. Two implementations ship:
:class:`~coditect.orchestrator.inprocess.InProcessPort` (agents on the mission's workspace in
this process, ``coditect run``) and :class:`~coditect.distributed.port.DistributedPort` (the
task queue service over gRPC, workers over NATS JetStream, ``coditect serve``).

A port pushes what happens to a submitted task into the mission's inbox
(:meth:`MissionRun.push`): :class:`TaskStarted` when an agent takes it, then exactly one
:class:`TaskFinished` with the step's outcome. The coordinator never polls a port.
"""

from __future__ import annotations

import abc
import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from coditect.domain.graph import TaskGraph
from coditect.domain.mission import MissionReport, TaskRun
from coditect.domain.results import TaskResult
from coditect.domain.tasks import TaskSpec
from coditect.llm.budget import Budget
from coditect.llm.usage import UsageCounter
from coditect.orchestrator.goals import GoalManager
from coditect.orchestrator.step import StepOutcome, TaskOrder
from coditect.taskqueue.queue import TaskQueue

__all__ = [
    "Changes",
    "JournalStep",
    "Landing",
    "MissionRun",
    "PortEvent",
    "TaskFinished",
    "TaskPort",
    "TaskStarted",
]


@dataclass(frozen=True)
class TaskStarted:
    """An agent took the task (named ``agent``, ``<agent>@<worker>`` on a worker)."""

    task_id: str
    agent: str


@dataclass(frozen=True)
class TaskFinished:
    """The task's step ended: a result or an error, with its usage and ledger entries."""

    task_id: str
    outcome: StepOutcome


PortEvent = TaskStarted | TaskFinished


@dataclass(frozen=True)
class JournalStep:
    """One decision of the coordinator, in order (a restarted coordinator replays them).

    Attributes:
        kind: ``complete``, ``fail`` (with ``error``), ``skip`` (a failed task the mission
            does without, with ``error``) or ``repair`` (``tasks`` replace the failed
            ``task_id``).
    """

    kind: Literal["complete", "fail", "skip", "repair"]
    task_id: str
    error: str = ""
    tasks: tuple[TaskSpec, ...] = ()


@dataclass(frozen=True)
class Changes:
    """What the mission changed, as the port sees it (before anything is landed)."""

    files: list[str]
    diff: str = ""


@dataclass(frozen=True)
class Landing:
    """Where the change went: a branch and commit, or the files applied in place."""

    branch: str = ""
    commit: str = ""
    applied_to: str = ""
    notes: tuple[str, ...] = ()


@dataclass
class MissionRun:
    """The live state of one mission (the coordinator's; ports read it, never change it).

    Attributes:
        request: The request the agents work on (a reused plan's own request).
        results: Every settled task's result, oldest first (the upstream of later tasks).
        task_results: The same results by task id (what a checkpoint keeps).
        counter: The mission's usage counter (every task's usage is added into it).
        budget: The mission's budget, charged with every task's usage (None: no limit).
        journal: Completions, failures and repair rounds, oldest first.
        pending_reuse: Reuse entries to store once the mission succeeds (key, entry JSON).
        baseline: The files as the mission was planned (path -> SHA-256).
        detached: Set by a service that stops without ending the mission (it is resumed).
        tiers: Task id -> the cascade tier it runs (ran) on (see ``coditect.llm.cascade``).
        tested_diff: The mission's diff when its last test run settled (None before one). A
            failed or timed-out mission is judged by that run only while its change is still
            exactly this one.
    """

    report: MissionReport
    request: str
    goals: GoalManager
    queue: TaskQueue
    plan: TaskGraph
    counter: UsageCounter
    budget: Budget | None = None
    results: list[TaskResult] = field(default_factory=list)
    task_results: dict[str, TaskResult] = field(default_factory=dict)
    runs: dict[str, TaskRun] = field(default_factory=dict)
    tests_written: list[str] = field(default_factory=list)
    test_names: dict[str, frozenset[str] | None] = field(default_factory=dict)
    journal: list[JournalStep] = field(default_factory=list)
    pending_reuse: list[tuple[str, str]] = field(default_factory=list)
    baseline: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    detached: bool = False
    tiers: dict[str, int] = field(default_factory=dict)
    tested_diff: str | None = None
    inbox: asyncio.Queue[PortEvent] = field(default_factory=asyncio.Queue)

    @property
    def mission_id(self) -> str:
        """The mission's id."""
        return self.report.mission_id

    def push(self, event: PortEvent) -> None:
        """Deliver a port's event to the coordinator (safe from the event loop's thread)."""
        self.inbox.put_nowait(event)


class TaskPort(abc.ABC):
    """Where a mission's ready tasks run."""

    @abc.abstractmethod
    async def submit(self, run: MissionRun, order: TaskOrder) -> None:
        """Start ``order``'s task; its events arrive later through ``run.push``."""

    @abc.abstractmethod
    async def cancel(self, run: MissionRun, reason: str) -> None:
        """Stop the mission's running task and drop its queued ones (idempotent)."""

    @abc.abstractmethod
    async def changes(self, run: MissionRun) -> Changes:
        """The files the finished mission changed and their diff."""

    @abc.abstractmethod
    async def land(self, run: MissionRun, changes: Changes) -> Landing:
        """Make the change visible to the user (a commit on a branch, or files applied)."""

    async def after_step(self, run: MissionRun) -> None:  # noqa: B027 - optional hook
        """Called after each settled task (the distributed port keeps a checkpoint)."""

    async def close(self, run: MissionRun) -> None:  # noqa: B027 - optional hook
        """Release what the port kept for the mission (a workspace, a ref)."""

    def tree(self, run: MissionRun) -> Path | None:
        """A directory with the mission's current files, when the port has one here."""
        return None
