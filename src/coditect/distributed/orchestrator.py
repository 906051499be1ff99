"""The orchestrator service: missions submitted over gRPC, driven by the one coordinator.

The mission logic is :class:`~coditect.orchestrator.coordinator.Coordinator`, the same as in
one process; its tasks run on workers through the
:class:`~coditect.distributed.port.DistributedPort`. What this service adds is what a
long-running server needs: a mission branch per mission in the user's repository, live
watchers of each mission's events, the workers' agent events relayed into the mission's
history, cancel over the API, and resuming the missions an earlier orchestrator left RUNNING
(from the checkpoint the port keeps after each step).

Mission metadata, events and the cost ledger are kept in the SQL database (PostgreSQL in
production); task states and results by the task queue service (Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog

from coditect.aio import cancel_and_wait
from coditect.bus.base import EventBus
from coditect.distributed.messages import MissionCheckpoint, branch_for
from coditect.distributed.port import DistributedPort, TaskQueuePort
from coditect.distributed.relay import MissionFilter, relay_events
from coditect.distributed.repos import RepoCache
from coditect.domain.events import Event
from coditect.domain.graph import TaskGraph
from coditect.domain.mission import MissionOutcome, MissionReport, new_mission_id
from coditect.domain.results import TaskResult
from coditect.errors import CoditectError, InputError, NotFoundError
from coditect.generated import generated_note
from coditect.llm.base import Model
from coditect.llm.ledger import Ledger
from coditect.orchestrator.coordinator import Coordinator, CoordinatorPolicy, EventSink
from coditect.orchestrator.planner import Planner
from coditect.orchestrator.port import MissionRun
from coditect.orchestrator.request import check_request
from coditect.orchestrator.step import StepOutcome
from coditect.reuse import Reuse
from coditect.state.base import MissionStore
from coditect.telemetry import metrics, tracing

__all__ = ["CoordinatorSettings", "MissionCoordinator", "OrchestratorService", "TaskQueuePort"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoordinatorSettings:
    """Knobs of the orchestrator service.

    Attributes:
        work_dir: Where the orchestrator keeps its clones of mission repositories.
        settle_check_s: How often a running task's state is read back in case the task queue
            service's notification of its end was lost.
        cancel_timeout_s: How long a cancel waits for the task queue service to pass it on.
        resume_scan: How many of the latest missions :meth:`OrchestratorService.start` looks
            through for unfinished ones to resume.
        resume_wait_s: How long a call about a mission waits for that resume pass.
        events_consumer: The durable consumer the workers' agent events are read through
            (its position outlives this process: the next orchestrator reads on from it).
        mission: The coordinator's knobs (goals, budgets, reuse), as in one process.
    """

    work_dir: Path
    mission: CoordinatorPolicy = field(default_factory=CoordinatorPolicy)
    settle_check_s: float = 5.0
    cancel_timeout_s: float = 10.0
    resume_scan: int = 1000
    resume_wait_s: float = 30.0
    events_consumer: str = "orchestrator-agent-events"


@dataclass
class _Mission:
    run: MissionRun
    listeners: list[asyncio.Queue[Event | None]] = field(default_factory=list)
    driver: asyncio.Task[None] | None = None


class _Listeners(EventSink):
    """Delivers each mission's events to its live watchers."""

    def __init__(self, missions: dict[str, _Mission]) -> None:
        self.missions = missions

    async def __call__(self, event: Event) -> None:
        m = self.missions.get(event.mission_id)
        if m is not None:
            for q in list(m.listeners):
                q.put_nowait(event)


