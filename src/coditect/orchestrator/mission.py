"""``coditect run``: one request in, one :class:`MissionReport` out, in this process.

The mission itself is driven by the :class:`~coditect.orchestrator.coordinator.Coordinator`
(the same one the distributed orchestrator uses); this module opens the mission's private
workspace and runs its tasks through the
:class:`~coditect.orchestrator.inprocess.InProcessPort`. :meth:`MissionRunner.resume` continues
an interrupted mission from its checkpoint (``coditect resume``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from coditect.bus.base import EventBus
from coditect.domain.checkpoint import MissionCheckpoint
from coditect.domain.events import Event
from coditect.domain.mission import MissionOutcome, MissionReport, new_mission_id
from coditect.errors import CoditectError, InputError
from coditect.llm.base import Model
from coditect.llm.ledger import Ledger
from coditect.logging import bind_mission
from coditect.orchestrator.allocator import ResourceAllocator
from coditect.orchestrator.checkpoint import mismatch, restore_files
from coditect.orchestrator.coordinator import (
    CANCELLED_REASON,
    Coordinator,
    CoordinatorPolicy,
    EventSink,
)
from coditect.orchestrator.goals import GoalPolicy
from coditect.orchestrator.inprocess import InProcessPort
from coditect.orchestrator.planner import Planner
from coditect.orchestrator.request import check_request
from coditect.orchestrator.review import ReviewGate
from coditect.orchestrator.step import TaskStep
from coditect.reuse import Reuse
from coditect.sandbox.base import Sandbox
from coditect.state.base import CheckpointStore, MissionStore
from coditect.taskqueue.consistency import ConsistencyChecker
from coditect.taskqueue.parametrize import Parametrizer
from coditect.taskqueue.testsetup import install_missing_dependencies, record_baseline
from coditect.taskqueue.world_model import WorldModel
from coditect.workspace import open_workspace

__all__ = ["MissionRunner", "MissionSettings"]


@dataclass(frozen=True)
class MissionSettings:
    """Knobs of a mission run."""

    policy: GoalPolicy = field(default_factory=GoalPolicy)
    task_timeout_s: float = 300.0
    #: Wall-clock limit of one test run (also the project's baseline run before planning).
    test_timeout_s: float = 120.0
    state_dir: Path | None = None
    commit: bool = True
    reuse: bool = True
    budget_usd: float | None = None
    budget_tokens: int | None = None


class _BusSink(EventSink):
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def __call__(self, event: Event) -> None:
        await self.bus.publish(event)


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
        self.settings = s = settings or MissionSettings()
        reusing = s.reuse and reuse is not None
        step = TaskStep(
            model=model,
            sandbox=sandbox,
            allocator=allocator,
            parametrizer=parametrizer or Parametrizer(),
            checker=checker or ConsistencyChecker(),
            task_timeout_s=s.task_timeout_s,
            responses=reuse.responses if reusing and reuse is not None else None,
            reuse=reuse.tasks if reusing and reuse is not None else None,
        )
        state_dir = s.state_dir or Path.home() / ".local" / "share" / "coditect"
        checkpoints = store if isinstance(store, CheckpointStore) else None
        self.port = InProcessPort(step, state_dir=state_dir, checkpoints=checkpoints)
        policy = CoordinatorPolicy(
            goals=s.policy, reuse=s.reuse, budget_usd=s.budget_usd,
            budget_tokens=s.budget_tokens, commit=s.commit,
        )  # fmt: skip
        sink = _BusSink(bus)
        self.coordinator = Coordinator(
            model=model, port=self.port, store=store, policy=policy, planner=planner,
            ledger=ledger, reuse=reuse, sink=sink,
        )  # fmt: skip
        self.port.emit = self.coordinator.emit
        self.review = review  # None: every verified change lands (no review step)

    @property
    def review(self) -> ReviewGate | None:
        """Asked before a verified change lands (``coditect run --review``, ``coditect ui``)."""
        return self.coordinator.review

    @review.setter
    def review(self, gate: ReviewGate | None) -> None:
        self.coordinator.review = gate

    @property
    def ledger(self) -> Ledger:
        """The cost ledger the missions record their model calls in."""
        return self.coordinator.ledger

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
        request = check_request(request, self.model)
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
            self.port.attach(mid, ws)
            try:
                # Stored at once (RUNNING, with this process as owner): a mission killed during
                # the baseline or the plan is shown as INTERRUPTED, never silently missing.
                await self.coordinator.store.save_report(report)
                # The project's own tests, once, before any edit (docs/realrepo.md), with the
                # dependencies it declares that this interpreter lacks installed first.
                installed = (await install_missing_dependencies(ws.path)).note()
                if installed:
                    report.notes.append(installed)
                baseline = await record_baseline(
                    ws.path, self.sandbox, timeout_s=self.settings.test_timeout_s
                )
                if baseline is not None and baseline.note:
                    report.notes.append(baseline.note)
                run = await self.coordinator.plan(report, ws.path)
            except CoditectError as exc:
                self.port.detach(mid)
                await self.coordinator.abandon(report, MissionOutcome.FAILED, str(exc), started)
                return report
            except asyncio.CancelledError:
                self.port.detach(mid)
                await asyncio.shield(
                    self.coordinator.abandon(
                        report, MissionOutcome.CANCELLED, CANCELLED_REASON, started
                    )
                )
                raise
            except BaseException:
                self.port.detach(mid)
                raise
            run.started = started
            if on_plan is not None:
                maybe = on_plan(report)
                if maybe is not None:
                    await maybe
            return await self.coordinator.drive(run)

    async def resume(self, report: MissionReport, checkpoint: MissionCheckpoint) -> MissionReport:
        """Continue an interrupted mission after its last completed task; its final report.

        The workspace is a fresh copy of the repository (which must still be at the mission's
        base commit) with the checkpointed files written over it; the completed tasks keep
        their checkpointed results and are not run again.

        Args:
            report: The mission's stored report (its status is set back to RUNNING).
            checkpoint: The mission's last checkpoint.

        Raises:
            InputError: The checkpoint does not apply to the repository as it is now, or the
                repository is unusable (nothing was started).
            asyncio.CancelledError: The mission was cancelled; its report is stored as CANCELLED.
        """
        started = time.monotonic()
        ws = open_workspace(Path(report.repo))
        mid = report.mission_id
        with bind_mission(mid):
            try:
                world = WorldModel(ws.path)
                await asyncio.to_thread(world.scan)
                baseline = world.snapshot()
                why = mismatch(checkpoint, head=ws.git.head if ws.git else "", files=baseline)
                if why:
                    raise InputError(
                        f"the checkpoint of {mid} does not apply: {why}",
                        hint=f"`coditect resume {mid} --from-start` runs its plan again from "
                        "the first task on the repository as it is now",
                    )
                await install_missing_dependencies(ws.path)
                await record_baseline(
                    ws.path, self.sandbox, timeout_s=self.settings.test_timeout_s
                )  # before the restored edits
                await asyncio.to_thread(restore_files, ws.path, checkpoint.files)
                run = self.coordinator.restore(report, checkpoint, baseline=baseline)
            except BaseException:
                ws.cleanup()
                raise
            self.port.attach(mid, ws)
            run.started = started
            done = len(checkpoint.completed)
            report.status, report.reason, report.plan_source = MissionOutcome.RUNNING, "", "resumed"
            report.notes.append(
                f"resumed from its checkpoint: {done} completed task(s) kept, not run again"
            )
            return await self.coordinator.drive(
                run, reason=f"resumed after {done} completed task(s)"
            )
