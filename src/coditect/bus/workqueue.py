"""A distributed task queue on NATS JetStream: workers lease task messages per capability.

Layout (see docs/distributed.md):

* stream ``CODITECT_TASKS`` (WORK_QUEUE retention) captures ``coditect.tasks.>``; a task for
  capability ``code`` is published on ``coditect.tasks.code`` with ``Nats-Msg-Id`` set to its
  ``message_id``, so a republished message is stored once;
* one durable pull consumer per capability (``workers-code``) is shared by every worker of
  that capability: each message goes to one of them;
* stream ``CODITECT_DLQ`` (LIMITS retention) captures ``coditect.dlq.>``: messages that failed
  for good, with the reason in the ``Coditect-Reason`` header and the original message's own
  headers (its trace context, ``traceparent``) kept.

A leased message that is neither acknowledged nor kept alive with ``in_progress()`` within
``ack_wait_s`` (its worker died) is delivered again, to any worker. The delivery limit is
enforced here rather than by the server's ``max_deliver``: a work-queue message that reaches
the server's limit stays in the stream, stranded; instead a delivery beyond
``max_deliveries`` is moved to the dead-letter stream and removed from the queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from coditect.aio import raise_if_cancelling
from coditect.bus.base import (
    DeadLetter,
    Lease,
    LeaseOutcome,
    PublishResult,
    TaskMessage,
    beating,
)
from coditect.bus.jetstream import (
    PublishPolicy,
    connect_nats,
    ensure_stream,
    publish_with_retry,
    stream_config,
)
from coditect.errors import BusError, CoditectError

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

# DeadLetter, Lease, LeaseOutcome and TaskMessage live in coditect.bus.base (backend-neutral);
# they are imported here for this module's own signatures.
__all__ = ["JetStreamLease", "JetStreamWorkQueue", "WorkQueueConfig"]

_log = logging.getLogger(__name__)

_TOKEN = r"^[A-Za-z0-9_-]+$"
REASON_HEADER = "Coditect-Reason"
DELIVERIES_HEADER = "Coditect-Deliveries"


class WorkQueueConfig(BaseModel):
    """Streams, consumers and redelivery rules of the work queue.

    Attributes:
        stream: The work-queue stream.
        subject_prefix: Tasks go to ``<subject_prefix>.<capability>``.
        dlq_stream: The dead-letter stream.
        dlq_prefix: Dead letters go to ``<dlq_prefix>.<capability>``.
        consumer_prefix: Durable consumer of a capability: ``<consumer_prefix>-<capability>``.
        ack_wait_s: A leased message not acknowledged (nor kept alive) within this time is
            delivered again.
        heartbeat_interval_s: How often a running handler tells the server it is still at
            work; ``None`` is a third of ``ack_wait_s``.
        max_deliveries: Deliveries before a message goes to the dead-letter stream.
        nak_delay_s: Delay of the first redelivery after a retryable failure; doubled per
            delivery up to ``nak_delay_max_s``.
        nak_delay_max_s: Upper bound of that delay.
        duplicate_window_s: De-duplication window of ``message_id``.
        max_age_s: A task not taken within this time is dropped; 0 is never.
        dlq_max_age_s: How long dead letters are kept; 0 is forever.
        storage: ``file`` or ``memory``.
        replicas: Copies of each stream in a NATS cluster.
        publish: Timeout and retries of each publish.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream: str = Field(default="CODITECT_TASKS", pattern=_TOKEN)
    subject_prefix: str = "coditect.tasks"
    dlq_stream: str = Field(default="CODITECT_DLQ", pattern=_TOKEN)
    dlq_prefix: str = "coditect.dlq"
    consumer_prefix: str = Field(default="workers", pattern=_TOKEN)
    ack_wait_s: float = Field(default=30.0, gt=0)
    heartbeat_interval_s: float | None = Field(default=None, gt=0)
    max_deliveries: int = Field(default=5, ge=1)
    nak_delay_s: float = Field(default=1.0, ge=0)
    nak_delay_max_s: float = Field(default=60.0, ge=0)
    duplicate_window_s: float = Field(default=120.0, gt=0)
    max_age_s: float = Field(default=0.0, ge=0)
    dlq_max_age_s: float = Field(default=14 * 24 * 3600.0, ge=0)
    storage: Literal["file", "memory"] = "file"
    replicas: int = Field(default=1, ge=1, le=5)
    publish: PublishPolicy = PublishPolicy()

    @property
    def heartbeat_s(self) -> float:
        """The effective heartbeat interval."""
        return self.heartbeat_interval_s or self.ack_wait_s / 3


