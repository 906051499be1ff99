"""The mission runner: one request in, one :class:`MissionReport` out.

Per mission: open a private workspace, scan it into the world model, plan a DAG, then take ready
tasks from the priority queue one at a time: allocate an agent, parametrise the intent into an
action, record the expected state, execute, rescan, compare. A failing test run is answered with a
repair round (new tasks added to the DAG) until the goal manager's repair budget is spent. At the
end the change is committed on a branch (git) or applied with a backup (plain directory).

Tasks run one at a time because they share one workspace: that is what lets the consistency
checker attribute every file change to the action that made it.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from coditect.agents.base import Agent, AgentContext, Upstream
from coditect.bus.base import EventBus
from coditect.domain.actions import Violation, ViolationKind
from coditect.domain.events import AgentAct, Event, MissionState, TaskState
from coditect.domain.graph import TaskGraph
from coditect.domain.mission import MissionOutcome, MissionReport, TaskRun, new_mission_id
from coditect.domain.paths import is_test_path
from coditect.domain.results import CodeChange, TaskResult, TestReport
from coditect.domain.tasks import GoalState, Intent, TaskSpec
from coditect.errors import BudgetExceededError, CoditectError, InputError
from coditect.llm.base import Model
from coditect.llm.budget import Budget, BudgetModel
from coditect.llm.cache import CachingModel
from coditect.llm.ledger import CallContext, Ledger, LedgerModel, MemoryLedger
from coditect.logging import bind_mission
from coditect.orchestrator.allocator import ResourceAllocator
from coditect.orchestrator.goals import GoalManager, GoalPolicy
from coditect.orchestrator.outline import outline
from coditect.orchestrator.planner import Planner
from coditect.orchestrator.repair import repair_tasks, test_failure_summary
from coditect.orchestrator.review import Landing, ReviewGate, review_before_landing
from coditect.reuse import Reuse
from coditect.reuse.estimate import estimate_plan
from coditect.reuse.tally import TokenTally
from coditect.reuse.tasks import apply_files
from coditect.sandbox.base import Sandbox
from coditect.state.base import MissionStore
from coditect.taskqueue.consistency import ConsistencyChecker, Expectation
from coditect.taskqueue.parametrize import Parametrizer
from coditect.taskqueue.queue import TaskQueue
from coditect.taskqueue.testsetup import record_baseline
from coditect.taskqueue.world_model import WorldModel
from coditect.workspace import Workspace, open_workspace

__all__ = ["MissionRunner", "MissionSettings"]

# stdlib logging: silent below WARNING unless configure_logging() routes it (with the bound ids).
_log = logging.getLogger(__name__)

_STAGE_OF_INTENT = {
    Intent.ANALYZE: "analyze",
    Intent.WRITE_CODE: "code",
    Intent.WRITE_TESTS: "code",
    Intent.RUN_TESTS: "test",
}
_FATAL_VIOLATIONS = {
    ViolationKind.SYNTAX_ERROR,
    ViolationKind.MISSING_FILE,
    ViolationKind.UNEXPECTED_CHANGE,
}


@dataclass(frozen=True)
class MissionSettings:
    """Knobs of a mission run."""

    policy: GoalPolicy = field(default_factory=GoalPolicy)
    task_timeout_s: float = 300.0
    state_dir: Path | None = None
    commit: bool = True
    reuse: bool = True
    budget_usd: float | None = None
    budget_tokens: int | None = None


@dataclass
class _Run:
    """Mutable state of one running mission (internal to the runner)."""

    report: MissionReport
    ws: Workspace
    world: WorldModel
    goals: GoalManager
    queue: TaskQueue
    meter: TokenTally
    model: Model
    request: str
    results: list[TaskResult] = field(default_factory=list)
    runs: dict[str, TaskRun] = field(default_factory=dict)
    tests_written: list[str] = field(default_factory=list)
    initial: dict[str, str] = field(default_factory=dict)
    reuse_keys: dict[str, tuple[str, TokenTally]] = field(default_factory=dict)
    # Results to store once the mission succeeds: a change whose tests failed is not reused.
    pending: list[tuple[str, TaskResult, TokenTally]] = field(default_factory=list)
    plan: TaskGraph | None = None


class MissionRunner:
    """Runs missions on one process's agents, model, sandbox, store and bus."""

    def __init__(
        self,
        *,
        model: Model,
        sandbox: Sandbox,
        store: MissionStore,
        bus: EventBus,
        allocator: ResourceAllocator,
        settings: MissionSettings | None = None,
        planner: Planner | None = None,
        parametrizer: Parametrizer | None = None,
        checker: ConsistencyChecker | None = None,
        ledger: Ledger | None = None,
        reuse: Reuse | None = None,
        review: ReviewGate | None = None,
    ) -> None:
        self.model = model
        self.sandbox = sandbox
        self.store = store
        self.bus = bus
        self.allocator = allocator
        self.settings = settings or MissionSettings()
        self.planner = planner or Planner(model)
        self.parametrizer = parametrizer or Parametrizer()
        self.checker = checker or ConsistencyChecker()
        self.ledger = ledger or MemoryLedger()
        self.reuse = reuse
        self.review = review  # None: every verified change lands (no review step)

    async def emit(self, event: Event) -> None:
        """Publish an event and keep it in the mission's event log (lifecycle events are logged)."""
        if isinstance(event, TaskState):
            _log.info(
                "task %s %s (attempt %d)%s",
                event.task_id,
                event.state.value,
                event.attempt,
                f": {event.error}" if event.error else "",
            )
        elif isinstance(event, MissionState):
            _log.info(
                "mission %s%s", event.state.value, f": {event.reason}" if event.reason else ""
            )
        await self.bus.publish(event)
        await self.store.append_events([event])

    async def run(
        self,
        request: str,
        repo: Path,
        *,
        mission_id: str | None = None,
        on_plan: Callable[[MissionReport], Awaitable[None] | None] | None = None,
    ) -> MissionReport:
        """Run one mission to its end and return (and store) its report.

        Raises:
            InputError: The request is empty or the repository is unusable (nothing was started).
            asyncio.CancelledError: The mission was cancelled; its report is stored as CANCELLED.
        """
        request = request.strip()
        if not request:
            raise InputError(
                "the request is empty", hint='say what to change, e.g. "Add a function ..."'
            )
        started = time.monotonic()
        ws = open_workspace(repo)
        mid = mission_id or new_mission_id()
        report = MissionReport(
            mission_id=mid,
            request=request,
            repo=str(ws.repo),
            model=self.model.name,
            notes=list(ws.notes),
        )
        with bind_mission(mid):
            return await self._drive(report, ws, started, on_plan)

    async def _drive(
        self,
        report: MissionReport,
        ws: Workspace,
        started: float,
        on_plan: Callable[[MissionReport], Awaitable[None] | None] | None,
    ) -> MissionReport:
        run: _Run | None = None
        try:
            await self._save(report, GoalState.PENDING)
            run = await self._plan(report, ws)
            if on_plan is not None:
                maybe = on_plan(report)
                if maybe is not None:
                    await maybe
            # Issue 9 hook: the project's own tests, once, before any edit (docs/realrepo.md).
            await record_baseline(ws.path, self.sandbox)
            await self._execute(run)
            await self._finish(run)
        except asyncio.CancelledError:
            self._end(
                report, MissionOutcome.CANCELLED, "cancelled by the user; nothing was changed"
            )
            if run is not None:
                run.goals.cancel()
                self._sync_tasks(run)
            await asyncio.shield(self._close(report, started, ws))
            raise
        except CoditectError as exc:
            self._end(report, MissionOutcome.FAILED, str(exc))
            if run is not None:
                self._account(run)
        await self._close(report, started, ws)
        return report

    # --- stages --------------------------------------------------------------------------------
    def _stack(self, model: Model, budget: Budget | None) -> Model:
        """Budget check innermost, then the response cache (a hit never touches the budget)."""
        if budget is not None:
            model = BudgetModel(model, budget)
        if self._reusing and self.reuse is not None and self.reuse.responses is not None:
            model = CachingModel(model, self.reuse.responses)
        return model

    @property
    def _reusing(self) -> bool:
        return self.settings.reuse and self.reuse is not None

    def _task_model(self, run: _Run, task_id: str, agent: str) -> TokenTally:
        ctx = CallContext(mission_id=run.report.mission_id, task_id=task_id, agent=agent)
        return TokenTally(LedgerModel(run.model, self.ledger, context=ctx), run.meter)

    async def _plan(self, report: MissionReport, ws: Workspace) -> _Run:
        world = WorldModel(ws.path)
        world.scan()
        files = sorted(world.snapshot())
        t0 = time.monotonic()
        has_tests = any(is_test_path(p) for p in files)
        budget = None
        if self.settings.budget_usd is not None or self.settings.budget_tokens is not None:
            budget = Budget(
                max_usd=self.settings.budget_usd, max_tokens=self.settings.budget_tokens
            )
        meter = TokenTally(self.model)
        hit = None
        if self._reusing and self.reuse is not None:
            hit = await self.reuse.plans.lookup(report.request, world)
        if hit is not None:
            graph, request = hit.graph, hit.request
            report.plan_source = "reused"
            report.notes.append(f"plan reused ({hit.match} match, {hit.score}) from: {hit.request}")
        else:
            planner = copy.copy(self.planner)
            ctx = CallContext(mission_id=report.mission_id, task_id="plan", agent="planner")
            planner.model = TokenTally(
                LedgerModel(self._stack(planner.model, budget), self.ledger, context=ctx), meter
            )
            outcome = await planner.plan(
                report.request, outline(ws.path, files), has_tests=has_tests
            )
            graph, request = outcome.graph, report.request
            report.plan_source = outcome.source
            if outcome.errors:
                report.notes.append("planner: " + "; ".join(outcome.errors))
        report.stage_s["plan"] = round(time.monotonic() - t0, 3)
        estimate = estimate_plan(graph, self.model.name)
        report.tokens.estimated, report.tokens.estimated_usd = estimate.tokens, estimate.usd
        goals = GoalManager(graph, self.settings.policy)
        queue = TaskQueue()
        queue.push_graph(graph)
        run = _Run(
            report=report,
            ws=ws,
            world=world,
            goals=goals,
            queue=queue,
            meter=meter,
            model=self._stack(self.model, budget),
            request=request,
        )
        run.initial = world.snapshot()
        run.plan = graph
        for task in graph:
            run.runs[task.id] = TaskRun(
                id=task.id,
                intent=task.intent,
                description=task.description,
                depends_on=list(task.depends_on),
            )
        self._sync_tasks(run)
        await self._save(report, GoalState.RUNNING)
        return run

    async def _execute(self, run: _Run) -> None:
        while not run.goals.done:
            task = run.queue.pop_ready()
            if task is None:
                break
            await self._run_task(run, task)
            self._sync_tasks(run)
            await self.store.save_report(run.report)
        state, reason = run.goals.mission_state()
        if state is not GoalState.COMPLETE and not reason:
            reason = "no task is ready to run but the plan is not complete"
        if state is GoalState.COMPLETE:
            self._end(run.report, MissionOutcome.SUCCESS, "")
        else:
            self._end(run.report, MissionOutcome.FAILED, reason)

    async def _run_task(self, run: _Run, task: TaskSpec) -> None:
        tr = run.runs[task.id]
        t0 = time.monotonic()
        try:
            agent = self.allocator.allocate(task.capability)
        except CoditectError as exc:
            run.goals.start(task.id)
            await self._fail(run, task, str(exc))
            return
        tr.agent = agent.name
        with bind_mission(run.report.mission_id, task_id=task.id, agent=agent.name):
            await self._run_allocated(run, task, agent, t0)

    async def _run_allocated(self, run: _Run, task: TaskSpec, agent: Agent, t0: float) -> None:
        tr = run.runs[task.id]
        run.goals.start(task.id)
        await self.emit(
            TaskState(
                mission_id=run.report.mission_id,
                task_id=task.id,
                agent=agent.name,
                state=GoalState.RUNNING,
            )
        )
        run.world.scan()
        upstream = Upstream.from_results(run.results)
        action = self.parametrizer.parametrize(task, run.world, upstream, run.request)
        expectation = self.checker.expect(task, action, run.world)
        meter = self._task_model(run, task.id, agent.name)
        key = None
        if self._reusing and self.reuse is not None:
            key = self.reuse.tasks.key(task, action, run.world, upstream, run.request)
        if key is not None and await self._reuse_task(run, task, key, expectation, t0):
            return
        ctx = AgentContext(
            mission_id=run.report.mission_id,
            request=run.request,
            task=task,
            action=action,
            workspace=run.ws.path,
            model=meter,
            sandbox=self.sandbox,
            upstream=upstream,
            emit=self.emit,
        )

        def on_attempt(n: int) -> None:
            tr.attempts = n
            if n > 1:
                run.goals.record_error(task.id, f"attempt {n - 1} failed")

        try:
            result = await asyncio.wait_for(
                agent.run(ctx, on_attempt=on_attempt), timeout=self.settings.task_timeout_s
            )
        except TimeoutError:
            result = None
            error = f"timed out after {self.settings.task_timeout_s:.0f}s"
        except CoditectError as exc:
            refused = _budget_error(exc)
            if refused is not None:  # a budget stop ends the mission, not just this task
                raise refused from exc
            result = None
            error = str(exc)
        finally:
            tr.duration_s = round(time.monotonic() - t0, 3)
            tr.input_tokens, tr.output_tokens = meter.input_tokens, meter.output_tokens
            stage = _STAGE_OF_INTENT[task.intent]
            run.report.stage_s[stage] = round(run.report.stage_s.get(stage, 0.0) + tr.duration_s, 3)
            run.world.set_agent_status(agent.report_status())
        if result is None:
            await self._fail(run, task, error)
            return
        run.world.scan()
        violations = self.checker.check(expectation, run.world, result)
        run.report.violations.extend(violations)
        if key is not None:
            run.reuse_keys[task.id] = (key, meter)
        await self._settle(run, task, result, violations)

    async def _reuse_task(
        self, run: _Run, task: TaskSpec, key: str, expectation: Expectation, t0: float
    ) -> bool:
        """Serve ``task`` from the reuse store; False on a miss (the agent then runs)."""
        assert self.reuse is not None
        entry = await self.reuse.tasks.lookup(key)
        if entry is None or not apply_files(entry, run.ws.path):
            return False
        result = entry.result
        tr = run.runs[task.id]
        tr.reused, tr.saved_tokens, tr.attempts = True, entry.tokens, 1
        tr.duration_s = round(time.monotonic() - t0, 3)
        run.meter.add_saved(entry.tokens)
        paths = result.paths if isinstance(result, CodeChange) else ()
        await self.emit(
            AgentAct(
                mission_id=run.report.mission_id,
                task_id=task.id,
                agent=tr.agent,
                action="reused",
                detail=f"result reused ({entry.tokens} tokens saved) " + " ".join(paths),
            )
        )
        run.world.scan()
        violations = self.checker.check(expectation, run.world, result)
        run.report.violations.extend(violations)
        await self._settle(run, task, result, violations)
        return True

    async def _settle(
        self, run: _Run, task: TaskSpec, result: TaskResult, violations: list[Violation]
    ) -> None:
        fatal = [v for v in violations if v.kind in _FATAL_VIOLATIONS]
        if fatal:
            await self._fail(run, task, "; ".join(f"{v.kind}: {v.message}" for v in fatal))
            return
        run.results.append(result)
        if isinstance(result, CodeChange) and task.intent is Intent.WRITE_TESTS:
            run.tests_written.extend(p for p in result.paths if p not in run.tests_written)
        if isinstance(result, TestReport):
            run.world.record_tests(result)
            run.report.tests.passed, run.report.tests.failed = result.passed, result.failed
            run.report.tests.errors, run.report.tests.skipped = result.errors, result.skipped
            if not result.ok:
                await self._fail(run, task, test_failure_summary(result))
                if run.goals.can_repair and run.goals.state(task.id) is GoalState.FAILED:
                    self._add_repair_round(run, task, result)
                return
        run.goals.complete(task.id)
        run.queue.complete(task.id)
        stored = run.reuse_keys.pop(task.id, None)
        if stored is not None:
            run.pending.append((stored[0], result, stored[1]))
        await self.emit(
            TaskState(
                mission_id=run.report.mission_id,
                task_id=task.id,
                agent=run.runs[task.id].agent,
                state=GoalState.COMPLETE,
                attempt=run.runs[task.id].attempts,
            )
        )

    async def _fail(self, run: _Run, task: TaskSpec, error: str) -> None:
        run.runs[task.id].error = error
        run.goals.fail(task.id, error)
        run.queue.fail(task.id)
        await self.emit(
            TaskState(
                mission_id=run.report.mission_id,
                task_id=task.id,
                agent=run.runs[task.id].agent,
                state=GoalState.FAILED,
                attempt=run.runs[task.id].attempts,
                error=error,
            )
        )

    def _add_repair_round(self, run: _Run, failed: TaskSpec, report: TestReport) -> None:
        """Add "fix, then test again" tasks; the first round fixes the side most likely wrong."""
        fix, retest = repair_tasks(
            request=run.report.request,
            failed=failed,
            report=report,
            tests_written=run.tests_written,
            round_no=run.goals.repairs + 1,
        )
        run.goals.supersede(failed.id, [fix, retest])
        run.queue.push(fix)
        run.queue.push(retest)
        run.runs[failed.id].superseded_by = retest.id
        for t in (fix, retest):
            run.runs[t.id] = TaskRun(
                id=t.id, intent=t.intent, description=t.description, depends_on=list(t.depends_on)
            )

    async def _finish(self, run: _Run) -> None:
        report = run.report
        run.world.scan()
        final = run.world.snapshot()
        changed = sorted(
            p for p in set(run.initial) | set(final) if run.initial.get(p) != final.get(p)
        )
        report.changed_files = changed
        report.tests.written_by_coditect = list(run.tests_written)
        self._account(run)
        if report.status is not MissionOutcome.SUCCESS:
            return
        if not changed:
            self._end(report, MissionOutcome.FAILED, "the agents finished but changed no file")
            return
        report.diff = run.ws.diff(changed)
        # --- review before landing (orchestrator/review.py): the one place the gate is asked ---
        if self.review is not None:
            hooks = Landing(
                save=lambda: self.store.save_report(report),
                emit=self.emit,
                feedback_round=lambda fix, retest: self._feedback_round(run, fix, retest),
            )
            await review_before_landing(self.review, report, hooks)
            if report.status is not MissionOutcome.SUCCESS:
                return
            changed = report.changed_files
        if self._reusing and self.reuse is not None:
            for key, result, meter in run.pending:
                await self.reuse.tasks.remember(
                    key, result, run.ws.path, tokens=meter.total_tokens, usd=meter.usd
                )
            if report.plan_source != "reused":
                graph = run.plan or run.goals.graph
                await self.reuse.plans.remember(run.request, graph, source=report.plan_source)
        if not self.settings.commit:
            return
        if run.ws.git is not None:
            report.branch = f"coditect/{report.mission_id}"
            report.commit = run.ws.commit(
                changed,
                branch=report.branch,
                message=f"{report.request}\n\nCODITECT mission {report.mission_id}",
            )
        else:
            backup = self._state_dir() / "missions" / report.mission_id / "backup"
            run.ws.apply(changed, backup_dir=backup)
            report.applied_to = str(run.ws.repo)
            report.notes.append(f"originals of changed files saved in {backup}")

    async def _feedback_round(self, run: _Run, fix: TaskSpec, retest: TaskSpec) -> bool:
        """Run a review feedback round; True when the new change is verified (review again)."""
        run.goals.extend([fix, retest])
        for t in (fix, retest):
            run.queue.push(t)
            run.runs[t.id] = TaskRun(
                id=t.id, intent=t.intent, description=t.description, depends_on=list(t.depends_on)
            )
        self._sync_tasks(run)
        await self._execute(run)
        run.world.scan()
        final = run.world.snapshot()
        changed = sorted(
            p for p in set(run.initial) | set(final) if run.initial.get(p) != final.get(p)
        )
        report = run.report
        report.changed_files, report.diff = changed, run.ws.diff(changed)
        report.tests.written_by_coditect = list(run.tests_written)
        self._account(run)
        return report.status is MissionOutcome.SUCCESS

    # --- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _account(run: _Run) -> None:
        tokens, meter = run.report.tokens, run.meter
        tokens.input, tokens.output = meter.input_tokens, meter.output_tokens
        tokens.cached, tokens.usd = meter.cached_input_tokens, round(meter.usd, 6)
        tokens.saved, tokens.reused_calls = meter.saved_tokens, meter.reused_calls

    def _state_dir(self) -> Path:
        return self.settings.state_dir or Path.home() / ".local" / "share" / "coditect"

    @staticmethod
    def _end(report: MissionReport, status: MissionOutcome, reason: str) -> None:
        report.status = status
        report.reason = reason

    def _sync_tasks(self, run: _Run) -> None:
        for task in run.goals.graph:
            tr = run.runs[task.id]
            tr.status = run.goals.state(task.id)
            if not tr.error:
                tr.error = run.goals.error(task.id)
        run.report.tasks = list(run.runs.values())

    async def _save(self, report: MissionReport, state: GoalState) -> None:
        await self.store.save_report(report)
        await self.emit(
            MissionState(mission_id=report.mission_id, state=state, reason=report.reason)
        )

    async def _close(self, report: MissionReport, started: float, ws: Workspace) -> None:
        ws.cleanup()
        report.wall_s = round(time.monotonic() - started, 3)
        state = {
            MissionOutcome.SUCCESS: GoalState.COMPLETE,
            MissionOutcome.CANCELLED: GoalState.CANCELLED,
        }.get(report.status, GoalState.FAILED)
        await self._save(report, state)


def _budget_error(exc: BaseException) -> BudgetExceededError | None:
    """The budget refusal behind ``exc`` (agents wrap it), or None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BudgetExceededError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
