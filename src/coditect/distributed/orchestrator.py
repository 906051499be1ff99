"""The orchestrator service's logic: plan, create the mission branch, dispatch, collect, finish.

Planning is the one-process code (:class:`Planner`, :class:`GoalManager`, :class:`TaskQueue`);
dispatch goes through the task queue service onto the JetStream work queue, and results come
back as stored task states. A mission's tasks run one at a time, in DAG order, because they
build on each other's commits on one branch (as in one process, where they share a workspace);
different missions run in parallel on different workers.

Mission metadata and events are kept in a :class:`MissionStore` (PostgreSQL in production),
task states and results by the task queue service (Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

import structlog

from coditect.api.errors import NotFoundError
from coditect.bus.base import EventBus
from coditect.distributed.messages import (
    CheckpointStep,
    MissionCheckpoint,
    TaskBody,
    WorkerOutcome,
    branch_for,
)
from coditect.distributed.repos import RepoCache, git
from coditect.domain.events import Event, MissionState, TaskState
from coditect.domain.graph import TaskGraph
from coditect.domain.mission import MissionOutcome, MissionReport, TaskRun, new_mission_id
from coditect.domain.results import CodeChange, TaskResult, TestReport
from coditect.domain.tasks import GoalState, Intent, TaskSpec
from coditect.errors import CoditectError, InputError
from coditect.llm.base import Model
from coditect.logging import bind_mission
from coditect.orchestrator.goals import GoalManager, GoalPolicy
from coditect.orchestrator.outcome import decide_outcome
from coditect.orchestrator.outline import outline
from coditect.orchestrator.planner import Planner
from coditect.orchestrator.repair import repair_tasks, test_failure_summary
from coditect.state.base import MissionStore
from coditect.state.redis_world import TaskStateRecord
from coditect.taskqueue.queue import TaskQueue
from coditect.taskqueue.world_model import WorldModel
from coditect.telemetry import metrics, tracing

__all__ = ["CoordinatorSettings", "MissionCoordinator", "StoredTaskView", "TaskQueuePort"]

_log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class StoredTaskView:
    """A task's state as the task queue service reports it."""

    record: TaskStateRecord
    outcome_json: str = ""


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


@dataclass(frozen=True)
class CoordinatorSettings:
    """Knobs of the orchestrator service.

    Attributes:
        work_dir: Where the orchestrator keeps its clones of mission repositories.
        poll_s: How often task states are read back from the task queue service.
        cancel_timeout_s: How long a cancel waits for the task queue service to pass it on.
        resume_scan: How many of the latest missions :meth:`MissionCoordinator.start` looks
            through for unfinished ones to resume.
        resume_wait_s: How long a call about a mission waits for that resume pass.
    """

    work_dir: Path
    policy: GoalPolicy = field(default_factory=GoalPolicy)
    poll_s: float = 0.05
    cancel_timeout_s: float = 10.0
    resume_scan: int = 1000
    resume_wait_s: float = 30.0


@dataclass
class _Mission:
    report: MissionReport
    goals: GoalManager
    queue: TaskQueue
    base: str
    clone: Path
    plan: list[TaskSpec] = field(default_factory=list)
    steps: list[CheckpointStep] = field(default_factory=list)
    runs: dict[str, TaskRun] = field(default_factory=dict)
    results: list[TaskResult] = field(default_factory=list)
    tests_written: list[str] = field(default_factory=list)
    listeners: list[asyncio.Queue[Event | None]] = field(default_factory=list)
    driver: asyncio.Task[None] | None = None
    started: float = field(default_factory=time.monotonic)


