"""The one task step: parametrize -> record the expectation -> run the agent -> rescan -> check.

Both ports run a task with :class:`TaskStep`: the in-process port on the mission's workspace,
a distributed worker on its clone of the mission branch. What comes out is a
:class:`StepOutcome`, which the coordinator settles the same way whichever port ran it. A
failed step is an outcome too (``error`` set), so its usage and ledger entries still reach the
mission; only infrastructure errors (a lost push, Redis down) are raised, for the port to retry.

The step owns what happens inside one task: the model stack (the task's share of the budget,
the response cache, the ledger, the usage counter), work reuse by content-addressed key, the
task timeout (a timed-out task fails; it is not retried), and the consistency check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from coditect.agents.base import Agent, AgentContext, Clock
from coditect.domain.actions import Action, Violation, ViolationKind
from coditect.domain.agents import Upstream
from coditect.domain.events import AgentAct, Event
from coditect.domain.results import CodeChange, TaskResult
from coditect.domain.tasks import TaskSpec
from coditect.errors import BudgetExceededError, CoditectError
from coditect.llm.base import Model
from coditect.llm.budget import Budget
from coditect.llm.cache import CacheStore
from coditect.llm.cascade import at_tier, tiers_of
from coditect.llm.ledger import CallContext, LedgerEntry, MemoryLedger
from coditect.llm.registry import instrument
from coditect.llm.usage import UsageCounter
from coditect.orchestrator.allocator import ResourceAllocator
from coditect.reuse.tasks import TaskReuse, apply_files
from coditect.sandbox.base import Sandbox
from coditect.taskqueue.consistency import ConsistencyChecker, Expectation
from coditect.taskqueue.parametrize import Parametrizer
from coditect.taskqueue.world_model import WorldModel

__all__ = ["FATAL_VIOLATIONS", "Allowance", "StepOutcome", "StepUsage", "TaskOrder", "TaskStep"]

#: Violations that fail the task (the others are reported, the result is kept).
FATAL_VIOLATIONS = frozenset(
    {ViolationKind.SYNTAX_ERROR, ViolationKind.MISSING_FILE, ViolationKind.UNEXPECTED_CHANGE}
)
_FROZEN = ConfigDict(frozen=True, extra="forbid")

Emit = Callable[[Event], Awaitable[None]]


class Allowance(BaseModel):
    """The mission's budget as a task starts: its limits and what is spent (None: no limit)."""

    model_config = _FROZEN

    max_usd: float | None = None
    max_tokens: int | None = None
    spent_usd: float = 0.0
    spent_tokens: int = 0


class TaskOrder(BaseModel):
    """Everything a task step needs, without a shared disk (it crosses the wire as JSON).

    Attributes:
        upstream: The results of the tasks this one builds on, sorted into their slots.
        allowance: The mission budget left; the step refuses calls beyond it.
        reuse: Whether the step may serve the task from the reuse store.
        tier: The cascade tier the task starts on (0 = the first model; ignored otherwise).
        time_left_s: The mission's time left when the order was made (None: no mission
            limit); the task's deadline is the nearer of this and the step's task timeout.
    """

    model_config = _FROZEN

    mission_id: str
    request: str
    task: TaskSpec
    upstream: Upstream = Field(default_factory=Upstream)
    allowance: Allowance | None = None
    reuse: bool = True
    tier: int = 0
    time_left_s: float | None = None


class StepUsage(BaseModel):
    """What one step's model calls used (added into the mission's usage counter)."""

    model_config = _FROZEN

    calls: int = 0
    reused_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    saved_tokens: int = 0
    usd: float = 0.0

    @classmethod
    def of(cls, counter: UsageCounter) -> StepUsage:
        """The figures of ``counter``."""
        return cls(
            calls=counter.calls,
            reused_calls=counter.reused_calls,
            input_tokens=counter.input_tokens,
            output_tokens=counter.output_tokens,
            cached_input_tokens=counter.cached_input_tokens,
            saved_tokens=counter.saved_tokens,
            usd=counter.usd,
        )