class OrchestratorService:
    """Plans missions, drives them on workers, and answers the Orchestrator API."""

    def __init__(
        self,
        *,
        model: Model,
        store: MissionStore,
        tasks: TaskQueuePort,
        settings: CoordinatorSettings,
        planner: Planner | None = None,
        events: EventBus | None = None,
        ledger: Ledger | None = None,
        reuse: Reuse | None = None,
    ) -> None:
        """Wire the service to its model, stores and task queue.

        Args:
            model: The planner's model.
            store: Mission reports and event history (PostgreSQL in production).
            tasks: The task queue service.
            settings: Knobs.
            planner: The planner (default: one on ``model``).
            events: The events bus: the workers' agent events (agent.think / act / learn),
                kept and streamed by :meth:`watch`, and the task queue service's task state
                notifications.
            ledger: The cost ledger (``coditect costs`` reads it).
            reuse: The shared reuse stores (None: off).
        """
        self.model = model
        self.events = events
        self.store = store
        self.tasks = tasks
        self.settings = settings
        self.repos = RepoCache(settings.work_dir / "repos")
        self.port = DistributedPort(
            tasks=tasks,
            repos=self.repos,
            settle_check_s=settings.settle_check_s,
            cancel_timeout_s=settings.cancel_timeout_s,
        )
        self._missions: dict[str, _Mission] = {}
        sink = _Listeners(self._missions)
        self.coordinator = Coordinator(
            model=model, port=self.port, store=store, policy=settings.mission, planner=planner,
            ledger=ledger, reuse=reuse, sink=sink,
        )  # fmt: skip
        self._background: list[asyncio.Task[None]] = []
        self._resuming: asyncio.Task[None] | None = None

    async def start(self, *, resume: bool = True) -> None:
        """Follow the workers' events and resume unfinished missions (call once).

        Args:
            resume: Drive on the missions that the store still has as RUNNING (an earlier
                orchestrator stopped or died while they ran), from their checkpoints.
        """
        loop = asyncio.get_running_loop()
        if self.events is not None and not self._background:
            self._background = [
                loop.create_task(self._relay_agent_events(self.events), name="agent-events"),
                loop.create_task(self.port.follow(self.events), name="task-states"),
            ]
        if resume and self._resuming is None:
            self._resuming = loop.create_task(self._resume_all(), name="resume-missions")

    # --- API ---------------------------------------------------------------------------------
    async def submit(
        self, request: str, repo: str, *, base_ref: str = "", plan_only: bool = False
    ) -> tuple[MissionReport, TaskGraph, str]:
        """Plan a mission and (unless ``plan_only``) create its branch and start it.

        Returns:
            The report (status RUNNING), the plan and the base commit.

        Raises:
            InputError: Empty request, or a repository that cannot be cloned.
        """
        request = check_request(request, self.model)
        if not repo:
            raise InputError("no repository given", hint="--repo <git URL or path>")
        repo = self.repos.check_repo(repo)
        mid = new_mission_id()
        branch = branch_for(mid)
        base = await self.repos.resolve(repo, base_ref)
        mirror = await self.repos.mirror(repo, base)
        tree = await self.repos.tree(mirror, base)
        report = MissionReport(mission_id=mid, request=request, repo=repo, model=self.model.name)
        run = await self._plan(report, tree, record=not plan_only)
        if plan_only:
            return report, run.plan, base
        await self.repos.push_branch(mirror, repo, base, branch)
        report.branch = branch
        # What the checkout generated and git ignores goes to the workers with every task.
        generated = await self.repos.generated(repo, tree)
        if note := generated_note(sorted(generated)):
            report.notes.append(note)
        self.port.attach(
            mid,
            repo=repo,
            branch=branch,
            base=base,
            clone=mirror,
            resumed=False,
            generated=generated,
        )
        # The checkpoint exists before the first task is enqueued: an orchestrator killed while
        # that task runs leaves the next one what it needs to resume the mission.
        await self.port.after_step(run)
        self._drive(run)
        metrics.mission_started()
        return report, run.plan, base

    @tracing.traced("orchestrator.plan")
    async def _plan(self, report: MissionReport, tree: Path, *, record: bool) -> MissionRun:
        return await self.coordinator.plan(report, tree, immutable=True, record=record)

    async def get(self, mission_id: str) -> MissionReport:
        """The mission's report (live while it runs).

        Raises:
            NotFoundError: No such mission.
        """
        await self._resumed()
        m = self._missions.get(mission_id)
        if m is not None:
            return m.run.report
        report = await self.store.get_report(mission_id)
        if report is None:
            raise NotFoundError(f"no mission {mission_id!r}")
        return report

    async def watch(self, mission_id: str) -> AsyncIterator[Event]:
        """The mission's events from the start, then live until it ends."""
        async for _seq, event in self.watch_from(mission_id):
            yield event

    async def watch_from(
        self, mission_id: str, after_seq: int = 0
    ) -> AsyncIterator[tuple[int, Event]]:
        """The mission's stored events after position ``after_seq``, then live until it ends.

        Each event comes with its position in the stored history, so a watcher that lost the
        stream (this orchestrator restarted) goes on from the last one it saw, on the next
        orchestrator, without gaps or repeats. The history is read from the store; a new
        event only wakes the reader up.

        Raises:
            NotFoundError: No such mission.
            CoditectError: This orchestrator is stopping while the mission runs on
                (retryable: watch again, on the orchestrator that resumes it).
        """
        await self._resumed()
        m = self._missions.get(mission_id)
        bell: asyncio.Queue[Event | None] = asyncio.Queue()
        if m is not None:
            m.listeners.append(bell)
        try:
            last, first = after_seq, True
            while True:
                live = m is not None and m.driver is not None and not m.driver.done()
                rows = await self.store.events_after(mission_id, last)
                if first and not rows and m is None:
                    if await self.store.get_report(mission_id) is None:
                        raise NotFoundError(f"no mission {mission_id!r}")
                first = False
                for seq, event in rows:
                    last = seq
                    yield seq, event
                if not live:
                    if m is not None and m.run.detached:
                        raise CoditectError(
                            f"the orchestrator is stopping; mission {mission_id} goes on",
                            retryable=True,
                            hint="watch again: the next orchestrator resumes the mission",
                        )
                    return
                await bell.get()
                while not bell.empty():  # one read of the store serves a burst of events
                    bell.get_nowait()
        finally:
            if m is not None and bell in m.listeners:
                m.listeners.remove(bell)

    async def cancel(self, mission_id: str, reason: str = "") -> bool:
        """Cancel a running mission; False when it had already ended."""
        await self._resumed()
        m = self._missions.get(mission_id)
        if m is None:
            await self.get(mission_id)  # NotFoundError for an unknown id
            return False
        if m.driver is None or m.driver.done():
            return False
        # Workers first, so that a task already leased stops before it pushes its change.
        try:
            await self.port.cancel(m.run, reason or "cancelled by the user")
        except (CoditectError, TimeoutError) as exc:
            _log.warning("mission %s: could not stop its running task: %s", mission_id, exc)
            m.run.report.notes.append(f"cancel: the running task may not have stopped ({exc})")
        m.driver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await m.driver
        return True

    async def wait(self, mission_id: str) -> MissionReport:
        """Wait for a mission started by this service to end; its final report."""
        m = self._missions[mission_id]
        if m.driver is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(m.driver)
        return m.run.report

    async def aclose(self) -> None:
        """Stop driving missions; they stay RUNNING in the store and the next start resumes them."""
        await cancel_and_wait(*(t for t in [*self._background, self._resuming] if t is not None))
        for m in list(self._missions.values()):
            if m.driver is not None and not m.driver.done():
                m.run.detached = True
                m.driver.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await m.driver
        await self.port.aclose()

    # --- driving --------------------------------------------------------------------------------
    def _drive(self, run: MissionRun, *, reason: str = "") -> None:
        m = _Mission(run=run)
        self._missions[run.mission_id] = m
        m.driver = asyncio.get_running_loop().create_task(
            self._drive_one(m, reason), name=f"mission-{run.mission_id}"
        )

    @tracing.traced("orchestrator.mission")
    async def _drive_one(self, m: _Mission, reason: str) -> None:
        mid = m.run.mission_id
        tracing.set_attributes({"coditect.mission_id": mid})
        # Each mission is driven by its own asyncio task: the ids stay on its log lines only.
        structlog.contextvars.bind_contextvars(mission_id=mid)
        try:
            await self.coordinator.drive(m.run, reason=reason)
        finally:
            if not m.run.detached:
                metrics.mission_ended(m.run.report.status.value)
            for q in list(m.listeners):
                q.put_nowait(None)

    async def _relay_agent_events(self, events: EventBus) -> None:
        """Keep and stream the agent events of this database's missions (until the bus closes).

        Read through a durable consumer where the bus has them, so that the events workers
        published while no orchestrator ran are kept by the next one (see
        :mod:`coditect.distributed.relay`).
        """

        async def stored(mission_id: str) -> bool:
            report = await self.store.get_report(mission_id)
            return report is not None and report.mission_id == mission_id

        ours = MissionFilter(lambda mid: mid in self._missions, stored)

        async def keep(event: Event) -> None:
            await self._resumed()  # a mission being resumed is driven here in a moment
            if not await ours(event.mission_id):  # another database's
                return
            # Late ones (the mission ended meanwhile) are still kept, not streamed.
            await self.coordinator.emit(event)

        await relay_events(events, "agent.>", keep, durable=self.settings.events_consumer)

    # --- resume ---------------------------------------------------------------------------------
    async def _resumed(self) -> None:
        """Wait (bounded) for the resume pass of :meth:`start`.

        A resumed mission is then answered live, from memory, not from its stored report.
        """
        task = self._resuming
        if task is not None and not task.done():
            await asyncio.wait([task], timeout=self.settings.resume_wait_s)

    async def _resume_all(self) -> None:
        """Resume the missions the store has as RUNNING (an earlier orchestrator stopped)."""
        try:
            reports = await self.store.list_reports(limit=self.settings.resume_scan)
        except CoditectError as exc:
            _log.error("cannot list the missions to resume: %s", exc)
            return
        for report in reports:
            if report.status is not MissionOutcome.RUNNING or report.mission_id in self._missions:
                continue
            try:
                await self._resume(report)
            except Exception as exc:  # e.g. no checkpoint, or the repository is gone
                _log.warning("mission %s cannot be resumed: %r", report.mission_id, exc)
                report.status = MissionOutcome.FAILED
                report.reason = f"cannot resume the mission: {exc}"
                with contextlib.suppress(CoditectError):
                    await self.store.save_report(report)

    async def _resume(self, report: MissionReport) -> None:
        """Rebuild a mission from its report, checkpoint and stored outcomes; drive it on."""
        mid = report.mission_id
        raw = await self.port.retrying(lambda: self.tasks.get_checkpoint(mid))
        if not raw:
            raise CoditectError("the task queue service keeps no checkpoint of it", retryable=False)
        cp = MissionCheckpoint.model_validate_json(raw)
        # The task queue service keeps each task's outcome; the checkpoint keeps the decisions.
        views = await self.port.retrying(lambda: self.tasks.get_tasks(mid))
        results: dict[str, TaskResult] = {}
        for v in views:
            if v.outcome_json:
                result = StepOutcome.model_validate_json(v.outcome_json).result
                if result is not None:
                    results[v.record.task_id] = result
        cp = cp.model_copy(update={"results": results})
        run = self.coordinator.restore(report, cp, baseline={})
        elapsed_s = (datetime.now(UTC) - report.started_at).total_seconds()
        run.started = time.monotonic() - max(elapsed_s, 0.0)
        report.notes.append(f"resumed after {len(cp.steps)} step(s) by a new orchestrator")
        clone = await self.repos.mirror(report.repo, cp.base)
        generated = await self.repos.generated(report.repo, await self.repos.tree(clone, cp.base))
        self.port.attach(
            mid,
            repo=report.repo,
            branch=report.branch,
            base=cp.base,
            clone=clone,
            resumed=True,
            generated=generated,
        )
        _log.info("resuming mission %s after %d step(s)", mid, len(cp.steps))
        self._drive(run, reason="resumed by a new orchestrator")


#: The name this service had before the coordinator was shared by both modes.
MissionCoordinator = OrchestratorService
