"""The agent framework: the Agent interface, its context, lifecycle and error recovery.

An agent turns one task (with its parametrised :class:`~coditect.domain.Action`) into a typed
result. :meth:`Agent.run` wraps :meth:`Agent.execute` with the lifecycle (idle -> busy -> idle),
status reporting and retries: an error whose ``retryable`` flag is set is retried with exponential
backoff; any other error fails the task at once.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from coditect.domain.actions import Action
from coditect.domain.agents import AgentLifecycle, AgentStatus, Upstream
from coditect.domain.events import Event
from coditect.domain.results import TaskResult
from coditect.domain.tasks import TaskSpec
from coditect.errors import AgentError, CoditectError
from coditect.llm.base import Model
from coditect.sandbox.base import Sandbox

__all__ = [
    "Agent",
    "AgentContext",
    "Clock",
    "AgentLifecycle",
    "AgentStatus",
    "RetryPolicy",
    "Upstream",
]


async def _no_emit(event: Event) -> None:
    return None


@dataclass
class Clock:
    """The time a task has left, and how long its slowest steps took so far.

    An agent that works in rounds (the coder: answers, candidate checks) asks :meth:`has_room`
    before it starts one more, and keeps what it has instead of being stopped half-way by the
    task's timeout, which leaves nothing.

    Attributes:
        deadline: ``time.monotonic()`` at which the task is stopped; None: no limit.
        answer_s: The slowest model answer of the task so far.
        check_s: The slowest candidate check run of the task so far.
    """

    deadline: float | None = None
    answer_s: float = 0.0
    check_s: float = 0.0

    @classmethod
    def within(cls, seconds: float | None) -> Clock:
        """A clock that runs out ``seconds`` from now (None: never)."""
        return cls(None if seconds is None else time.monotonic() + max(seconds, 0.0))

    def left_s(self) -> float:
        """Seconds until the deadline (infinite without one)."""
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def answered(self, seconds: float) -> None:
        """Record a model answer that took ``seconds``."""
        self.answer_s = max(self.answer_s, seconds)

    def checked(self, seconds: float) -> None:
        """Record a candidate check run that took ``seconds``."""
        self.check_s = max(self.check_s, seconds)

    def has_room(self, *, answers: int = 1) -> bool:
        """Whether ``answers`` more answers and one check run likely end before the deadline.

        Estimated from the slowest answer and check run so far (before the first answer,
        there is room).
        """
        return self.left_s() > answers * self.answer_s + self.check_s


@dataclass(frozen=True)
class AgentContext:
    """Everything an agent needs for one task; built by the orchestrator, never a dict.

    Attributes:
        workspace: The project directory the task works in (already isolated from the user's tree).
        emit: Publishes an event (agent.think / agent.act / agent.learn) on the bus.
        clock: The task's deadline and the durations seen so far (shared by the task's retries).
    """

    mission_id: str
    request: str
    task: TaskSpec
    action: Action
    workspace: Path
    model: Model
    sandbox: Sandbox
    upstream: Upstream = field(default_factory=Upstream)
    emit: Callable[[Event], Awaitable[None]] = _no_emit
    attempt: int = 1
    clock: Clock = field(default_factory=Clock)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for retryable errors."""

    max_attempts: int = 3
    initial_delay_s: float = 0.2
    multiplier: float = 2.0
    max_delay_s: float = 5.0

    def delay_s(self, attempt: int) -> float:
        """Delay before attempt number ``attempt + 1`` (attempts count from 1)."""
        return min(self.max_delay_s, self.initial_delay_s * self.multiplier ** (attempt - 1))


class Agent(abc.ABC):
    """A worker agent with a name and a set of capabilities (``analyze``, ``code``, ``test``)."""

    name: str = "agent"
    capabilities: frozenset[str] = frozenset()

    def __init__(self, *, retry: RetryPolicy | None = None) -> None:
        self.retry = retry or RetryPolicy()
        self._state = AgentLifecycle.IDLE
        self._current = ""
        self._done = 0
        self._failed = 0

    @abc.abstractmethod
    async def execute(self, ctx: AgentContext) -> TaskResult:
        """Do the task once and return its result; raise a CoditectError on failure."""

    def report_status(self) -> AgentStatus:
        """The agent's current lifecycle state and counters."""
        return AgentStatus(
            name=self.name,
            capabilities=tuple(sorted(self.capabilities)),
            state=self._state,
            current_task=self._current,
            tasks_done=self._done,
            tasks_failed=self._failed,
            load=1 if self._state is AgentLifecycle.BUSY else 0,
        )

    async def run(
        self,
        ctx: AgentContext,
        *,
        on_attempt: Callable[[int], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> TaskResult:
        """Execute with lifecycle tracking and retries of retryable errors.

        Raises:
            AgentError: The task failed (wrapping the last error; ``retryable`` is False once the
                attempts are used up).
        """
        if self._state is AgentLifecycle.STOPPED:
            raise AgentError(f"agent {self.name} is stopped")
        self._state, self._current = AgentLifecycle.BUSY, ctx.task.id
        try:
            attempt = 1
            while True:
                if on_attempt is not None:
                    on_attempt(attempt)
                started = time.monotonic()
                try:
                    result = await self.execute(_with_attempt(ctx, attempt))
                except CoditectError as exc:
                    if exc.retryable and attempt < self.retry.max_attempts:
                        await sleep(self.retry.delay_s(attempt))
                        attempt += 1
                        continue
                    self._failed += 1
                    if isinstance(exc, AgentError):
                        raise
                    raise AgentError(
                        f"{self.name} failed on {ctx.task.id} after {attempt} attempt(s) "
                        f"in {time.monotonic() - started:.1f}s: {exc}",
                        hint=exc.hint,
                    ) from exc
                self._done += 1
                return result
        finally:
            if self._state is AgentLifecycle.BUSY:
                self._state, self._current = AgentLifecycle.IDLE, ""

    def stop(self) -> None:
        """Refuse further tasks."""
        self._state = AgentLifecycle.STOPPED


def _with_attempt(ctx: AgentContext, attempt: int) -> AgentContext:
    if ctx.attempt == attempt:
        return ctx
    from dataclasses import replace

    return replace(ctx, attempt=attempt)