class StepOutcome(BaseModel):
    """What one task step produced: a result, or the error that failed it.

    Attributes:
        error: Why the task failed ("" when ``result`` is set).
        budget_stop: The budget refused a call: the whole mission stops, not only the task.
        reuse_key: The task's reuse key ("" when its intent is never reused).
        reuse_entry: The entry to store under ``reuse_key`` once the mission succeeds (JSON).
        ledger: The task's model calls, for the mission's cost ledger.
        commit: The branch head after a distributed worker's push ("" when nothing changed).
        fencing_token: The push lock's token when the change was pushed.
        notes: What a distributed worker found out about the project for the mission's report
            (the dependencies it installed for the tests, the sandbox they moved to); one
            process notes the same at the mission's start.
    """

    model_config = _FROZEN

    result: TaskResult | None = None
    error: str = ""
    budget_stop: bool = False
    violations: list[Violation] = Field(default_factory=list)
    agent: str = ""
    attempts: int = 1
    duration_s: float = 0.0
    usage: StepUsage = Field(default_factory=StepUsage)
    reused: bool = False
    reuse_key: str = ""
    reuse_entry: str = ""
    ledger: list[LedgerEntry] = Field(default_factory=list)
    changed_files: list[str] = Field(default_factory=list)
    commit: str = ""
    fencing_token: int = 0
    notes: list[str] = Field(default_factory=list)

    @property
    def input_tokens(self) -> int:
        """Fresh input tokens of the step."""
        return self.usage.input_tokens

    @property
    def output_tokens(self) -> int:
        """Output tokens of the step."""
        return self.usage.output_tokens


async def _no_emit(event: Event) -> None:
    return None