def _own_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The headers a publisher set (trace context...), without the server's and ours."""
    return {
        k: v for k, v in (headers or {}).items() if not k.lower().startswith(("nats-", "coditect-"))
    }


def _dead_letter_of(msg: Msg) -> DeadLetter:
    headers = msg.headers or {}
    try:
        message: TaskMessage | None = TaskMessage.model_validate_json(msg.data)
    except ValueError:
        message = None
    return DeadLetter(
        message=message,
        data=msg.data,
        reason=headers.get(REASON_HEADER, ""),
        deliveries=int(headers.get(DELIVERIES_HEADER, "0")),
        seq=int(msg.metadata.sequence.stream),
        headers=_own_headers(headers),
    )


class JetStreamLease:
    """A JetStream message held by one worker until it acks, naks or terms it (a :class:`Lease`).

    Attributes:
        message: The task.
        num_delivered: 1 on the first delivery, 2 on the first redelivery, ...
        stream_seq: Sequence of the message in the work-queue stream.
        headers: The message's headers (the publisher's trace context, ``traceparent``).
        enqueued_at: When the message was stored in the stream (None if the server did not say).
        outcome: How the lease was settled: "" (not yet), ``acked``, ``retry`` or
            ``dead_lettered``.
    """

    def __init__(self, queue: JetStreamWorkQueue, msg: Msg, message: TaskMessage) -> None:
        self._queue = queue
        self._msg = msg
        self.message = message
        self.num_delivered = int(msg.metadata.num_delivered)
        self.stream_seq = int(msg.metadata.sequence.stream)
        self.headers: dict[str, str] = dict(msg.headers or {})
        self.enqueued_at: datetime | None = msg.metadata.timestamp
        self.outcome = ""
        self._done = False

    @property
    def done(self) -> bool:
        """True once acked, naked or termed."""
        return self._done

    async def _settle(self, what: str, op: Awaitable[Any]) -> None:
        from nats.errors import Error as NatsError

        try:
            await op
        except NatsError as exc:
            raise BusError(f"{what} of task {self.message.task_id} failed: {exc!r}") from exc

    async def ack(self) -> None:
        """The task is finished: remove it from the queue (waits for the server to confirm)."""
        self._done = True
        self.outcome = LeaseOutcome.ACKED.value
        await self._settle("ack", self._msg.ack_sync(timeout=self._queue.config.publish.timeout_s))

    async def nak(self, delay_s: float | None = None) -> None:
        """Give the task back for redelivery, after ``delay_s`` (default: the config's backoff)."""
        self._done = True
        self.outcome = LeaseOutcome.RETRY.value
        delay = self._queue.nak_delay_s(self.num_delivered) if delay_s is None else delay_s
        await self._settle("nak", self._msg.nak(delay=delay))

    async def term(self, reason: str) -> None:
        """Give the task up: move it to the dead-letter stream and remove it from the queue."""
        await self._queue._dead_letter(self._msg, self.message, reason, self.num_delivered)
        self._done = True
        self.outcome = LeaseOutcome.DEAD_LETTERED.value
        await self._settle("term", self._msg.term())

    async def in_progress(self) -> None:
        """Still working: restart the ``ack_wait`` timer."""
        await self._settle("in_progress", self._msg.in_progress())

    def keep_alive(self, interval_s: float | None = None) -> AbstractAsyncContextManager[None]:
        """Send :meth:`in_progress` every ``interval_s`` while the body runs."""
        return beating(self, interval_s or self._queue.config.heartbeat_s)


