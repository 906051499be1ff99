"""The bus interfaces: events (:class:`EventBus`) and leased work (:class:`WorkQueue`).

Each is implemented in memory for one process and tests (:mod:`coditect.bus.memory`) and by
NATS JetStream when distributed (:mod:`coditect.bus.jetstream`, :mod:`coditect.bus.workqueue`).
Only the composition roots (:mod:`coditect.runtime`) pick one; the rest of the code sees these
types.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from coditect.aio import cancel_and_wait
from coditect.domain.events import Event

__all__ = [
    "DeadLetter",
    "EventBus",
    "Lease",
    "LeaseOutcome",
    "PublishResult",
    "TaskMessage",
    "WorkQueue",
    "beating",
    "subject_matches",
]

_log = logging.getLogger(__name__)

_TOKEN = r"^[A-Za-z0-9_-]+$"


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS-style subject match: ``*`` matches one token, ``>`` the rest (one or more tokens)."""
    p_tokens = pattern.split(".")
    s_tokens = subject.split(".")
    for i, tok in enumerate(p_tokens):
        if tok == ">":
            return len(s_tokens) > i
        if i >= len(s_tokens) or (tok != "*" and tok != s_tokens[i]):
            return False
    return len(p_tokens) == len(s_tokens)


class EventBus(abc.ABC):
    """Publishes typed events and lets consumers subscribe by subject pattern.

    An event's subject is its ``type`` (``agent.think``, ``task.state``, ...).
    """

    @abc.abstractmethod
    async def publish(self, event: Event) -> None:
        """Publish one event. Raises :class:`~coditect.errors.CoditectError` if it cannot be stored."""

    @abc.abstractmethod
    def subscribe(self, pattern: str = ">") -> AsyncIterator[Event]:
        """Events published from now on whose subject matches ``pattern``, until the bus closes."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop delivering events and release connections."""


class PublishResult(BaseModel):
    """Where the stream stored a published message.

    Attributes:
        stream: Name of the stream.
        seq: Stream sequence number of the message.
        duplicate: True when the message id was already stored (nothing new was written).
    """

    model_config = ConfigDict(frozen=True)

    stream: str
    seq: int
    duplicate: bool = False


def _message_id() -> str:
    return uuid.uuid4().hex


class TaskMessage(BaseModel):
    """One unit of work for an agent of some capability.

    Attributes:
        mission_id: The mission the task belongs to.
        task_id: The task within the mission.
        capability: Which workers may take it (``analyze``, ``code``, ``test``...); one subject
            token, so letters, digits, ``_`` and ``-`` only.
        body: The task's payload as a JSON string (opaque to the queue).
        message_id: De-duplication key: enqueueing the same id again within the duplicate
            window stores nothing. A new attempt of a task needs a new id.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mission_id: str
    task_id: str
    capability: str = Field(pattern=_TOKEN)
    body: str = "{}"
    message_id: str = Field(default_factory=_message_id, min_length=1)


class DeadLetter(BaseModel):
    """A message given up for good (moved to the dead letters).

    Attributes:
        message: The task message as it was enqueued (None if it was malformed).
        data: The message body as it was enqueued.
        reason: Why it was given up.
        deliveries: How many times it had been delivered.
        seq: Its sequence among the dead letters.
        headers: The original message's own headers (the publisher's trace context,
            ``traceparent``), without the backend's and ``Coditect-*`` ones.
    """

    model_config = ConfigDict(frozen=True)

    message: TaskMessage | None
    data: bytes
    reason: str
    deliveries: int
    seq: int
    headers: dict[str, str] = Field(default_factory=dict)


class LeaseOutcome(enum.StrEnum):
    """How a lease was settled."""

    ACKED = "acked"
    RETRY = "retry"
    DEAD_LETTERED = "dead_lettered"


class Lease(Protocol):
    """A task message held by one worker until it acks, naks or terms it.

    Attributes:
        message: The task.
        num_delivered: 1 on the first delivery, 2 on the first redelivery, ...
        headers: The message's headers (the publisher's trace context, ``traceparent``).
        enqueued_at: When the message was stored (None if the backend did not say).
        outcome: How the lease was settled: "" (not yet) or a :class:`LeaseOutcome` value.
    """

    message: TaskMessage
    num_delivered: int
    headers: dict[str, str]
    enqueued_at: datetime | None
    outcome: str

    @property
    def done(self) -> bool:
        """True once acked, naked or termed."""
        ...

    async def ack(self) -> None:
        """The task is finished: remove it from the queue."""
        ...

    async def nak(self, delay_s: float | None = None) -> None:
        """Give the task back for redelivery after ``delay_s`` (default: the queue's backoff)."""
        ...

    async def term(self, reason: str) -> None:
        """Give the task up: move it to the dead letters and remove it from the queue."""
        ...

    async def in_progress(self) -> None:
        """Still working: restart the redelivery timer."""
        ...

    def keep_alive(self, interval_s: float | None = None) -> AbstractAsyncContextManager[None]:
        """Send :meth:`in_progress` every ``interval_s`` while the body runs."""
        ...


class WorkQueue(Protocol):
    """Task messages leased by workers per capability, redelivered until settled.

    A leased message that is neither settled nor kept alive within the queue's ack wait is
    delivered again (to any worker); a delivery beyond :attr:`max_deliveries` goes to the dead
    letters instead. Errors are :class:`~coditect.errors.BusError`.
    """

    @property
    def max_deliveries(self) -> int:
        """Deliveries of a message before it is dead-lettered."""
        ...

    async def enqueue(
        self, msg: TaskMessage, *, headers: Mapping[str, str] | None = None
    ) -> PublishResult:
        """Add a task; ``result.duplicate`` is True if its ``message_id`` was already stored."""
        ...

    async def fetch(
        self, capability: str, *, batch: int = 1, timeout_s: float = 1.0
    ) -> Sequence[Lease]:
        """Lease up to ``batch`` tasks of ``capability``, waiting at most ``timeout_s``."""
        ...

    async def dead_letters(self, capability: str | None = None) -> list[DeadLetter]:
        """The dead letters kept for ``capability`` (all when None), oldest first."""
        ...

    def follow_dead_letters(
        self, durable: str, *, batch: int = 16, poll_s: float = 1.0
    ) -> AsyncIterator[DeadLetter]:
        """Dead letters written from now on, shared by the followers named ``durable``."""
        ...

    async def close(self) -> None:
        """Stop; leases not settled are redelivered after the ack wait."""
        ...


@contextlib.asynccontextmanager
async def beating(lease: Lease, period_s: float) -> AsyncIterator[None]:
    """Call ``lease.in_progress()`` every ``period_s`` while the body runs (a lease's keep_alive).

    A failed beat is logged and the next one tried: a reconnecting backend catches up.
    """

    async def beat() -> None:
        while True:
            await asyncio.sleep(period_s)
            try:
                await lease.in_progress()
            except Exception as exc:  # keep beating through a reconnect
                _log.debug("heartbeat for %s failed: %r", lease.message.task_id, exc)

    task = asyncio.get_running_loop().create_task(beat())
    try:
        yield
    finally:
        await cancel_and_wait(task)  # a client library may lose the first cancel()
