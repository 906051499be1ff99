"""In-process bus backends: the event bus of one-process mode and a work queue fake.

:class:`MemoryBus` is the embedded mode's :class:`~coditect.bus.base.EventBus`;
:class:`MemoryWorkQueue` is a :class:`~coditect.bus.base.WorkQueue` with JetStream's
redelivery rules (ack wait, nak backoff, max deliveries, dead letters), held to the same
contract suite (tests/contracts/test_workqueue_contract.py), for tests and one-process use.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from coditect.bus.base import (
    DeadLetter,
    EventBus,
    LeaseOutcome,
    PublishResult,
    TaskMessage,
    beating,
    subject_matches,
)
from coditect.domain.events import Event
from coditect.errors import BusError

__all__ = ["MemoryBus", "MemoryLease", "MemoryWorkQueue"]

_CLOSED = object()


class MemoryBus(EventBus):
    """Fans each published event out to the subscribers whose pattern matches its type.

    Subscribers get every event published after they subscribed, in publish order. A slow
    subscriber buffers without limit, which is fine for one mission's events in one process.
    """

    def __init__(self) -> None:
        self._subs: list[tuple[str, asyncio.Queue[object]]] = []
        self._closed = False

    async def publish(self, event: Event) -> None:
        """Deliver ``event`` to matching subscribers."""
        if self._closed:
            return
        for pattern, queue in list(self._subs):
            if subject_matches(pattern, event.type):
                queue.put_nowait(event)

    def subscribe(self, pattern: str = ">") -> AsyncIterator[Event]:
        """Subscribe now; iterate to receive events until the bus closes."""
        queue: asyncio.Queue[object] = asyncio.Queue()
        entry = (pattern, queue)
        self._subs.append(entry)
        return self._iterate(entry)

    async def _iterate(self, entry: tuple[str, asyncio.Queue[object]]) -> AsyncIterator[Event]:
        queue = entry[1]
        try:
            while True:
                item = await queue.get()
                if item is _CLOSED:
                    return
                yield item  # type: ignore[misc]
        finally:
            if entry in self._subs:
                self._subs.remove(entry)

    async def close(self) -> None:
        """End every subscription."""
        self._closed = True
        for _, queue in self._subs:
            queue.put_nowait(_CLOSED)


@dataclass
class _Stored:
    """A queued message and its delivery bookkeeping."""

    seq: int
    message: TaskMessage
    headers: dict[str, str]
    enqueued_at: datetime
    deliveries: int = 0
    #: Not delivered before this time (a nak's delay, or the current lease's ack wait).
    hidden_until: float = 0.0
    #: Bumped on every delivery: a settle of an older lease is ignored.
    epoch: int = 0


@dataclass
class _Follower:
    """A durable dead-letter follower's position."""

    position: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class MemoryLease:
    """A message of a :class:`MemoryWorkQueue` held by one worker (a :class:`Lease`)."""

    def __init__(self, queue: MemoryWorkQueue, stored: _Stored) -> None:
        self._queue = queue
        self._stored = stored
        self._epoch = stored.epoch
        self.message = stored.message
        self.num_delivered = stored.deliveries
        self.headers = dict(stored.headers)
        self.enqueued_at: datetime | None = stored.enqueued_at
        self.outcome = ""
        self._done = False

    @property
    def done(self) -> bool:
        """True once acked, naked or termed."""
        return self._done

    def _current(self) -> bool:
        """Whether this is still the message's latest delivery and the queue is open."""
        self._queue._check_open()
        return self._stored.epoch == self._epoch and self._stored.seq in self._queue._queued

    async def ack(self) -> None:
        """Remove the message from the queue."""
        self._done = True
        self.outcome = LeaseOutcome.ACKED.value
        if self._current():
            del self._queue._queued[self._stored.seq]

    async def nak(self, delay_s: float | None = None) -> None:
        """Deliver the message again after ``delay_s`` (default: the queue's backoff)."""
        self._done = True
        self.outcome = LeaseOutcome.RETRY.value
        if self._current():
            delay = self._queue.nak_delay_s(self.num_delivered) if delay_s is None else delay_s
            self._stored.hidden_until = self._queue._clock() + delay
            self._queue._wake()

    async def term(self, reason: str) -> None:
        """Move the message to the dead letters."""
        self._done = True
        self.outcome = LeaseOutcome.DEAD_LETTERED.value
        if self._current():
            self._queue._dead_letter(self._stored, reason)

    async def in_progress(self) -> None:
        """Restart the ack-wait timer of this delivery."""
        if self._current():
            self._stored.hidden_until = self._queue._clock() + self._queue.ack_wait_s

    def keep_alive(self, interval_s: float | None = None) -> AbstractAsyncContextManager[None]:
        """Send :meth:`in_progress` every ``interval_s`` (default a third of the ack wait)."""
        return beating(self, interval_s or self._queue.ack_wait_s / 3)


