"""The distributed port: tasks go to the task queue service, outcomes come back as events.

:meth:`DistributedPort.submit` enqueues a task through the task queue service (gRPC); a
worker leases it from NATS JetStream, runs the same
:class:`~coditect.orchestrator.step.TaskStep` on its clone of the mission branch, pushes the
change and reports the outcome to the task queue service. The service publishes each task's
state changes (``task.state``: running, complete, failed) on the events bus, and
:meth:`DistributedPort.follow` turns them into the mission's inbox events: push, not poll.

A notification can be lost (NATS restarting): while a task runs, its stored state is also
read back every ``settle_check_s`` (seconds, not the 50 ms polling this replaces), so a lost
one delays a mission instead of stalling it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from coditect.bus.base import EventBus
from coditect.distributed.messages import CheckpointStep, MissionCheckpoint, TaskBody
from coditect.distributed.repos import RepoCache, git
from coditect.domain.events import Event, TaskState
from coditect.domain.tasks import GoalState, TaskSpec
from coditect.domain.taskstate import StoredTaskView
from coditect.errors import CoditectError
from coditect.orchestrator.port import (
    Changes,
    Landing,
    MissionRun,
    TaskFinished,
    TaskPort,
    TaskStarted,
)
from coditect.orchestrator.step import StepOutcome, TaskOrder

__all__ = ["DistributedPort", "TaskQueuePort", "follow_events"]

_log = logging.getLogger(__name__)
T = TypeVar("T")


class TaskQueuePort(Protocol):
    """What the coordinator needs from the task queue service (a gRPC client in production)."""

    async def enqueue(self, mission_id: str, task: TaskSpec, body_json: str, attempt: int) -> str:
        """Enqueue one task; returns the message id."""
        ...

    async def get_tasks(self, mission_id: str) -> list[StoredTaskView]:
        """The stored states of a mission's tasks."""
        ...

    async def cancel_tasks(self, mission_id: str, reason: str = "") -> None:
        """Make workers stop the mission's running task and drop its queued ones."""
        ...

    async def put_checkpoint(self, mission_id: str, state_json: str) -> None:
        """Keep the mission's checkpoint (replacing the previous one)."""
        ...

    async def get_checkpoint(self, mission_id: str) -> str:
        """The mission's last checkpoint ("" when none is kept)."""
        ...


@dataclass
class _Branch:
    """Where a mission's tasks land: its branch of ``repo``, and the coordinator's mirror."""

    repo: str
    branch: str
    base: str
    clone: Path
    resumed: bool = False
    head: str = ""
    generated: dict[str, str] = field(default_factory=dict)


@dataclass
class _Waiter:
    run: MissionRun
    task_id: str
    started: bool = False


