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
from pathlib import Path
from typing import Protocol, TypeVar

from coditect.api.errors import NotFoundError
from coditect.distributed.messages import TaskBody, WorkerOutcome, branch_for
from coditect.distributed.repos import RepoCache, git
from coditect.domain.events import Event, MissionState, TaskState
from coditect.domain.graph import TaskGraph
from coditect.domain.mission import MissionOutcome, MissionReport, TaskRun, new_mission_id
from coditect.domain.results import CodeChange, TaskResult, TestReport
from coditect.domain.tasks import GoalState, Intent, TaskSpec
from coditect.errors import CoditectError, InputError
from coditect.llm.base import Model
from coditect.orchestrator.goals import GoalManager, GoalPolicy
from coditect.orchestrator.outline import outline
from coditect.orchestrator.planner import Planner
from coditect.orchestrator.repair import repair_tasks, test_failure_summary
from coditect.state.base import MissionStore
from coditect.state.redis_world import TaskStateRecord
from coditect.taskqueue.queue import TaskQueue
from coditect.taskqueue.world_model import WorldModel

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


@dataclass(frozen=True)
class CoordinatorSettings:
    """Knobs of the orchestrator service.

    Attributes:
        work_dir: Where the orchestrator keeps its clones of mission repositories.
        poll_s: How often task states are read back from the task queue service.
    """

    work_dir: Path
    policy: GoalPolicy = field(default_factory=GoalPolicy)
    poll_s: float = 0.05


@dataclass
class _Mission:
    report: MissionReport
    goals: GoalManager
    queue: TaskQueue
    base: str
    clone: Path
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
    ) -> None:
        self.model = model
        self.store = store
        self.tasks = tasks
        self.settings = settings
        self.planner = planner or Planner(model)
        self.repos = RepoCache(settings.work_dir / "repos")
        self._missions: dict[str, _Mission] = {}
        self._outlines: dict[Path, tuple[list[str], bool]] = {}

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
        m.driver = asyncio.get_running_loop().create_task(self._drive(m), name=f"mission-{mid}")
        return report, graph, base

    async def get(self, mission_id: str) -> MissionReport:
        """The mission's report (live while it runs).

        Raises:
            NotFoundError: No such mission.
        """
        m = self._missions.get(mission_id)
        if m is not None:
            return m.report
        report = await self.store.get_report(mission_id)
        if report is None:
            raise NotFoundError(f"no mission {mission_id!r}")
        return report

    async def watch(self, mission_id: str) -> AsyncIterator[Event]:
        """The mission's events from the start, then live until it ends."""
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
        m = self._missions.get(mission_id)
        if m is None:
            await self.get(mission_id)  # NotFoundError for an unknown id
            return False
        if m.driver is None or m.driver.done():
            return False
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
        """Cancel running missions (they are stored as CANCELLED)."""
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

    async def _drive(self, m: _Mission) -> None:
        report = m.report
        try:
            await asyncio.wait_for(self._execute(m), timeout=self.settings.policy.mission_timeout_s)
            await self._finish(m)
        except TimeoutError:
            self._end(report, MissionOutcome.FAILED, "the mission timed out")
        except asyncio.CancelledError:
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
        while not m.goals.done:
            task = m.queue.pop_ready()
            if task is None:
                break
            await self._run_task(m, task)
            self._sync(m)
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

    async def _run_task(self, m: _Mission, task: TaskSpec) -> None:
        mid = m.report.mission_id
        m.goals.start(task.id)
        body = TaskBody(
            mission_id=mid,
            request=m.report.request,
            repo=m.report.repo,
            branch=m.report.branch,
            task=task,
            upstream=list(m.results),
        )
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
        m.runs[failed.id].superseded_by = retest.id
        for t in (fix, retest):
            m.runs[t.id] = TaskRun(
                id=t.id, intent=t.intent, description=t.description, depends_on=list(t.depends_on)
            )

    async def _finish(self, m: _Mission) -> None:
        report = m.report
        report.tests.written_by_coditect = list(m.tests_written)
        if report.status is not MissionOutcome.SUCCESS:
            return
        head = await self.repos.fetch_branch(m.clone, report.repo, report.branch, self._ref(m))
        names = await git(m.clone, "diff", "--name-only", m.base, head)
        report.changed_files = sorted(n for n in names.splitlines() if n)
        if not report.changed_files:
            self._end(report, MissionOutcome.FAILED, "the agents finished but changed no file")
            return
        report.diff = await git(m.clone, "diff", m.base, head)
        report.commit = head

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
