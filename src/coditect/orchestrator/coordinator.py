"""The coordinator: the one mission driver of both modes.

It plans a mission, walks its DAG one ready task at a time through a
:class:`~coditect.orchestrator.port.TaskPort`, settles each task's
:class:`~coditect.orchestrator.step.StepOutcome` (results, usage, budget, ledger, reuse),
adds repair rounds after failing tests, and ends the mission (land the change, or say why
not). Where the tasks run is the port's business: agents in this process
(:class:`~coditect.orchestrator.inprocess.InProcessPort`) or workers behind the task queue
service (:class:`~coditect.distributed.port.DistributedPort`).

Extension points, in the order a mission meets them: :meth:`Coordinator.decide` (what a
settled step means for the task: complete, fail, repair) and :meth:`Coordinator.before_landing`
(a last look at the finished change before the port lands it).

Tasks of one mission run one at a time: they build on each other's changes (one workspace,
or one branch), which is what lets the consistency checker attribute each change to a task.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from coditect.agents.reproduce import not_reproduced_notes, reproduction_notes
from coditect.domain.agents import Upstream
from coditect.domain.checkpoint import MissionCheckpoint
from coditect.domain.events import Event, MissionState, TaskState
from coditect.domain.graph import TaskGraph
from coditect.domain.mission import MissionOutcome, MissionReport, TaskRun
from coditect.domain.paths import is_test_path
from coditect.domain.results import CodeChange, TaskResult, TestReport
from coditect.domain.tasks import GoalState, Intent, TaskSpec, can_do_without
from coditect.errors import BudgetExceededError, CoditectError
from coditect.llm.base import Model
from coditect.llm.budget import Budget, Reservation
from coditect.llm.cascade import tiers_of
from coditect.llm.ledger import CallContext, Ledger, MemoryLedger
from coditect.llm.registry import instrument
from coditect.llm.usage import UsageCounter
from coditect.logging import bind_mission
from coditect.orchestrator.checkpoint import journal_of
from coditect.orchestrator.goals import GoalManager, GoalPolicy
from coditect.orchestrator.outcome import decide_outcome, retired_notes
from coditect.orchestrator.outline import outline
from coditect.orchestrator.planner import Planner
from coditect.orchestrator.port import (
    Changes,
    JournalStep,
    MissionRun,
    TaskFinished,
    TaskPort,
    TaskStarted,
)
from coditect.orchestrator.repair import repair_tasks, test_failure_summary
from coditect.orchestrator.review import Landing as ReviewHooks
from coditect.orchestrator.review import ReviewGate, review_before_landing
from coditect.orchestrator.step import Allowance, StepOutcome, TaskOrder
from coditect.reuse import Reuse
from coditect.reuse.estimate import estimate_plan
from coditect.state.base import MissionStore
from coditect.taskqueue.queue import TaskQueue
from coditect.taskqueue.world_model import WorldModel
from coditect.telemetry import tracing

__all__ = ["CANCELLED_REASON", "Coordinator", "CoordinatorPolicy", "Decision", "EventSink"]

_log = logging.getLogger(__name__)

#: The reason of a mission the user cancelled (both modes leave the user's branch as it was).
CANCELLED_REASON = "cancelled by the user; nothing was changed"
_STAGE_OF_INTENT = {
    Intent.ANALYZE: "analyze",
    Intent.WRITE_CODE: "code",
    Intent.WRITE_TESTS: "code",
    Intent.RUN_TESTS: "test",
}


class EventSink:
    """Where the coordinator's events go besides the store (a bus, live watchers)."""

    async def __call__(self, event: Event) -> None:
        """Deliver ``event`` (the default delivers it nowhere)."""