class DistributedPort(TaskPort):
    """Runs tasks on workers through the task queue service.

    Args:
        tasks: The task queue service (its gRPC client).
        repos: The coordinator's mirrors of mission repositories.
        settle_check_s: How often a running task's stored state is read back, in case its
            notification was lost.
        cancel_timeout_s: How long a cancel waits for the task queue service.
    """

    def __init__(
        self,
        *,
        tasks: TaskQueuePort,
        repos: RepoCache,
        settle_check_s: float = 5.0,
        cancel_timeout_s: float = 10.0,
    ) -> None:
        self.tasks = tasks
        self.repos = repos
        self.settle_check_s = settle_check_s
        self.cancel_timeout_s = cancel_timeout_s
        self._branches: dict[str, _Branch] = {}
        self._waiting: dict[str, _Waiter] = {}  # mission id -> its running task
        self._backstops: dict[str, asyncio.Task[None]] = {}

    def attach(
        self,
        mission_id: str,
        *,
        repo: str,
        branch: str,
        base: str,
        clone: Path,
        resumed: bool,
        generated: dict[str, str] | None = None,
    ) -> None:
        """Run ``mission_id``'s tasks on ``branch`` of ``repo`` (started at ``base``).

        Args:
            mission_id: The mission.
            repo: The user's repository (workers clone it and push to it).
            branch: The mission branch.
            base: The commit the branch started from.
            clone: The coordinator's mirror of ``repo`` (for the final diff).
            resumed: A restarted coordinator drives the mission on: its next task may already
                be queued, running or done.
            generated: The project's generated modules git ignores, sent with every task
                (:mod:`coditect.generated`).
        """
        self._branches[mission_id] = _Branch(
            repo, branch, base, clone, resumed, generated=dict(generated or {})
        )

    # --- submitting and settling ----------------------------------------------------------------
    async def submit(self, run: MissionRun, order: TaskOrder) -> None:
        """Enqueue the task (unless a resumed mission's task is already in the service)."""
        b = self._branches[run.mission_id]
        tid, mid = order.task.id, run.mission_id
        waiter = _Waiter(run, tid)
        self._waiting[mid] = waiter
        if b.resumed:
            views = await self.retrying(lambda: self.tasks.get_tasks(mid))
            view = next((v for v in views if v.record.task_id == tid), None)
            if view is not None:
                if not await self._settle_from(waiter, view):
                    self._start_backstop(waiter)
                return
        body = TaskBody(
            repo=b.repo, branch=b.branch, order=order, base=b.base, generated=b.generated
        )
        await self.retrying(lambda: self.tasks.enqueue(mid, order.task, body.model_dump_json(), 1))
        self._start_backstop(waiter)

    async def notify(self, event: TaskState) -> None:
        """Act on the task queue service's notification of a task's new state."""
        waiter = self._waiting.get(event.mission_id)
        if waiter is None or waiter.task_id != event.task_id:
            return  # another coordinator's mission, or a task already settled
        if event.state is GoalState.RUNNING:
            self._started(waiter, event.agent)
            return
        if event.state.is_terminal:
            views = await self.retrying(lambda: self.tasks.get_tasks(event.mission_id))
            view = next((v for v in views if v.record.task_id == event.task_id), None)
            if view is not None:
                await self._settle_from(waiter, view)

    async def follow(self, events: EventBus) -> None:
        """Turn the task queue service's ``task.state`` notifications into inbox events."""

        async def handle(event: Event) -> None:
            if isinstance(event, TaskState):
                try:
                    await self.notify(event)
                except CoditectError as exc:  # the backstop settles it later
                    _log.warning("cannot read task %s: %s", event.task_id, exc)

        await follow_events(events, "task.state", handle)

    def _started(self, waiter: _Waiter, worker: str) -> None:
        if not waiter.started:
            waiter.started = True
            waiter.run.push(TaskStarted(task_id=waiter.task_id, agent=worker))

    async def _settle_from(self, waiter: _Waiter, view: StoredTaskView) -> bool:
        """Push the outcome of ``view`` if its task has ended; False while it has not."""
        rec = view.record
        if rec.state is GoalState.RUNNING:
            self._started(waiter, rec.worker)
            return False
        if not rec.state.is_terminal:
            return False
        if self._waiting.get(waiter.run.mission_id) is not waiter:
            return True  # settled already (a notification and the backstop raced)
        del self._waiting[waiter.run.mission_id]
        self._stop_backstop(waiter.run.mission_id)
        if view.outcome_json:  # a failed step's outcome too: its usage and ledger count
            outcome = StepOutcome.model_validate_json(view.outcome_json)
        else:
            outcome = StepOutcome(error=rec.error or "the worker gave up", agent=rec.worker)
        self._started(waiter, rec.worker)
        waiter.run.push(TaskFinished(task_id=waiter.task_id, outcome=outcome))
        return True

    def _start_backstop(self, waiter: _Waiter) -> None:
        mid = waiter.run.mission_id
        self._stop_backstop(mid)

        async def check() -> None:
            while self._waiting.get(mid) is waiter:
                await asyncio.sleep(self.settle_check_s)
                try:
                    views = await self.tasks.get_tasks(mid)
                except Exception as exc:  # the service is away: the next round tries again
                    _log.warning("cannot read the tasks of %s: %r", mid, exc)
                    continue
                view = next((v for v in views if v.record.task_id == waiter.task_id), None)
                if view is not None:
                    await self._settle_from(waiter, view)

        self._backstops[mid] = asyncio.get_running_loop().create_task(
            check(), name=f"backstop-{mid}"
        )

    def _stop_backstop(self, mission_id: str) -> None:
        task = self._backstops.pop(mission_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def aclose(self) -> None:
        """Stop every backstop (the service is stopping; its missions stay as they are)."""
        tasks = list(self._backstops.values())
        self._backstops.clear()
        self._waiting.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def cancel(self, run: MissionRun, reason: str) -> None:
        """Tell workers to stop the mission's running task and drop its queued ones."""
        self._waiting.pop(run.mission_id, None)
        self._stop_backstop(run.mission_id)
        await asyncio.wait_for(
            self.tasks.cancel_tasks(run.mission_id, reason), timeout=self.cancel_timeout_s
        )

    # --- the mission's branch -------------------------------------------------------------------
    async def after_step(self, run: MissionRun) -> None:
        """Keep the mission's checkpoint in the task queue service (a restart resumes from it)."""
        b = self._branches[run.mission_id]
        steps = [
            CheckpointStep(kind=s.kind, task_id=s.task_id, error=s.error, tasks=list(s.tasks))
            for s in run.journal
        ]
        state = MissionCheckpoint(base=b.base, plan=run.plan.specs(), steps=steps)
        text = state.model_dump_json()
        await self.retrying(lambda: self.tasks.put_checkpoint(run.mission_id, text))

    async def changes(self, run: MissionRun) -> Changes:
        """The files the branch changed since its base, and the diff."""
        b = self._branches[run.mission_id]
        b.head = await self.repos.fetch_branch(b.clone, b.repo, b.branch, _ref(run.mission_id))
        names = await git(b.clone, "diff", "--name-only", b.base, b.head)
        files = sorted(n for n in names.splitlines() if n)
        diff = await git(b.clone, "diff", b.base, b.head) if files else ""
        return Changes(files=files, diff=diff)

    async def land(self, run: MissionRun, changes: Changes) -> Landing:
        """Nothing to do: the workers pushed each task's commit onto the mission branch."""
        b = self._branches[run.mission_id]
        return Landing(branch=b.branch, commit=b.head)

    async def close(self, run: MissionRun) -> None:
        """Forget the mission and drop the ref its branch was fetched into."""
        self._waiting.pop(run.mission_id, None)
        self._stop_backstop(run.mission_id)
        b = self._branches.pop(run.mission_id, None)
        if b is not None:
            with contextlib.suppress(CoditectError):
                await git(b.clone, "update-ref", "-d", _ref(run.mission_id))

    async def retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """Retry a task queue call through restarts of the service (bounded by the mission timeout)."""
        delay_s = 0.1
        while True:
            try:
                return await call()
            except CoditectError as exc:
                if not exc.retryable:
                    raise
                _log.warning("task queue unavailable, retrying in %.1fs: %s", delay_s, exc)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 2.0)


async def follow_events(
    events: EventBus, pattern: str, handle: Callable[[Event], Awaitable[None]]
) -> None:
    """Hand every event matching ``pattern`` to ``handle`` until the bus is closed.

    A subscription that fails (NATS restarting) is made again with backoff; events published
    meanwhile are missed, which is why nothing that decides a mission depends on one alone.
    """
    await follow_with_backoff(lambda: events.subscribe(pattern), handle, pattern)


async def follow_with_backoff(
    source: Callable[[], AsyncIterator[Event]],
    handle: Callable[[Event], Awaitable[None]],
    what: str,
) -> None:
    """Hand every event of ``source()`` to ``handle``; open it again with backoff when it fails.

    Ends when the source ends or fails for good (a non-retryable error: the bus was closed).
    """
    delay_s = 0.1
    while True:
        try:
            async for event in source():
                delay_s = 0.1
                await handle(event)
            return
        except CoditectError as exc:
            if not exc.retryable:  # the bus was closed
                return
            _log.warning("%s events paused, following again in %.1fs: %s", what, delay_s, exc)
        await asyncio.sleep(delay_s)
        delay_s = min(delay_s * 2, 5.0)


def _ref(mission_id: str) -> str:
    return f"refs/coditect/{mission_id}"