class MissionCoordinator:
    """Plans missions and drives them through a task queue service."""

    def __init__(
        self,
        *,
        model: Model,
        store: MissionStore,
        tasks: TaskQueuePort,
        settings: CoordinatorSettings,
        planner: Planner | None = None,
        events: EventBus | None = None,
    ) -> None:
        """Wire the coordinator to its model, stores and task queue.

        Args:
            model: The planner's model.
            store: Mission reports and event history (PostgreSQL in production).
            tasks: The task queue service.
            settings: Knobs.
            planner: The planner (default: one on ``model``).
            events: Where workers publish their agents' events (agent.think / act / learn);
                those of this coordinator's running missions are kept and streamed by
                :meth:`watch`.
        """
        self.model = model
        self.events = events
        self.store = store
        self.tasks = tasks
        self.settings = settings
        self.planner = planner or Planner(model)
        self.repos = RepoCache(settings.work_dir / "repos")
        self._missions: dict[str, _Mission] = {}
        self._outlines: dict[Path, tuple[list[str], bool]] = {}
        self._relay: asyncio.Task[None] | None = None
        self._resuming: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self, *, resume: bool = True) -> None:
        """Follow the workers' agent events and resume unfinished missions (call once).

        Args:
            resume: Drive on the missions that the store still has as RUNNING (an earlier
                orchestrator stopped or died while they ran), from their checkpoints.
        """
        loop = asyncio.get_running_loop()
        if self.events is not None and self._relay is None:
            self._relay = loop.create_task(self._relay_agent_events(), name="agent-events")
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
        request = request.strip()
        if not request:
            raise InputError("the request is empty", hint='say what to change, e.g. "Add ..."')
        if not repo:
            raise InputError("no repository given", hint="--repo <git URL or path>")
        repo = self.repos.check_repo(repo)
        mid = new_mission_id()
        branch = branch_for(mid)
        base = await self.repos.resolve(repo, base_ref)
        mirror = await self.repos.mirror(repo, base)
        report, graph = await self._plan(mid, request, repo, await self.repos.tree(mirror, base))
        if plan_only:
            return report, graph, base
        await self.repos.push_branch(mirror, repo, base, branch)
        report.branch = branch
        m = _Mission(
            report=report,
            goals=GoalManager(graph, self.settings.policy),
            queue=TaskQueue(),
            base=base,
            clone=mirror,
            plan=graph.specs(),
        )
        m.queue.push_graph(graph)
        for task in graph:
            m.runs[task.id] = TaskRun(
                id=task.id,
                intent=task.intent,
                description=task.description,
                depends_on=list(task.depends_on),
            )
        self._sync(m)
        self._missions[mid] = m
        await self.store.save_report(report)
        await self._emit(m, MissionState(mission_id=mid, state=GoalState.RUNNING))
        metrics.mission_started()
        m.driver = asyncio.get_running_loop().create_task(self._drive(m), name=f"mission-{mid}")
        return report, graph, base

    async def get(self, mission_id: str) -> MissionReport:
        """The mission's report (live while it runs).

        Raises:
            NotFoundError: No such mission.
        """
        await self._resumed()
        m = self._missions.get(mission_id)
        if m is not None:
            return m.report
        report = await self.store.get_report(mission_id)
        if report is None:
            raise NotFoundError(f"no mission {mission_id!r}")
        return report

    async def watch(self, mission_id: str) -> AsyncIterator[Event]:
        """The mission's events from the start, then live until it ends."""
        await self._resumed()
        m = self._missions.get(mission_id)
        live: asyncio.Queue[Event | None] = asyncio.Queue()
        if m is not None:
            m.listeners.append(live)
        try:
            stored = await self.store.list_events(mission_id)
            if m is None and not stored and await self.store.get_report(mission_id) is None:
                raise NotFoundError(f"no mission {mission_id!r}")
            seen = set()
            for event in stored:
                seen.add(event.event_id)
                yield event
            if m is None or m.driver is None or m.driver.done():
                return
            while True:
                item = await live.get()
                if item is None:
                    return
                if item.event_id not in seen:
                    yield item
        finally:
            if m is not None and live in m.listeners:
                m.listeners.remove(live)

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
            await asyncio.wait_for(
                self.tasks.cancel_tasks(mission_id, reason or "cancelled by the user"),
                timeout=self.settings.cancel_timeout_s,
            )
        except (CoditectError, TimeoutError) as exc:
            _log.warning("mission %s: could not stop its running task: %s", mission_id, exc)
            m.report.notes.append(f"cancel: the running task may not have stopped ({exc})")
        m.driver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await m.driver
        return True

    async def wait(self, mission_id: str) -> MissionReport:
        """Wait for a mission started by this coordinator to end; its final report."""
        m = self._missions[mission_id]
        if m.driver is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(m.driver)
        return m.report

    async def aclose(self) -> None:
        """Stop driving missions; they stay RUNNING in the store and the next start resumes them."""
        self._closing = True
        for task in (self._relay, self._resuming):
            if task is not None:
                task.cancel()
                await asyncio.wait([task])
        for m in list(self._missions.values()):
            if m.driver is not None and not m.driver.done():
                m.driver.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await m.driver

    # --- stages --------------------------------------------------------------------------------
    async def _outline(self, tree: Path) -> tuple[list[str], bool]:
        """The planner's view of a base commit's files, computed once per commit."""
        cached = self._outlines.get(tree)
        if cached is None:
            world = WorldModel(tree)
            await asyncio.to_thread(world.scan)
            files = sorted(world.snapshot())
            has_tests = any(p.rsplit("/", 1)[-1].startswith("test_") for p in files)
            cached = (await asyncio.to_thread(outline, tree, files), has_tests)
            if len(self._outlines) >= 64:
                self._outlines.pop(next(iter(self._outlines)))
            self._outlines[tree] = cached
        return cached

    @tracing.traced("orchestrator.plan")
    async def _plan(
        self, mid: str, request: str, repo: str, tree: Path
    ) -> tuple[MissionReport, TaskGraph]:
        lines, has_tests = await self._outline(tree)
        t0 = time.monotonic()
        outcome = await self.planner.plan(request, lines, has_tests=has_tests)
        report = MissionReport(mission_id=mid, request=request, repo=repo, model=self.model.name)
        report.stage_s["plan"] = round(time.monotonic() - t0, 3)
        report.plan_source = outcome.source
        report.tokens.input, report.tokens.output = (
            outcome.usage.input_tokens,
            outcome.usage.output_tokens,
        )
        if outcome.errors:
            report.notes.append("planner: " + "; ".join(outcome.errors))
        return report, outcome.graph

    @tracing.traced("orchestrator.mission")
    async def _drive(self, m: _Mission) -> None:
        report = m.report
        tracing.set_attributes({"coditect.mission_id": report.mission_id})
        # Each mission is driven by its own asyncio task: the ids stay on its log lines only.
        structlog.contextvars.bind_contextvars(mission_id=report.mission_id)
        try:
            left_s = self.settings.policy.mission_timeout_s - (time.monotonic() - m.started)
            await asyncio.wait_for(self._execute(m), timeout=max(left_s, 0.0))
            await self._finish(m)
        except TimeoutError:
            self._end(report, MissionOutcome.FAILED, "the mission timed out")
        except asyncio.CancelledError:
            if self._closing:  # the orchestrator stops: the mission stays RUNNING, to resume
                raise
            m.goals.cancel()
            self._end(
                report, MissionOutcome.CANCELLED, "cancelled; the mission branch is left as it was"
            )
            await asyncio.shield(self._close(m))
            raise
        except CoditectError as exc:
            self._end(report, MissionOutcome.FAILED, str(exc))
        except Exception as exc:  # a bug must still end the mission visibly
            _log.exception("mission %s crashed", report.mission_id)
            self._end(report, MissionOutcome.FAILED, f"internal error: {exc!r}")
        await self._close(m)

    async def _execute(self, m: _Mission) -> None:
        await self._save_checkpoint(m)
        while not m.goals.done:
            task = m.queue.pop_ready()
            if task is None:
                break
            with bind_mission(m.report.mission_id, task_id=task.id):
                await self._run_task(m, task)
            self._sync(m)
            await self._save_checkpoint(m)
            await self.store.save_report(m.report)
        state, reason = m.goals.mission_state()
        if state is GoalState.COMPLETE:
            self._end(m.report, MissionOutcome.SUCCESS, "")
        else:
            self._end(
                m.report,
                MissionOutcome.FAILED,
                reason or "no task is ready but the plan is not complete",
            )

    @tracing.traced("orchestrator.task")
    async def _run_task(self, m: _Mission, task: TaskSpec) -> None:
        mid = m.report.mission_id
        tracing.set_attributes({"coditect.mission_id": mid, "coditect.task_id": task.id})
        m.goals.start(task.id)
        body = TaskBody(
            mission_id=mid,
            request=m.report.request,
            repo=m.report.repo,
            branch=m.report.branch,
            task=task,
            upstream=list(m.results),
        )
        views = await self._retrying(lambda: self.tasks.get_tasks(mid))
        if not any(v.record.task_id == task.id for v in views):  # else: resumed, already queued
            await self._retrying(lambda: self.tasks.enqueue(mid, task, body.model_dump_json(), 1))
        running_seen = False
        while True:
            await asyncio.sleep(self.settings.poll_s)
            views = await self._retrying(lambda: self.tasks.get_tasks(mid))
            view = next((v for v in views if v.record.task_id == task.id), None)
            if view is None:
                continue
            rec = view.record
            if rec.state is GoalState.RUNNING and not running_seen:
                running_seen = True
                m.runs[task.id].agent = rec.worker
                await self._emit(
                    m,
                    TaskState(
                        mission_id=mid, task_id=task.id, agent=rec.worker, state=GoalState.RUNNING
                    ),
                )
            elif rec.state is GoalState.COMPLETE and view.outcome_json:
                await self._settle(
                    m, task, WorkerOutcome.model_validate_json(view.outcome_json), rec.worker
                )
                return
            elif rec.state is GoalState.FAILED:
                await self._fail(m, task, rec.error or "the worker gave up")
                return

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
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

    async def _settle(self, m: _Mission, task: TaskSpec, out: WorkerOutcome, worker: str) -> None:
        tr = m.runs[task.id]
        tr.agent = out.agent or worker
        tr.attempts, tr.duration_s = out.attempts, out.duration_s
        tr.input_tokens, tr.output_tokens = out.input_tokens, out.output_tokens
        report = m.report
        report.tokens.input += out.input_tokens
        report.tokens.output += out.output_tokens
        stage = {"analyze": "analyze", "code": "code", "test": "test"}[task.capability]
        report.stage_s[stage] = round(report.stage_s.get(stage, 0.0) + out.duration_s, 3)
        report.violations.extend(out.violations)
        result = out.result
        m.results.append(result)
        if isinstance(result, CodeChange) and task.intent is Intent.WRITE_TESTS:
            m.tests_written.extend(p for p in result.paths if p not in m.tests_written)
        if isinstance(result, TestReport):
            t = report.tests
            t.passed, t.failed, t.errors, t.skipped = (
                result.passed,
                result.failed,
                result.errors,
                result.skipped,
            )
            if not result.ok:
                await self._fail(m, task, test_failure_summary(result))
                if m.goals.can_repair and m.goals.state(task.id) is GoalState.FAILED:
                    self._add_repair_round(m, task, result)
                return
        m.goals.complete(task.id)
        m.queue.complete(task.id)
        m.steps.append(CheckpointStep(kind="complete", task_id=task.id))
        await self._emit(
            m,
            TaskState(
                mission_id=report.mission_id,
                task_id=task.id,
                agent=tr.agent,
                state=GoalState.COMPLETE,
                attempt=tr.attempts,
            ),
        )

    async def _fail(self, m: _Mission, task: TaskSpec, error: str) -> None:
        m.runs[task.id].error = error
        m.goals.fail(task.id, error)
        m.queue.fail(task.id)
        m.steps.append(CheckpointStep(kind="fail", task_id=task.id, error=error))
        await self._emit(
            m,
            TaskState(
                mission_id=m.report.mission_id,
                task_id=task.id,
                agent=m.runs[task.id].agent,
                state=GoalState.FAILED,
                error=error,
            ),
        )

    def _add_repair_round(self, m: _Mission, failed: TaskSpec, result: TestReport) -> None:
        fix, retest = repair_tasks(
            request=m.report.request,
            failed=failed,
            report=result,
            tests_written=m.tests_written,
            round_no=m.goals.repairs + 1,
        )
        m.goals.supersede(failed.id, [fix, retest])
        m.queue.push(fix)
        m.queue.push(retest)
        m.steps.append(CheckpointStep(kind="repair", task_id=failed.id, tasks=[fix, retest]))
        m.runs[failed.id].superseded_by = retest.id
        for t in (fix, retest):
            m.runs[t.id] = TaskRun(
                id=t.id, intent=t.intent, description=t.description, depends_on=list(t.depends_on)
            )

    async def _finish(self, m: _Mission) -> None:
        report = m.report
        report.tests.written_by_coditect = list(m.tests_written)
        last_tests = next((r for r in reversed(m.results) if isinstance(r, TestReport)), None)
        if report.status is not MissionOutcome.SUCCESS and last_tests is None:
            return  # nothing ran that could make the change usable
        head = await self.repos.fetch_branch(m.clone, report.repo, report.branch, self._ref(m))
        names = await git(m.clone, "diff", "--name-only", m.base, head)
        report.changed_files = sorted(n for n in names.splitlines() if n)
        verdict = decide_outcome(
            status=report.status,
            reason=report.reason,
            changed=report.changed_files,
            tests_written=m.tests_written,
            last_tests=last_tests,
        )
        self._end(report, verdict.outcome, verdict.reason)
        report.evidence.extend(verdict.evidence)
        if report.status not in (MissionOutcome.SUCCESS, MissionOutcome.UNVERIFIED):
            return
        report.diff = await git(m.clone, "diff", m.base, head)
        report.commit = head

    async def _relay_agent_events(self) -> None:
        """Keep and stream the agent events of running missions (until the bus closes)."""
        assert self.events is not None
        delay_s = 0.1
        while True:
            try:
                async for event in self.events.subscribe("agent.>"):
                    delay_s = 0.1
                    m = self._missions.get(event.mission_id)
                    if m is None:  # another orchestrator's mission
                        continue
                    # Late ones (the mission ended meanwhile) are still kept, not streamed.
                    try:
                        await self._emit(m, event)
                    except CoditectError as exc:  # the event is lost, the mission goes on
                        _log.warning("could not keep %s of %s: %s", event.type, event.task_id, exc)
                return
            except CoditectError as exc:
                if not exc.retryable:  # the bus was closed
                    return
                _log.warning("agent events lost, resubscribing in %.1fs: %s", delay_s, exc)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 5.0)

    # --- checkpoints and resume -----------------------------------------------------------------
    async def _save_checkpoint(self, m: _Mission) -> None:
        mid = m.report.mission_id
        state = MissionCheckpoint(base=m.base, plan=m.plan, steps=m.steps).model_dump_json()
        await self._retrying(lambda: self.tasks.put_checkpoint(mid, state))

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
                self._end(report, MissionOutcome.FAILED, f"cannot resume the mission: {exc}")
                with contextlib.suppress(CoditectError):
                    await self.store.save_report(report)

    async def _resume(self, report: MissionReport) -> None:
        """Rebuild a mission from its report, checkpoint and stored task states; drive it on."""
        mid = report.mission_id
        raw = await self._retrying(lambda: self.tasks.get_checkpoint(mid))
        if not raw:
            raise CoditectError("the task queue service keeps no checkpoint of it", retryable=False)
        cp = MissionCheckpoint.model_validate_json(raw)
        graph = TaskGraph(cp.plan)
        m = _Mission(
            report=report,
            goals=GoalManager(graph, self.settings.policy),
            queue=TaskQueue(),
            base=cp.base,
            clone=await self.repos.mirror(report.repo, cp.base),
            plan=list(cp.plan),
            steps=list(cp.steps),
            runs={t.id: t for t in report.tasks},
        )
        m.queue.push_graph(graph)
        views = {
            v.record.task_id: v for v in await self._retrying(lambda: self.tasks.get_tasks(mid))
        }
        for step in cp.steps:
            if step.kind == "repair":
                m.goals.supersede(step.task_id, step.tasks)
                for t in step.tasks:
                    m.queue.push(t)
                continue
            view = views.get(step.task_id)
            if view is not None and view.outcome_json:  # as _settle kept it
                result = WorkerOutcome.model_validate_json(view.outcome_json).result
                m.results.append(result)
                if isinstance(result, CodeChange) and m.goals.graph[step.task_id].intent is (
                    Intent.WRITE_TESTS
                ):
                    m.tests_written.extend(p for p in result.paths if p not in m.tests_written)
            elif step.kind == "complete":
                raise CoditectError(f"the result of task {step.task_id} is no longer stored")
            m.goals.start(step.task_id)
            if step.kind == "fail":
                m.goals.fail(step.task_id, step.error)
                m.queue.fail(step.task_id)
            else:
                m.goals.complete(step.task_id)
                m.queue.complete(step.task_id)
        elapsed_s = (datetime.now(UTC) - report.started_at).total_seconds()
        m.started = time.monotonic() - max(elapsed_s, 0.0)
        report.notes.append(f"resumed after {len(cp.steps)} step(s) by a new orchestrator")
        self._sync(m)
        self._missions[mid] = m
        _log.info("resuming mission %s after %d step(s)", mid, len(cp.steps))
        await self._emit(
            m,
            MissionState(
                mission_id=mid, state=GoalState.RUNNING, reason="resumed by a new orchestrator"
            ),
        )
        m.driver = asyncio.get_running_loop().create_task(self._drive(m), name=f"mission-{mid}")

    # --- helpers -------------------------------------------------------------------------------
    async def _emit(self, m: _Mission, event: Event) -> None:
        await self.store.append_events([event])
        for q in list(m.listeners):
            q.put_nowait(event)

    def _sync(self, m: _Mission) -> None:
        for task in m.goals.graph:
            tr = m.runs[task.id]
            tr.status = m.goals.state(task.id)
            if not tr.error:
                tr.error = m.goals.error(task.id)
        m.report.tasks = list(m.runs.values())

    @staticmethod
    def _end(report: MissionReport, status: MissionOutcome, reason: str) -> None:
        report.status = status
        report.reason = reason

    async def _close(self, m: _Mission) -> None:
        metrics.mission_ended(m.report.status.value)
        self._sync(m)
        m.report.wall_s = round(time.monotonic() - m.started, 3)
        state = {
            MissionOutcome.SUCCESS: GoalState.COMPLETE,
            MissionOutcome.CANCELLED: GoalState.CANCELLED,
        }.get(m.report.status, GoalState.FAILED)
        try:
            await self.store.save_report(m.report)
            await self._emit(
                m, MissionState(mission_id=m.report.mission_id, state=state, reason=m.report.reason)
            )
        finally:
            for q in list(m.listeners):
                q.put_nowait(None)
            with contextlib.suppress(CoditectError):
                await git(m.clone, "update-ref", "-d", self._ref(m))

    @staticmethod
    def _ref(m: _Mission) -> str:
        return f"refs/coditect/{m.report.mission_id}"