@dataclass(frozen=True)
class CoordinatorPolicy:
    """Knobs of the coordinator, the same in both modes.

    Attributes:
        reuse: Serve plans and task results from the reuse store, and store successful ones.
        budget_usd: Most a mission may spend (None: no limit).
        budget_tokens: Most fresh tokens a mission may use (None: no limit).
        commit: Land the change (commit / apply); False leaves it in the report's diff only.
    """

    goals: GoalPolicy = field(default_factory=GoalPolicy)
    reuse: bool = True
    budget_usd: float | None = None
    budget_tokens: int | None = None
    commit: bool = True


@dataclass(frozen=True)
class Decision:
    """What a settled step means for its task (see :meth:`Coordinator.decide`).

    Attributes:
        kind: ``complete``, ``fail`` or ``repair`` (fail, then add a repair round).
    """

    kind: Literal["complete", "fail", "repair"]
    error: str = ""


class Coordinator:
    """Plans missions and drives them through a task port, the same way in both modes.

    Args:
        model: The planner's model (and the name the reports and the estimate use).
        port: Where tasks run.
        store: Mission reports and their event history.
        policy: Knobs.
        planner: The planner (default: one on ``model``).
        ledger: The cost ledger every model call of a mission is recorded in.
        reuse: The reuse stores (None: off).
        sink: Where events go besides the store.
    """

    def __init__(
        self,
        *,
        model: Model,
        port: TaskPort,
        store: MissionStore,
        policy: CoordinatorPolicy | None = None,
        planner: Planner | None = None,
        ledger: Ledger | None = None,
        reuse: Reuse | None = None,
        sink: EventSink | None = None,
    ) -> None:
        self.model = model
        self.port = port
        self.store = store
        self.policy = policy or CoordinatorPolicy()
        self.planner = planner or Planner(model)
        self.ledger = ledger or MemoryLedger()
        self.reuse = reuse
        self.sink = sink or EventSink()
        #: Asked before a verified change lands (None: every verified change lands).
        self.review: ReviewGate | None = None
        self._outlines: dict[Path, tuple[WorldModel, list[str]]] = {}

    @property
    def reusing(self) -> bool:
        """Whether missions reuse work."""
        return self.policy.reuse and self.reuse is not None

    async def emit(self, event: Event) -> None:
        """Keep an event in the mission's history and deliver it to the sink."""
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
        await self.store.append_events([event])
        await self.sink(event)

    # --- planning -------------------------------------------------------------------------------
    async def plan(
        self, report: MissionReport, tree: Path, *, immutable: bool = False, record: bool = True
    ) -> MissionRun:
        """Plan ``report``'s request on the files of ``tree`` (stored and announced as PENDING).

        Args:
            report: The new mission's report (filled in with the plan's figures).
            tree: The repository's files as the mission starts.
            immutable: ``tree`` never changes (a commit's tree): its outline is computed once.
            record: Store and announce the mission (False: a plan shown, never run).
        """
        if record:
            await self._save(report, GoalState.PENDING)
        world, lines = await self._outline(tree, immutable)
        files = sorted(world.snapshot())
        t0 = time.monotonic()
        budget = self._budget()
        counter = UsageCounter(self.model)
        # A plan that is only shown is not a mission: its calls are not kept, and it neither
        # reuses nor stores work (a preview shows what the model plans now, at the cost of
        # one model call and no store round trips).
        ledger = self.ledger if record else MemoryLedger()
        reuse = self.reuse if record and self.reusing else None
        graph, request = await self._plan_graph(
            report, world, lines, files, budget, counter, ledger, reuse
        )
        report.stage_s["plan"] = round(time.monotonic() - t0, 3)
        estimate = estimate_plan(graph, self.model.name)
        report.tokens.estimated, report.tokens.estimated_usd = estimate.tokens, estimate.usd
        run = MissionRun(
            report=report,
            request=request,
            goals=GoalManager(graph, self.policy.goals),
            queue=TaskQueue(),
            plan=graph,
            counter=counter,
            budget=budget,
            baseline=world.snapshot(),
        )
        run.queue.push_graph(graph)
        for task in graph:
            run.runs[task.id] = _task_run(task)
        self._sync(run)
        self._account(run)
        return run

    def _budget(self) -> Budget | None:
        p = self.policy
        if p.budget_usd is None and p.budget_tokens is None:
            return None
        return Budget(max_usd=p.budget_usd, max_tokens=p.budget_tokens)

    async def _outline(self, tree: Path, immutable: bool) -> tuple[WorldModel, list[str]]:
        cached = self._outlines.get(tree) if immutable else None
        if cached is None:
            world = WorldModel(tree)
            await asyncio.to_thread(world.scan)
            lines = await asyncio.to_thread(outline, tree, sorted(world.snapshot()))
            cached = (world, lines)
            if immutable:
                if len(self._outlines) >= 64:
                    self._outlines.pop(next(iter(self._outlines)))
                self._outlines[tree] = cached
        return cached

    async def _plan_graph(
        self,
        report: MissionReport,
        world: WorldModel,
        lines: list[str],
        files: list[str],
        budget: Budget | None,
        counter: UsageCounter,
        ledger: Ledger,
        reuse: Reuse | None,
    ) -> tuple[TaskGraph, str]:
        hit = None
        if reuse is not None:
            hit = await reuse.plans.lookup(report.request, world)
        if hit is not None:
            report.plan_source = "reused"
            report.notes.append(f"plan reused ({hit.match} match, {hit.score}) from: {hit.request}")
            return hit.graph, hit.request
        planner = copy.copy(self.planner)
        responses = reuse.responses if reuse is not None else None
        planner.model = UsageCounter(
            instrument(
                planner.model,
                ledger=ledger,
                context=CallContext(mission_id=report.mission_id, task_id="plan", agent="planner"),
                budget=budget,
                cache=responses,
            ),
            counter,
        )
        has_tests = any(is_test_path(p) for p in files)
        outcome = await planner.plan(report.request, lines, has_tests=has_tests)
        report.plan_source = outcome.source
        if outcome.errors:
            report.notes.append("planner: " + "; ".join(outcome.errors))
        return outcome.graph, report.request

    # --- driving --------------------------------------------------------------------------------
    async def drive(self, run: MissionRun, *, reason: str = "") -> MissionReport:
        """Run the planned mission to its end; returns (and stores) its report.

        Args:
            run: The mission, as :meth:`plan` (or a resume) made it.
            reason: Said with the RUNNING announcement (e.g. that the mission was resumed).

        Raises:
            asyncio.CancelledError: The mission was cancelled (stored as CANCELLED unless
                ``run.detached``: then it stays RUNNING for a later coordinator to resume).
        """
        report = run.report
        with bind_mission(report.mission_id):
            try:
                await self._save(report, GoalState.RUNNING, reason=reason)
                try:
                    await self._execute(run)
                except _MissionTimeout as exc:
                    if run.tested_diff is None:
                        raise  # no test run has judged any change
                    # Judged like any failed mission: by the last test run, if the change is
                    # still the one it tested (see _finish).
                    self._end(report, MissionOutcome.FAILED, str(exc))
                    await self._finish(run)
                    if report.reason != str(exc):
                        report.reason = f"{exc}; {report.reason}"
                else:
                    await self._finish(run)
            except asyncio.CancelledError:
                if run.detached:
                    raise
                run.goals.cancel()
                self._end(report, MissionOutcome.CANCELLED, CANCELLED_REASON)
                await asyncio.shield(self._stop_and_close(run, CANCELLED_REASON))
                raise
            except CoditectError as exc:
                self._end(report, MissionOutcome.FAILED, str(exc))
            except Exception as exc:  # a bug must still end the mission visibly
                _log.exception("mission %s crashed", report.mission_id)
                self._end(report, MissionOutcome.FAILED, f"internal error: {exc!r}")
            await self._close(run)
        return report

    async def _execute(self, run: MissionRun) -> None:
        while not run.goals.done:
            task = run.queue.pop_ready()
            if task is None:
                break
            with bind_mission(run.mission_id, task_id=task.id):
                await self._run_task(run, task)
            self._sync(run)
            self._account(run)
            await self.port.after_step(run)
            await self.store.save_report(run.report)
        state, reason = run.goals.mission_state()
        if state is GoalState.COMPLETE:
            self._end(run.report, MissionOutcome.SUCCESS, "")
        else:
            reason = reason or "no task is ready to run but the plan is not complete"
            self._end(run.report, MissionOutcome.FAILED, reason)

    def order(self, run: MissionRun, task: TaskSpec) -> TaskOrder:
        """What the port gets to run ``task``."""
        allowance = None
        if run.budget is not None:
            b = run.budget
            allowance = Allowance(
                max_usd=b.max_usd,
                max_tokens=b.max_tokens,
                spent_usd=b.spent_usd,
                spent_tokens=b.spent_tokens,
            )
        return TaskOrder(
            mission_id=run.mission_id,
            request=run.request,
            task=task,
            upstream=Upstream.from_results(run.results),
            allowance=allowance,
            reuse=self.reusing,
            tier=run.tiers.get(task.id, 0),
            time_left_s=max(
                self.policy.goals.mission_timeout_s - (time.monotonic() - run.started), 0.0
            ),
        )

    @tracing.traced("orchestrator.task")
    async def _run_task(self, run: MissionRun, task: TaskSpec) -> None:
        tracing.set_attributes({"coditect.mission_id": run.mission_id, "coditect.task_id": task.id})
        run.goals.start(task.id)
        await self.port.submit(run, self.order(run, task))
        timeout_s = self.policy.goals.mission_timeout_s
        while True:
            left_s = timeout_s - (time.monotonic() - run.started)
            try:
                event = await asyncio.wait_for(run.inbox.get(), timeout=max(left_s, 0.0))
            except TimeoutError:
                reason = f"mission timed out after {timeout_s:.0f}s"
                await self.port.cancel(run, reason)
                await self._fail(run, task, reason)
                raise _MissionTimeout(f"{reason} in task {task.id}", retryable=False) from None
            if event.task_id != task.id:  # a late event of a task already settled
                continue
            if isinstance(event, TaskStarted):
                run.runs[task.id].agent = event.agent
                await self.emit(
                    TaskState(
                        mission_id=run.mission_id,
                        task_id=task.id,
                        agent=event.agent,
                        state=GoalState.RUNNING,
                    )
                )
                continue
            assert isinstance(event, TaskFinished)
            agent = event.outcome.agent or run.runs[task.id].agent
            with bind_mission(run.mission_id, task_id=task.id, agent=agent):
                await self.settle(run, task, event.outcome)
            return

    async def settle(self, run: MissionRun, task: TaskSpec, out: StepOutcome) -> None:
        """Account a finished step, then complete, fail or repair its task.

        Raises:
            BudgetExceededError: The step's model call was refused by the budget.
        """
        tr = run.runs[task.id]
        tr.agent = out.agent or tr.agent
        tr.attempts, tr.duration_s = out.attempts, out.duration_s
        tr.input_tokens, tr.output_tokens = out.usage.input_tokens, out.usage.output_tokens
        tr.reused, tr.saved_tokens = out.reused, out.usage.saved_tokens
        for n in range(1, out.attempts):  # retries inside the agent count towards the threshold
            run.goals.record_error(task.id, f"attempt {n} failed")
        await self._account_step(run, out)
        stage = _STAGE_OF_INTENT[task.intent]
        run.report.stage_s[stage] = round(run.report.stage_s.get(stage, 0.0) + out.duration_s, 3)
        run.report.violations.extend(out.violations)
        run.report.notes.extend(n for n in dict.fromkeys(out.notes) if n not in run.report.notes)
        decision = self.decide(run, task, out)
        if out.budget_stop:
            await self._fail(run, task, decision.error)
            raise BudgetExceededError(out.error)
        if out.result is not None:
            self._record_result(run, task, out.result)
            if isinstance(out.result, TestReport):
                run.tested_diff = (await self.port.changes(run)).diff
        if decision.kind == "complete":
            await self._complete(run, task, out)
            return
        if decision.kind == "fail" and can_do_without(task):
            await self._skip(run, task, decision.error)
            return
        await self._fail(run, task, decision.error)
        if decision.kind == "repair" and isinstance(out.result, TestReport):
            if run.goals.can_repair and run.goals.state(task.id) is GoalState.FAILED:
                self._add_repair_round(run, task, out.result)

    def decide(self, run: MissionRun, task: TaskSpec, out: StepOutcome) -> Decision:
        """What ``out`` means for ``task``: the extension point for new outcomes.

        A step without a result fails its task; a failing test run fails it and asks for a
        repair round; anything else completes it.
        """
        if out.result is None:
            return Decision("fail", out.error or "the task produced no result")
        if isinstance(out.result, TestReport) and not out.result.ok:
            return Decision("repair", test_failure_summary(out.result))
        return Decision("complete")

    def _record_result(self, run: MissionRun, task: TaskSpec, result: TaskResult) -> None:
        run.results.append(result)
        run.task_results[task.id] = result
        if isinstance(result, CodeChange) and task.intent is Intent.WRITE_TESTS:
            run.tests_written.extend(p for p in result.paths if p not in run.tests_written)
            _note_tests(run.test_names, result)
        if isinstance(result, TestReport):
            t = run.report.tests
            t.passed, t.failed, t.errors, t.skipped = (
                result.passed,
                result.failed,
                result.errors,
                result.skipped,
            )

    async def _account_step(self, run: MissionRun, out: StepOutcome) -> None:
        u = out.usage
        run.counter.add_totals(**u.model_dump())
        if run.budget is not None:
            fresh = u.input_tokens + u.output_tokens
            run.budget.settle(Reservation(tokens=0, usd=0.0), tokens=fresh, usd=u.usd)
        for entry in out.ledger:
            await self.ledger.record(entry)
            # the highest cascade tier each task used (an escalated step moved up)
            run.tiers[entry.task_id] = max(run.tiers.get(entry.task_id, 0), entry.tier)

    async def _complete(self, run: MissionRun, task: TaskSpec, out: StepOutcome) -> None:
        run.goals.complete(task.id)
        run.queue.complete(task.id)
        run.journal.append(JournalStep(kind="complete", task_id=task.id))
        if out.reuse_key and out.reuse_entry:
            run.pending_reuse.append((out.reuse_key, out.reuse_entry))
        await self._announce(run, task, GoalState.COMPLETE)

    async def _fail(self, run: MissionRun, task: TaskSpec, error: str) -> None:
        run.runs[task.id].error = error
        run.goals.fail(task.id, error)
        run.queue.fail(task.id)
        run.journal.append(JournalStep(kind="fail", task_id=task.id, error=error))
        await self._announce(run, task, GoalState.FAILED, error)

    async def _skip(self, run: MissionRun, task: TaskSpec, error: str) -> None:
        """A failed task the mission does without: it stays FAILED, its dependents run."""
        run.runs[task.id].error = error
        run.goals.skip(task.id, error)
        run.queue.complete(task.id)
        run.journal.append(JournalStep(kind="skip", task_id=task.id, error=error))
        await self._announce(run, task, GoalState.FAILED, error)

    async def _announce(
        self, run: MissionRun, task: TaskSpec, state: GoalState, error: str = ""
    ) -> None:
        tr = run.runs[task.id]
        await self.emit(
            TaskState(
                mission_id=run.mission_id,
                task_id=task.id,
                agent=tr.agent,
                state=state,
                attempt=tr.attempts,
                error=error,
            )
        )

    def _add_repair_round(self, run: MissionRun, failed: TaskSpec, report: TestReport) -> None:
        """Add "fix, then test again" tasks; the first round fixes the side most likely wrong."""
        fix, retest = repair_tasks(
            request=run.report.request,
            failed=failed,
            report=report,
            tests_written=run.tests_written,
            round_no=run.goals.repairs + 1,
            test_names=run.test_names,
        )
        # Cascade hook (issue 13): tests failed on what a tier wrote, so the fix uses the next tier.
        tier = min(max(run.tiers.values(), default=0) + 1, tiers_of(self.model) - 1)
        run.tiers[fix.id] = run.tiers[retest.id] = tier
        self.add_tasks(run, failed.id, (fix, retest))
        run.journal.append(JournalStep(kind="repair", task_id=failed.id, tasks=(fix, retest)))

    @staticmethod
    def add_tasks(run: MissionRun, replaced: str, tasks: tuple[TaskSpec, ...]) -> None:
        """Put ``tasks`` in place of the failed task ``replaced`` (a repair round)."""
        run.goals.supersede(replaced, list(tasks))
        for t in tasks:
            run.queue.push(t)
            run.runs.setdefault(t.id, _task_run(t))
        run.runs[replaced].superseded_by = tasks[-1].id

    # --- ending ---------------------------------------------------------------------------------
    async def before_landing(self, run: MissionRun, changes: Changes) -> Changes:
        """A last look at a successful mission's change before it is landed (extension point).

        Here the review gate is asked (:mod:`coditect.orchestrator.review`): accept, reject,
        or feedback that becomes another round of tasks. A status other than SUCCESS on return
        keeps the change from landing.

        Returns:
            The change to land (a feedback round makes a new one).
        """
        if self.review is None:
            return changes
        latest = [changes]

        async def feedback_round(fix: TaskSpec, retest: TaskSpec) -> bool:
            latest[0] = await self._feedback_round(run, fix, retest)
            return run.report.status is MissionOutcome.SUCCESS

        report = run.report
        hooks = ReviewHooks(
            save=lambda: self.store.save_report(report),
            emit=self.emit,
            feedback_round=feedback_round,
        )
        await review_before_landing(self.review, report, hooks)
        return latest[0]

    async def _feedback_round(self, run: MissionRun, fix: TaskSpec, retest: TaskSpec) -> Changes:
        """Run a reviewer's feedback as new tasks after the finished ones; the new change."""
        run.goals.extend([fix, retest])
        for t in (fix, retest):
            run.queue.push(t)
            run.runs[t.id] = _task_run(t)
        self._sync(run)
        await self._execute(run)
        changes = await self.port.changes(run)
        report = run.report
        report.changed_files, report.diff = list(changes.files), changes.diff
        report.tests.written_by_coditect = list(run.tests_written)
        self._account(run)
        return changes

    async def _finish(self, run: MissionRun) -> None:
        report = run.report
        report.tests.written_by_coditect = list(run.tests_written)
        self._account(run)
        last_tests = next((r for r in reversed(run.results) if isinstance(r, TestReport)), None)
        if report.status is not MissionOutcome.SUCCESS and last_tests is None:
            return  # nothing ran that could make a change usable
        changes = await self.port.changes(run)
        report.changed_files = list(changes.files)
        if report.status is not MissionOutcome.SUCCESS and run.tested_diff not in (
            None,
            changes.diff,
        ):
            return  # a task changed files after the last test run: no run judged this change
        # SUCCESS, UNVERIFIED or FAILED from the evidence (orchestrator/outcome.py).
        verdict = decide_outcome(
            status=report.status,
            reason=report.reason,
            changed=changes.files,
            tests_written=run.tests_written,
            last_tests=last_tests,
            code_expected=any(t.intent is Intent.WRITE_CODE for t in run.plan),
            untested=tuple(f"task {t}: {e}" for t, e in run.goals.skipped.items()),
            test_names=run.test_names,
            unreproduced=tuple(
                note
                for result in run.results
                if isinstance(result, CodeChange)
                for note in not_reproduced_notes(result.summary)
            ),
        )
        self._end(report, verdict.outcome, verdict.reason)
        report.evidence.extend(verdict.evidence)
        for result in run.results:  # a bug fix: did its test reproduce the report first?
            if isinstance(result, CodeChange):
                report.evidence.extend(reproduction_notes(result.summary))
                report.evidence.extend(retired_notes(result.edits))
        if report.status not in (MissionOutcome.SUCCESS, MissionOutcome.UNVERIFIED):
            return
        report.diff = changes.diff
        if report.status is MissionOutcome.SUCCESS:  # an unverified change is not reviewed
            changes = await self.before_landing(run, changes)
            if report.status is not MissionOutcome.SUCCESS:
                return
            await self._remember(run)
        if not self.policy.commit:
            return
        landing = await self.port.land(run, changes)
        report.branch = landing.branch or report.branch
        report.commit, report.applied_to = landing.commit, landing.applied_to
        report.notes.extend(landing.notes)

    async def _remember(self, run: MissionRun) -> None:
        """Store the successful mission's reusable task results and its plan."""
        if not self.reusing or self.reuse is None:
            return
        for key, entry in run.pending_reuse:
            await self.reuse.tasks.put(key, entry)
        if run.report.plan_source != "reused":
            await self.reuse.plans.remember(run.request, run.plan, source=run.report.plan_source)

    async def _stop_and_close(self, run: MissionRun, reason: str) -> None:
        try:
            await self.port.cancel(run, reason)
        except (CoditectError, TimeoutError) as exc:
            _log.warning("mission %s: could not stop its running task: %s", run.mission_id, exc)
            run.report.notes.append(f"cancel: the running task may not have stopped ({exc})")
        await self._close(run)

    async def _close(self, run: MissionRun) -> None:
        report = run.report
        try:
            await self.port.close(run)
        finally:
            self._sync(run)
            self._account(run)
            report.wall_s = round(time.monotonic() - run.started, 3)
            state = {
                MissionOutcome.SUCCESS: GoalState.COMPLETE,
                MissionOutcome.CANCELLED: GoalState.CANCELLED,
            }.get(report.status, GoalState.FAILED)
            await self._save(report, state)

    async def abandon(
        self, report: MissionReport, status: MissionOutcome, reason: str, started: float
    ) -> None:
        """End a mission that never got a plan (the planner failed, or it was cancelled)."""
        self._end(report, status, reason)
        report.wall_s = round(time.monotonic() - started, 3)
        state = GoalState.CANCELLED if status is MissionOutcome.CANCELLED else GoalState.FAILED
        await self._save(report, state)

    # --- resuming -------------------------------------------------------------------------------
    def replay(
        self, run: MissionRun, journal: list[JournalStep], results: dict[str, TaskResult]
    ) -> None:
        """Bring a freshly planned ``run`` to where ``journal`` left it (a coordinator restart).

        Raises:
            CoditectError: A completed task's result is no longer known.
        """
        for step in journal:
            run.journal.append(step)
            if step.kind == "repair":
                self.add_tasks(run, step.task_id, step.tasks)
                continue
            result = results.get(step.task_id)
            if result is not None:
                self._record_result(run, run.goals.graph[step.task_id], result)
            elif step.kind == "complete":
                raise CoditectError(f"the result of task {step.task_id} is no longer stored")
            run.goals.start(step.task_id)
            if step.kind == "fail":
                run.goals.fail(step.task_id, step.error)
                run.queue.fail(step.task_id)
            elif step.kind == "skip":
                run.goals.skip(step.task_id, step.error)
                run.queue.complete(step.task_id)
            else:
                run.goals.complete(step.task_id)
                run.queue.complete(step.task_id)
        self._sync(run)

    def restore(
        self, report: MissionReport, checkpoint: MissionCheckpoint, *, baseline: dict[str, str]
    ) -> MissionRun:
        """A run of ``report``'s mission brought to where ``checkpoint`` left it (a resume).

        The completed tasks stay completed with their checkpointed results (later tasks get
        them as upstream input); the usage stored in ``report`` counts towards the budget.

        Args:
            report: The interrupted mission's stored report.
            checkpoint: Its last checkpoint.
            baseline: Path -> SHA-256 of the files as the mission started.

        Raises:
            CoditectError: A completed task's result is not in the checkpoint.
        """
        graph = TaskGraph(checkpoint.plan)
        counter = UsageCounter(self.model)
        t = report.tokens
        counter.add_totals(
            input_tokens=t.input,
            output_tokens=t.output,
            cached_input_tokens=t.cached,
            saved_tokens=t.saved,
            reused_calls=t.reused_calls,
            usd=t.usd,
        )
        budget = self._budget()
        if budget is not None:
            budget.spent_tokens, budget.spent_usd = t.input + t.output, t.usd
        run = MissionRun(
            report=report,
            request=report.request,
            goals=GoalManager(graph, self.policy.goals),
            queue=TaskQueue(),
            plan=graph,
            counter=counter,
            budget=budget,
            baseline=baseline,
            runs={tr.id: tr for tr in report.tasks},
        )
        run.queue.push_graph(graph)
        for task in graph:
            run.runs.setdefault(task.id, _task_run(task))
        self.replay(run, journal_of(checkpoint), dict(checkpoint.results))
        self._account(run)
        return run

    # --- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _account(run: MissionRun) -> None:
        tokens, c = run.report.tokens, run.counter
        tokens.input, tokens.output = c.input_tokens, c.output_tokens
        tokens.cached, tokens.usd = c.cached_input_tokens, round(c.usd, 6)
        tokens.saved, tokens.reused_calls = c.saved_tokens, c.reused_calls

    @staticmethod
    def _end(report: MissionReport, status: MissionOutcome, reason: str) -> None:
        report.status = status
        report.reason = reason

    @staticmethod
    def _sync(run: MissionRun) -> None:
        for task in run.goals.graph:
            tr = run.runs[task.id]
            tr.status = run.goals.state(task.id)
            if not tr.error:
                tr.error = run.goals.error(task.id)
        run.report.tasks = list(run.runs.values())

    async def _save(
        self, report: MissionReport, state: GoalState, *, reason: str | None = None
    ) -> None:
        await self.store.save_report(report)
        await self.emit(
            MissionState(
                mission_id=report.mission_id,
                state=state,
                reason=report.reason if reason is None else reason,
            )
        )


class _MissionTimeout(CoditectError):
    """The mission ran out of time while a task ran (that task is failed and stopped)."""


def _note_tests(names: dict[str, frozenset[str] | None], change: CodeChange) -> None:
    """Record which test functions ``change`` wrote (a file it created is the mission's)."""
    for edit in change.edits:
        if not edit.before_sha256:
            names[edit.path] = None
            continue
        if edit.path in names and names[edit.path] is None:
            continue
        mine = names.get(edit.path) or frozenset()
        added = {n.rpartition(".")[2] for n in edit.added_symbols}
        # A project test the mission rewrote stays the project's: its failure is a regression.
        rewritten = {n.rpartition(".")[2] for n in edit.replaced_symbols} & mine
        names[edit.path] = mine | added | rewritten


def _task_run(task: TaskSpec) -> TaskRun:
    return TaskRun(
        id=task.id,
        intent=task.intent,
        description=task.description,
        depends_on=list(task.depends_on),
    )