class MemoryWorkQueue:
    """Task messages in one process, leased with JetStream's redelivery rules (a ``WorkQueue``).

    Args:
        ack_wait_s: A lease neither settled nor kept alive this long is delivered again.
        max_deliveries: A delivery beyond this many goes to the dead letters.
        nak_delay_s: First delay after a nak without one; doubled per delivery.
        nak_delay_max_s: Upper bound of that delay.
        duplicate_window_s: A ``message_id`` enqueued again within this window is not stored.
        clock: Monotonic seconds (tests may pass their own).
    """

    def __init__(
        self,
        *,
        ack_wait_s: float = 30.0,
        max_deliveries: int = 5,
        nak_delay_s: float = 1.0,
        nak_delay_max_s: float = 60.0,
        duplicate_window_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ack_wait_s = ack_wait_s
        self._max_deliveries = max_deliveries
        self._nak_delay_s = nak_delay_s
        self._nak_delay_max_s = nak_delay_max_s
        self._duplicate_window_s = duplicate_window_s
        self._clock = clock
        self._seqs = itertools.count(1)
        self._queued: dict[int, _Stored] = {}
        self._ids: dict[str, tuple[int, float]] = {}
        self._letters: list[DeadLetter] = []
        self._followers: dict[str, _Follower] = {}
        self._changed = asyncio.Event()
        self._closed = False

    @property
    def max_deliveries(self) -> int:
        """Deliveries of a message before it is dead-lettered."""
        return self._max_deliveries

    def nak_delay_s(self, num_delivered: int) -> float:
        """Redelivery delay after a nak of the ``num_delivered``-th delivery."""
        delay = self._nak_delay_s * 2 ** max(num_delivered - 1, 0)
        return float(min(delay, self._nak_delay_max_s))

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the work queue is closed", retryable=False)

    def _wake(self) -> None:
        self._changed.set()

    async def enqueue(
        self, msg: TaskMessage, *, headers: Mapping[str, str] | None = None
    ) -> PublishResult:
        """Add a task; a ``message_id`` seen within the duplicate window is not stored again."""
        self._check_open()
        now = self._clock()
        seen = self._ids.get(msg.message_id)
        if seen is not None and now - seen[1] < self._duplicate_window_s:
            return PublishResult(stream="memory", seq=seen[0], duplicate=True)
        seq = next(self._seqs)
        self._ids[msg.message_id] = (seq, now)
        self._queued[seq] = _Stored(
            seq=seq, message=msg, headers=dict(headers or {}), enqueued_at=datetime.now(UTC)
        )
        self._wake()
        return PublishResult(stream="memory", seq=seq)

    def _take(self, capability: str, batch: int) -> list[MemoryLease]:
        now = self._clock()
        leases: list[MemoryLease] = []
        for stored in list(self._queued.values()):
            if len(leases) >= batch:
                break
            if stored.message.capability != capability or stored.hidden_until > now:
                continue
            stored.deliveries += 1
            stored.epoch += 1
            if stored.deliveries > self._max_deliveries:
                reason = (
                    f"delivered {stored.deliveries} times (max_deliveries={self._max_deliveries})"
                )
                self._dead_letter(stored, reason)
                continue
            stored.hidden_until = now + self.ack_wait_s
            leases.append(MemoryLease(self, stored))
        return leases

    async def fetch(
        self, capability: str, *, batch: int = 1, timeout_s: float = 1.0
    ) -> list[MemoryLease]:
        """Lease up to ``batch`` tasks of ``capability``, waiting at most ``timeout_s`` for one."""
        self._check_open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            self._changed.clear()
            leases = self._take(capability, batch)
            remaining_s = deadline - loop.time()
            if leases or remaining_s <= 0 or self._closed:
                return leases
            # Woken by an enqueue or a nak; polled for expiring ack waits and nak delays.
            try:
                async with asyncio.timeout(min(remaining_s, 0.05)):
                    await self._changed.wait()
            except TimeoutError:
                pass

    def _dead_letter(self, stored: _Stored, reason: str) -> None:
        self._queued.pop(stored.seq, None)
        self._letters.append(
            DeadLetter(
                message=stored.message,
                data=stored.message.model_dump_json().encode(),
                reason=reason[:1000],
                deliveries=stored.deliveries,
                seq=len(self._letters) + 1,
                headers=dict(stored.headers),
            )
        )
        self._wake()

    async def dead_letters(self, capability: str | None = None) -> list[DeadLetter]:
        """The dead letters of ``capability`` (all when None), oldest first."""
        self._check_open()
        return [
            d
            for d in self._letters
            if capability is None or (d.message is not None and d.message.capability == capability)
        ]

    async def follow_dead_letters(
        self, durable: str, *, batch: int = 16, poll_s: float = 1.0
    ) -> AsyncIterator[DeadLetter]:
        """Dead letters written after ``durable`` first followed, each to one of its followers."""
        self._check_open()
        follower = self._followers.setdefault(durable, _Follower(position=len(self._letters)))
        while not self._closed:
            async with follower.lock:
                letter = None
                if follower.position < len(self._letters):
                    letter = self._letters[follower.position]
                    follower.position += 1
            if letter is not None:
                yield letter
                continue
            self._changed.clear()
            try:
                async with asyncio.timeout(min(poll_s, 0.05)):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Stop handing out work; later calls raise :class:`BusError`."""
        self._closed = True
        self._wake()