class JetStreamWorkQueue:
    """Task messages on JetStream, leased by workers through durable pull consumers.

    Build it with :meth:`connect`; one instance per worker process is typical.
    """

    def __init__(self, nc: NatsClient, *, config: WorkQueueConfig | None = None) -> None:
        """Wrap an open connection (prefer :meth:`connect`, which also creates the streams)."""
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream()
        self.config = config or WorkQueueConfig()
        self._pulls: dict[str, Any] = {}
        self._closed = False

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        config: WorkQueueConfig | None = None,
        connect_timeout_s: float = 2.0,
        max_wait_s: float = 10.0,
    ) -> JetStreamWorkQueue:
        """Connect to NATS at ``url`` and create or update the work-queue and dead-letter streams.

        Raises:
            BusUnavailableError: NATS is not reachable within ``max_wait_s`` (retryable).
        """
        nc = await connect_nats(url, connect_timeout_s=connect_timeout_s, max_wait_s=max_wait_s)
        queue = cls(nc, config=config)
        try:
            await queue._ensure_streams()
        except BaseException:
            await nc.close()
            raise
        return queue

    async def _ensure_streams(self) -> None:
        cfg = self.config
        common: dict[str, Any] = {
            "duplicate_window_s": cfg.duplicate_window_s,
            "storage": cfg.storage,
            "replicas": cfg.replicas,
        }
        await ensure_stream(
            self._js,
            stream_config(
                cfg.stream, cfg.subject_prefix, work_queue=True, max_age_s=cfg.max_age_s, **common
            ),
        )
        await ensure_stream(
            self._js,
            stream_config(cfg.dlq_stream, cfg.dlq_prefix, max_age_s=cfg.dlq_max_age_s, **common),
        )

    @property
    def max_deliveries(self) -> int:
        """Deliveries of a message before it is dead-lettered."""
        return self.config.max_deliveries

    def subject_for(self, capability: str) -> str:
        """The subject tasks of ``capability`` are published on."""
        return f"{self.config.subject_prefix}.{capability}"

    def nak_delay_s(self, num_delivered: int) -> float:
        """Redelivery delay after a retryable failure of the ``num_delivered``-th delivery."""
        delay = self.config.nak_delay_s * 2 ** max(num_delivered - 1, 0)
        return float(min(delay, self.config.nak_delay_max_s))

    async def enqueue(
        self, msg: TaskMessage, *, headers: Mapping[str, str] | None = None
    ) -> PublishResult:
        """Add a task; ``result.duplicate`` is True if its ``message_id`` was already stored.

        Args:
            msg: The task.
            headers: Extra NATS headers, e.g. the trace context (``traceparent``); a worker
                finds them in :attr:`Lease.headers`.

        Raises:
            BusError: The stream did not acknowledge it after every retry.
        """
        self._check_open()
        return await publish_with_retry(
            self._js,
            self.subject_for(msg.capability),
            msg.model_dump_json().encode(),
            msg_id=msg.message_id,
            policy=self.config.publish,
            headers=dict(headers) if headers else None,
        )

    async def depth(self) -> dict[str, int]:
        """Messages in the work-queue stream (waiting or leased, not yet settled), by capability.

        Raises:
            BusError: The server did not answer.
        """
        self._check_open()
        from nats.errors import Error as NatsError

        prefix = self.config.subject_prefix + "."
        try:
            info = await self._js.stream_info(self.config.stream, subjects_filter=prefix + ">")
        except NatsError as exc:
            raise BusError(f"cannot read the depth of {self.config.stream}: {exc!r}") from exc
        subjects = info.state.subjects or {}
        return {s[len(prefix) :]: int(n) for s, n in subjects.items() if s.startswith(prefix)}

    async def _pull(self, capability: str) -> Any:
        sub = self._pulls.get(capability)
        if sub is not None:
            return sub
        from nats.js.api import AckPolicy, ConsumerConfig

        cfg = self.config
        durable = f"{cfg.consumer_prefix}-{capability}"
        consumer = ConsumerConfig(
            durable_name=durable,
            filter_subject=self.subject_for(capability),
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=cfg.ack_wait_s,
            max_deliver=-1,  # enforced by _admit, see the module docstring
        )
        from nats.errors import Error as NatsError

        try:
            # Creates the consumer, or updates an existing one to these settings.
            await self._js.add_consumer(cfg.stream, consumer)
            sub = await self._js.pull_subscribe_bind(durable, stream=cfg.stream)
        except NatsError as exc:
            raise BusError(f"cannot set up consumer {durable}: {exc}") from exc
        self._pulls[capability] = sub
        return sub

    async def fetch(
        self, capability: str, *, batch: int = 1, timeout_s: float = 1.0
    ) -> list[JetStreamLease]:
        """Lease up to ``batch`` tasks of ``capability``, waiting at most ``timeout_s`` for one.

        Messages past ``max_deliveries`` are moved to the dead-letter stream instead of being
        returned, and bodies that are not a :class:`TaskMessage` too. An empty list means
        nothing was available in time.
        """
        self._check_open()
        from nats.errors import Error as NatsError
        from nats.errors import TimeoutError as NatsTimeout

        sub = await self._pull(capability)
        try:
            msgs = await sub.fetch(batch, timeout=timeout_s)
        except NatsTimeout:
            raise_if_cancelling()
            return []
        except asyncio.CancelledError:
            # close() cancels a fetch in flight; only a cancellation of our own task propagates.
            task = asyncio.current_task()
            if self._closed and task is not None and not task.cancelling():
                return []
            raise
        except NatsError as exc:
            if self._closed:
                return []
            raise BusError(f"fetch of {capability} tasks failed: {exc!r}") from exc
        # Messages fetched while our task was being cancelled stay unacked: redelivered later.
        raise_if_cancelling()
        leases = []
        for msg in msgs:
            lease = await self._admit(msg)
            if lease is not None:
                leases.append(lease)
        return leases

    async def _admit(self, msg: Msg) -> JetStreamLease | None:
        delivered = int(msg.metadata.num_delivered)
        try:
            message = TaskMessage.model_validate_json(msg.data)
        except ValueError as exc:
            await self._dead_letter(msg, None, f"malformed task message: {exc}", delivered)
            await msg.term()
            return None
        if delivered > self.config.max_deliveries:
            reason = f"delivered {delivered} times (max_deliveries={self.config.max_deliveries})"
            await self._dead_letter(msg, message, reason, delivered)
            await msg.term()
            return None
        return JetStreamLease(self, msg, message)

    async def _dead_letter(
        self, msg: Msg, message: TaskMessage | None, reason: str, deliveries: int
    ) -> None:
        capability = message.capability if message else msg.subject.rsplit(".", 1)[-1]
        msg_id = message.message_id if message else f"seq-{msg.metadata.sequence.stream}"
        _log.warning("dead-lettering %s: %s", msg_id, reason)
        await publish_with_retry(
            self._js,
            f"{self.config.dlq_prefix}.{capability}",
            msg.data,
            msg_id=f"dlq-{msg_id}",
            policy=self.config.publish,
            headers={
                **_own_headers(msg.headers),  # the trace context goes with the letter
                REASON_HEADER: reason[:1000],
                DELIVERIES_HEADER: str(deliveries),
            },
        )

    async def lease(
        self, capability: str, *, batch: int = 1, poll_s: float = 1.0
    ) -> AsyncIterator[JetStreamLease]:
        """Lease tasks of ``capability`` one after another until the queue is closed."""
        while not self._closed:
            try:
                leases = await self.fetch(capability, batch=batch, timeout_s=poll_s)
            except BusError:
                if self._closed:
                    return
                raise
            for lease in leases:
                yield lease

    async def process(
        self, lease: Lease, handler: Callable[[TaskMessage], Awaitable[None]]
    ) -> LeaseOutcome:
        """Run ``handler`` on a lease, keeping it alive, then settle it.

        Success acks. A :class:`CoditectError` that is not retryable terms the message (to the
        dead-letter stream); any other exception naks it with backoff, so it is tried again
        until ``max_deliveries``. Cancellation leaves the lease to expire and be redelivered.
        """
        try:
            async with lease.keep_alive():
                await handler(lease.message)
        except CoditectError as exc:
            if not exc.retryable:
                await lease.term(f"{type(exc).__name__}: {exc}")
                return LeaseOutcome.DEAD_LETTERED
            await lease.nak()
            return LeaseOutcome.RETRY
        except Exception as exc:  # an unknown failure is retried, within limits
            _log.warning("task %s failed: %r", lease.message.task_id, exc)
            await lease.nak()
            return LeaseOutcome.RETRY
        await lease.ack()
        return LeaseOutcome.ACKED

    async def dead_letters(self, capability: str | None = None) -> list[DeadLetter]:
        """The dead letters kept for ``capability`` (all capabilities when None), oldest first."""
        self._check_open()
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        subject = f"{self.config.dlq_prefix}.{capability or '>'}"
        sub = await self._js.pull_subscribe(
            subject,
            stream=self.config.dlq_stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30
            ),
        )
        out: list[DeadLetter] = []
        try:
            while True:
                pending = (await sub.consumer_info()).num_pending or 0
                if pending == 0:
                    return out
                for msg in await sub.fetch(min(pending, 256), timeout=5.0):
                    out.append(_dead_letter_of(msg))
        finally:
            await sub.unsubscribe()

    async def follow_dead_letters(
        self, durable: str, *, batch: int = 16, poll_s: float = 1.0
    ) -> AsyncIterator[DeadLetter]:
        """Dead letters as they arrive, through the durable consumer ``durable``, until closed.

        Every process that follows with the same ``durable`` shares one position: each dead
        letter goes to one of them, and letters written while none was running are delivered
        when one starts again (only letters written after the consumer was first created).
        A letter is acknowledged when the caller asks for the next one, so a letter whose
        handling was interrupted by a crash is delivered again (after ``ack_wait_s``).

        Raises:
            BusError: The consumer cannot be set up, or NATS was lost (retryable).
        """
        self._check_open()
        from nats.errors import Error as NatsError
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        cfg = self.config
        consumer = ConsumerConfig(
            durable_name=durable,
            filter_subject=f"{cfg.dlq_prefix}.>",
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=cfg.ack_wait_s,
            deliver_policy=DeliverPolicy.NEW,
        )
        try:
            await self._js.add_consumer(cfg.dlq_stream, consumer)
            sub = await self._js.pull_subscribe_bind(durable, stream=cfg.dlq_stream)
        except NatsError as exc:
            raise BusError(f"cannot set up dead-letter consumer {durable}: {exc}") from exc
        while not self._closed:
            try:
                msgs = await sub.fetch(batch, timeout=poll_s)
            except (NatsTimeout, TimeoutError):  # nothing new (a batch fetch raises the latter)
                continue
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._closed and task is not None and not task.cancelling():
                    return
                raise
            except NatsError as exc:
                if self._closed:
                    return
                raise BusError(f"fetch of dead letters failed: {exc!r}") from exc
            for msg in msgs:
                yield _dead_letter_of(msg)
                try:
                    await msg.ack()
                except NatsError as exc:  # delivered again after ack_wait: handlers are idempotent
                    _log.debug("ack of dead letter %s failed: %r", msg.metadata.sequence, exc)

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the work queue is closed", retryable=False)

    async def close(self) -> None:
        """Close the connection; messages leased and not settled are redelivered after ack_wait."""
        if self._closed:
            return
        self._closed = True
        await self._nc.close()