@dataclass
class TaskStep:
    """Runs one task on a workspace with the agents, model and sandbox of this process.

    Attributes:
        model: The backend model (this step adds the budget, cache, ledger and counter).
        responses: The exact LLM response cache (None: off).
        reuse: Task-result reuse (None: off).
        agent_suffix: Appended to the agent's name in outcomes and events (``@worker``).
    """

    model: Model
    sandbox: Sandbox
    allocator: ResourceAllocator
    parametrizer: Parametrizer = field(default_factory=Parametrizer)
    checker: ConsistencyChecker = field(default_factory=ConsistencyChecker)
    task_timeout_s: float = 300.0
    responses: CacheStore | None = None
    reuse: TaskReuse | None = None
    agent_suffix: str = ""

    async def run(
        self,
        order: TaskOrder,
        workspace: Path,
        *,
        emit: Emit = _no_emit,
        on_start: Callable[[str], Awaitable[None]] | None = None,
    ) -> StepOutcome:
        """Run ``order``'s task in ``workspace``; ``on_start`` gets the agent's name first."""
        task, t0 = order.task, time.monotonic()
        try:
            agent = self.allocator.allocate(task.capability)
        except CoditectError as exc:
            return StepOutcome(error=str(exc))
        name = agent.name + self.agent_suffix
        if on_start is not None:
            await on_start(name)
        world = WorldModel(workspace)
        await asyncio.to_thread(world.scan)
        initial = world.snapshot()
        action = self.parametrizer.parametrize(task, world, order.upstream, order.request)
        expectation = self.checker.expect(task, action, world)
        ledger = MemoryLedger()
        counter = UsageCounter(
            instrument(
                self.model,
                ledger=ledger,
                context=CallContext(mission_id=order.mission_id, task_id=task.id, agent=name),
                budget=_budget(order.allowance),
                cache=self.responses if order.reuse else None,
            )
        )
        key = ""
        if order.reuse and self.reuse is not None:
            key = self.reuse.key(task, action, world, order.upstream, order.request) or ""
        run = _Attempt(name=name, counter=counter)
        reused = await self._reuse(key, order, workspace, emit, run)
        if reused is not None:
            result: TaskResult | None = reused
        else:
            result = await self._run_agent(agent, order, action, workspace, counter, emit, run)
        await asyncio.to_thread(world.scan)
        return await self._check(
            order, world, initial, expectation, result, run, key, reused is not None, ledger, t0
        )

    async def _reuse(
        self, key: str, order: TaskOrder, workspace: Path, emit: Emit, run: _Attempt
    ) -> TaskResult | None:
        """The stored result of ``key`` with its files written back, or None on a miss."""
        if not key or self.reuse is None:
            return None
        entry = await self.reuse.lookup(key)
        if entry is None or not apply_files(entry, workspace):
            return None
        result = entry.result
        paths = result.paths if isinstance(result, CodeChange) else ()
        await emit(
            AgentAct(
                mission_id=order.mission_id,
                task_id=order.task.id,
                agent=run.name,
                action="reused",
                detail=f"result reused ({entry.tokens} tokens saved) " + " ".join(paths),
            )
        )
        run.counter.add_saved(entry.tokens)
        return result

    async def _run_agent(
        self,
        agent: Agent,
        order: TaskOrder,
        action: Action,
        workspace: Path,
        counter: UsageCounter,
        emit: Emit,
        run: _Attempt,
    ) -> TaskResult | None:
        ctx = AgentContext(
            mission_id=order.mission_id,
            request=order.request,
            task=order.task,
            action=action,
            workspace=workspace,
            model=counter,
            sandbox=self.sandbox,
            upstream=order.upstream,
            emit=emit,
            clock=Clock.within(
                min(self.task_timeout_s, order.time_left_s)
                if order.time_left_s is not None
                else self.task_timeout_s
            ),
        )

        def on_attempt(n: int) -> None:
            run.attempts = n

        try:
            return await asyncio.wait_for(
                self._on_tiers(agent, ctx, on_attempt, order, emit, run),
                timeout=self.task_timeout_s,
            )
        except TimeoutError:
            run.error = f"timed out after {self.task_timeout_s:.0f}s"
        except CoditectError as exc:
            refused = _budget_error(exc)
            run.budget_stop = refused is not None
            run.error = str(refused or exc)
        return None

    async def _on_tiers(
        self,
        agent: Agent,
        ctx: AgentContext,
        on_attempt: Callable[[int], None],
        order: TaskOrder,
        emit: Emit,
        run: _Attempt,
    ) -> TaskResult:
        """Cascade hook (issue 13): run the agent on the task's cascade tier.

        An answer the agent could not use (a CoditectError other than a budget stop) is retried
        on the next tier; the ledger records the tier of every call.
        """
        tiers = tiers_of(self.model)
        tier = order.tier
        while True:
            try:
                with at_tier(tier):
                    return await agent.run(ctx, on_attempt=on_attempt)
            except CoditectError as exc:
                if tier + 1 >= tiers or _budget_error(exc) is not None:
                    raise
                tier += 1
                await emit(
                    AgentAct(
                        mission_id=order.mission_id,
                        task_id=order.task.id,
                        agent=run.name,
                        action="escalated",
                        detail=f"tier {tier - 1} failed ({exc}); retrying on tier {tier}",
                    )
                )

    async def _check(
        self,
        order: TaskOrder,
        world: WorldModel,
        initial: dict[str, str],
        expectation: Expectation,
        result: TaskResult | None,
        run: _Attempt,
        key: str,
        reused: bool,
        ledger: MemoryLedger,
        t0: float,
    ) -> StepOutcome:
        violations: list[Violation] = []
        error = run.error
        if result is not None:
            violations = self.checker.check(expectation, world, result)
            fatal = [v for v in violations if v.kind in FATAL_VIOLATIONS]
            if fatal:
                error = "; ".join(f"{v.kind}: {v.message}" for v in fatal)
                result = None
        final = world.snapshot()
        changed = sorted(p for p in set(initial) | set(final) if initial.get(p) != final.get(p))
        entry = ""
        if key and result is not None and not reused and self.reuse is not None:
            stored = self.reuse.entry(
                result, world.root, tokens=run.counter.total_tokens, usd=run.counter.usd
            )
            entry = stored.model_dump_json() if stored is not None else ""
        return StepOutcome(
            result=result,
            error=error if result is None else "",
            budget_stop=run.budget_stop,
            violations=violations,
            agent=run.name,
            attempts=1 if reused else run.attempts,
            duration_s=round(time.monotonic() - t0, 3),
            usage=StepUsage.of(run.counter),
            reused=reused,
            reuse_key=key,
            reuse_entry=entry,
            ledger=list(await ledger.entries()),
            changed_files=changed,
        )


@dataclass
class _Attempt:
    """What the agent run left behind (internal to one step)."""

    name: str
    counter: UsageCounter
    attempts: int = 1
    error: str = ""
    budget_stop: bool = False


def _budget(allowance: Allowance | None) -> Budget | None:
    """The mission budget as the task starts (what it may still spend), or None without limits."""
    if allowance is None or (allowance.max_usd is None and allowance.max_tokens is None):
        return None
    budget = Budget(max_usd=allowance.max_usd, max_tokens=allowance.max_tokens)
    budget.spent_usd, budget.spent_tokens = allowance.spent_usd, allowance.spent_tokens
    return budget


def _budget_error(exc: BaseException) -> BudgetExceededError | None:
    """The budget refusal behind ``exc`` (agents wrap it), or None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BudgetExceededError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
