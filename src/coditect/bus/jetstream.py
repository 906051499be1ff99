"""The distributed EventBus: events are stored in a NATS JetStream stream and read back by pattern.

Layout (see docs/distributed.md): one stream (``CODITECT_EVENTS`` by default) captures the
subjects ``coditect.events.>``; an event of type ``agent.think`` is published on
``coditect.events.agent.think`` with header ``Nats-Msg-Id = event.event_id`` so that a publish
retried inside the stream's duplicate window is stored once. Live subscriptions and replays are
ordered, ephemeral consumers; nothing is acknowledged, so readers never affect each other.

``nats-py`` is imported lazily (``pip install nats-py``), like every heavy backend SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from coditect.bus.base import EventBus, PublishResult
from coditect.domain.events import Event, event_adapter
from coditect.errors import BusError, BusUnavailableError

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext
    from nats.js.api import StreamConfig

__all__ = [
    "BusError",
    "BusUnavailableError",
    "JetStreamBus",
    "JetStreamConfig",
    "PublishPolicy",
    "PublishResult",
    "connect_nats",
    "ensure_stream",
    "publish_with_retry",
    "stream_config",
]

_log = logging.getLogger(__name__)

#: After a connection is up, a lost server is retried this often, this far apart (2 minutes).
_RECONNECT_ATTEMPTS = 60
_RECONNECT_WAIT_S = 2.0


class PublishPolicy(BaseModel):
    """How a publish to a stream is retried.

    Attributes:
        timeout_s: How long one try waits for the stream's acknowledgement.
        attempts: Tries before the publish fails.
        backoff_initial_s: Wait before the second try; doubled after each failure.
        backoff_max_s: Upper bound of the wait between tries.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_s: float = Field(default=2.0, gt=0)
    attempts: int = Field(default=5, ge=1)
    backoff_initial_s: float = Field(default=0.05, ge=0)
    backoff_max_s: float = Field(default=2.0, ge=0)


class JetStreamConfig(BaseModel):
    """Settings of the events stream and of publishing to it.

    Attributes:
        stream: Name of the JetStream stream holding the events.
        subject_prefix: Events go to ``<subject_prefix>.<event type>``.
        max_age_s: How long an event is kept (the stream's TTL); 0 keeps events forever.
        max_bytes: Size limit of the stream (oldest events are dropped first); -1 is no limit.
        duplicate_window_s: A message id seen again within this window is not stored twice.
        storage: ``file`` survives a server restart, ``memory`` does not.
        replicas: Copies of the stream in a NATS cluster (1 for a single server).
        publish: Timeout and retries of each publish.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream: str = Field(default="CODITECT_EVENTS", pattern=r"^[A-Za-z0-9_-]+$")
    subject_prefix: str = "coditect.events"
    max_age_s: float = Field(default=7 * 24 * 3600.0, ge=0)
    max_bytes: int = -1
    duplicate_window_s: float = Field(default=120.0, gt=0)
    storage: Literal["file", "memory"] = "file"
    replicas: int = Field(default=1, ge=1, le=5)
    publish: PublishPolicy = PublishPolicy()


def _import_nats() -> Any:
    try:
        import nats
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BusUnavailableError(
            "the NATS client is not installed", retryable=False, hint="pip install nats-py"
        ) from exc
    return nats


async def _quiet_error_cb(exc: Exception) -> None:
    # nats-py logs every asynchronous error at ERROR level by default; a reconnecting client
    # is expected to see some, so they are kept at debug level here.
    _log.debug("nats: %r", exc)


async def connect_nats(
    url: str,
    *,
    connect_timeout_s: float = 2.0,
    max_wait_s: float = 10.0,
    name: str = "coditect",
) -> NatsClient:
    """Connect to NATS, retrying with exponential backoff for at most ``max_wait_s``.

    Once connected the client reconnects by itself after a server restart.

    Raises:
        BusUnavailableError: The server could not be reached in time (retryable; its hint asks
            whether nats-server runs at ``url``), or it runs without JetStream.
    """
    nats = _import_nats()
    from nats.aio.client import Client

    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_s
    delay_s, attempt = 0.05, 0
    while True:
        attempt += 1
        nc = Client()
        try:
            # nats-py retries inside connect() (60 x 2 s by default, even with
            # allow_reconnect=False): allow it a single quick retry here, so that this loop
            # bounds the wait, and restore the usual reconnect behaviour once connected.
            connecting = nc.connect(
                url,
                connect_timeout=connect_timeout_s,  # type: ignore[arg-type]
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.05,  # type: ignore[arg-type]
                error_cb=_quiet_error_cb,
                name=name,
            )
            await asyncio.wait_for(connecting, timeout=max(deadline - loop.time(), 0.05))
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                raise BusUnavailableError(
                    f"cannot connect to NATS at {url} after {attempt} attempts in {max_wait_s:g}s:"
                    f" {exc!r}",
                    hint=f"is nats-server running at {url}?",
                ) from exc
            await asyncio.sleep(min(delay_s, remaining_s))
            delay_s = min(delay_s * 2, 2.0)
            continue
        nc.options.update(
            allow_reconnect=True,
            max_reconnect_attempts=_RECONNECT_ATTEMPTS,
            reconnect_time_wait=_RECONNECT_WAIT_S,
        )
        return nc


def stream_config(
    name: str,
    subject_prefix: str,
    *,
    work_queue: bool = False,
    max_age_s: float = 0.0,
    max_bytes: int = -1,
    duplicate_window_s: float = 120.0,
    storage: Literal["file", "memory"] = "file",
    replicas: int = 1,
) -> StreamConfig:
    """The nats-py configuration of a stream capturing ``<subject_prefix>.>``.

    Args:
        name: Stream name.
        subject_prefix: Subjects captured are everything below it.
        work_queue: WORK_QUEUE retention (a message is removed once acknowledged) instead of
            LIMITS retention (kept until ``max_age_s`` / ``max_bytes``).
        max_age_s: TTL of a message; 0 is forever.
        max_bytes: Size limit; -1 is no limit.
        duplicate_window_s: De-duplication window for ``Nats-Msg-Id``.
        storage: ``file`` or ``memory``.
        replicas: Copies in a NATS cluster.
    """
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig

    return StreamConfig(
        name=name,
        subjects=[f"{subject_prefix}.>"],
        retention=RetentionPolicy.WORK_QUEUE if work_queue else RetentionPolicy.LIMITS,
        max_age=max_age_s,
        max_bytes=max_bytes,
        # The server refuses a duplicate window longer than the TTL.
        duplicate_window=min(duplicate_window_s, max_age_s) if max_age_s else duplicate_window_s,
        storage=StorageType.FILE if storage == "file" else StorageType.MEMORY,
        num_replicas=replicas,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or update it to ``config`` if it exists with other settings.

    Raises:
        BusUnavailableError: JetStream does not answer (not enabled, or the server is down).
        BusError: The server rejected the configuration.
    """
    from nats.errors import Error as NatsError
    from nats.errors import NoRespondersError
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

    try:
        try:
            await js.stream_info(config.name or "")
        except NotFoundError:
            try:
                await js.add_stream(config)
                return
            except APIError as exc:
                if exc.err_code != 10058:  # created concurrently by another process
                    raise
        await js.update_stream(config)
    except (NoRespondersError, NatsTimeout, ServiceUnavailableError) as exc:
        raise BusUnavailableError(
            f"JetStream does not answer: {exc!r}",
            hint="is nats-server running with JetStream enabled (nats-server -js)?",
        ) from exc
    except (APIError, NatsError) as exc:
        raise BusError(f"cannot set up stream {config.name}: {exc}", retryable=False) from exc


async def publish_with_retry(
    js: JetStreamContext,
    subject: str,
    payload: bytes,
    *,
    msg_id: str,
    policy: PublishPolicy,
    headers: dict[str, str] | None = None,
) -> PublishResult:
    """Publish to a stream, retrying timeouts with exponential backoff.

    The ``Nats-Msg-Id`` header makes the retries safe: a message whose first try was stored
    but whose acknowledgement was lost is not stored again.

    Raises:
        BusError: Every try failed (retryable).
    """
    from nats.errors import Error as NatsError

    hdrs = {"Nats-Msg-Id": msg_id, **(headers or {})}
    delay_s = policy.backoff_initial_s
    last: Exception | None = None
    for attempt in range(1, policy.attempts + 1):
        try:
            ack = await js.publish(subject, payload, timeout=policy.timeout_s, headers=hdrs)
        except (TimeoutError, NatsError, OSError) as exc:
            last = exc
            _log.debug("publish to %s failed (try %d): %r", subject, attempt, exc)
            if attempt < policy.attempts:
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, policy.backoff_max_s)
            continue
        return PublishResult(stream=ack.stream, seq=ack.seq, duplicate=bool(ack.duplicate))
    raise BusError(
        f"publish to {subject} failed after {policy.attempts} tries: {last!r}",
        hint="is nats-server running and the stream's subject set up?",
    ) from last


class JetStreamBus(EventBus):
    """An :class:`EventBus` backed by a NATS JetStream stream.

    Build it with :meth:`connect`. Events survive the process: :meth:`replay` reads them back
    from a stream sequence or a time. ``subscribe`` and ``replay`` must be called while an
    event loop runs.
    """

    def __init__(self, nc: NatsClient, *, config: JetStreamConfig | None = None) -> None:
        """Wrap an open connection (prefer :meth:`connect`, which also creates the stream)."""
        self._nc = nc
        self._js = nc.jetstream()
        self.config = config or JetStreamConfig()
        self._subs: set[_Subscription] = set()
        self._closed = False

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        config: JetStreamConfig | None = None,
        connect_timeout_s: float = 2.0,
        max_wait_s: float = 10.0,
    ) -> JetStreamBus:
        """Connect to NATS at ``url`` and create or update the events stream.

        Raises:
            BusUnavailableError: NATS is not reachable within ``max_wait_s`` (retryable).
        """
        nc = await connect_nats(url, connect_timeout_s=connect_timeout_s, max_wait_s=max_wait_s)
        bus = cls(nc, config=config)
        try:
            cfg = bus.config
            await ensure_stream(
                bus._js,
                stream_config(
                    cfg.stream,
                    cfg.subject_prefix,
                    max_age_s=cfg.max_age_s,
                    max_bytes=cfg.max_bytes,
                    duplicate_window_s=cfg.duplicate_window_s,
                    storage=cfg.storage,
                    replicas=cfg.replicas,
                ),
            )
        except BaseException:
            await nc.close()
            raise
        return bus

    def subject_for(self, event_type: str) -> str:
        """The NATS subject of an event type or pattern (``agent.*`` -> ``coditect.events.agent.*``)."""
        return f"{self.config.subject_prefix}.{event_type}"

    async def append(self, event: Event) -> PublishResult:
        """Publish ``event`` and return where the stream stored it.

        Raises:
            BusError: The stream did not acknowledge it after every retry.
        """
        if self._closed:
            raise BusError("the bus is closed", retryable=False)
        # A subscription made before this publish must see it: let pending ones finish starting.
        pending = [s.started for s in self._subs if not s.started.done()]
        if pending:
            await asyncio.wait(pending)
        payload = event.model_dump_json().encode()
        return await publish_with_retry(
            self._js,
            self.subject_for(event.type),
            payload,
            msg_id=event.event_id,
            policy=self.config.publish,
        )

    async def publish(self, event: Event) -> None:
        """Publish ``event`` on ``<prefix>.<event.type>`` (stored once per ``event_id``)."""
        await self.append(event)

    def subscribe(self, pattern: str = ">") -> AsyncIterator[Event]:
        """Events stored from now on whose type matches ``pattern``, until the bus closes."""
        from nats.js.api import DeliverPolicy

        return self._open(pattern, DeliverPolicy.NEW, finite=False)

    def replay(
        self,
        pattern: str = ">",
        *,
        from_seq: int | None = None,
        since: datetime | None = None,
    ) -> AsyncIterator[Event]:
        """Stored events matching ``pattern``, oldest first, ending with the newest one.

        Args:
            pattern: Event type pattern (``*`` one token, ``>`` the rest).
            from_seq: Start at this stream sequence (see :meth:`append`).
            since: Start at the first event stored at or after this time (timezone-aware).
        """
        from nats.js.api import DeliverPolicy

        if from_seq is not None and since is not None:
            raise ValueError("give from_seq or since, not both")
        if from_seq is not None:
            return self._open(pattern, DeliverPolicy.BY_START_SEQUENCE, start_seq=from_seq)
        if since is not None:
            if since.tzinfo is None:
                raise ValueError("since must be timezone-aware, e.g. datetime.now(UTC)")
            return self._open(pattern, DeliverPolicy.BY_START_TIME, start_time=since)
        return self._open(pattern, DeliverPolicy.ALL)

    async def follow_durable(
        self,
        pattern: str,
        durable: str,
        *,
        batch: int = 64,
        poll_s: float = 1.0,
        ack_wait_s: float = 5.0,
    ) -> AsyncIterator[Event]:
        """Events matching ``pattern`` through the durable consumer ``durable``, until closed.

        The consumer keeps its position in NATS: events stored while no process followed it
        (its follower was restarted) are delivered when one follows again, so none is missed.
        Only events stored after the consumer was first created are delivered. An event is
        acknowledged when the caller asks for the next one; one whose handling was interrupted
        (the caller raised, or died) is delivered again after ``ack_wait_s``, so handlers must
        ignore repeats (event ids make that easy).

        Raises:
            BusError: The consumer cannot be set up, or NATS was lost (retryable).
        """
        if self._closed:
            raise BusError("the bus is closed", retryable=False)
        from nats.errors import Error as NatsError
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        consumer = ConsumerConfig(
            durable_name=durable,
            filter_subject=self.subject_for(pattern),
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait_s,
            deliver_policy=DeliverPolicy.NEW,
        )
        try:
            await self._js.add_consumer(self.config.stream, consumer)
            sub = await self._js.pull_subscribe_bind(durable, stream=self.config.stream)
        except NatsError as exc:
            raise BusError(f"cannot set up event consumer {durable}: {exc}") from exc
        try:
            while not self._closed:
                try:
                    msgs = await sub.fetch(batch, timeout=poll_s)
                except (NatsTimeout, TimeoutError):  # nothing new
                    continue
                except NatsError as exc:
                    if self._closed:
                        return
                    raise BusError(f"fetch of {pattern} events failed: {exc!r}") from exc
                for msg in msgs:
                    event = _decode(msg)
                    if event is not None:
                        yield event
                    try:
                        await msg.ack()
                    except NatsError as exc:  # delivered again after ack_wait_s
                        _log.debug("ack of event %s failed: %r", msg.metadata.sequence, exc)
        finally:
            with contextlib.suppress(Exception):  # the connection may already be closed
                await sub.unsubscribe()

    def _open(
        self, pattern: str, policy: Any, *, finite: bool = True, **start: Any
    ) -> AsyncIterator[Event]:
        if self._closed:
            raise BusError("the bus is closed", retryable=False)
        sub = _Subscription(self, self.subject_for(pattern), policy, finite=finite, **start)
        self._subs.add(sub)
        return sub.events()

    def _forget(self, sub: _Subscription) -> None:
        self._subs.discard(sub)

    async def close(self) -> None:
        """End every subscription and close the connection."""
        if self._closed:
            return
        self._closed = True
        for sub in list(self._subs):
            await sub.stop()
        await self._nc.close()


class _Subscription:
    """One ordered ephemeral consumer; started at once so that it sees later publishes."""

    def __init__(
        self,
        bus: JetStreamBus,
        subject: str,
        policy: Any,
        *,
        finite: bool,
        start_seq: int | None = None,
        start_time: datetime | None = None,
    ) -> None:
        self._bus = bus
        self._subject = subject
        self._finite = finite
        self.started: asyncio.Task[Any] = asyncio.get_running_loop().create_task(
            self._start(subject, policy, start_seq, start_time)
        )
        self._stopped = False

    async def _start(
        self, subject: str, policy: Any, start_seq: int | None, start_time: datetime | None
    ) -> Any:
        from nats.js.api import ConsumerConfig

        config = ConsumerConfig(opt_start_seq=start_seq, opt_start_time=start_time)
        return await self._bus._js.subscribe(
            subject,
            stream=self._bus.config.stream,
            ordered_consumer=True,
            deliver_policy=policy,
            config=config,
            idle_heartbeat=5.0,
        )

    async def events(self) -> AsyncIterator[Event]:
        from nats.errors import Error as NatsError

        try:
            await asyncio.wait([self.started])
            if self.started.cancelled():  # the bus was closed before the consumer started
                return
            try:
                psub = self.started.result()
                if self._finite:
                    info = await psub.consumer_info()
                    # Nothing pending and nothing already pushed to us: the replay is empty.
                    delivered = info.delivered.consumer_seq if info.delivered else 0
                    if info.num_pending == 0 and not delivered:
                        return
                async for msg in psub.messages:
                    event = _decode(msg)
                    if event is not None:
                        yield event
                    if self._finite and msg.metadata.num_pending == 0:
                        return
            except NatsError as exc:
                if self._bus._closed:
                    return
                raise BusError(f"subscription to {self._subject} failed: {exc!r}") from exc
        finally:
            await self.stop()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._bus._forget(self)
        if not self.started.done():
            self.started.cancel()
        await asyncio.wait([self.started])
        if self.started.cancelled() or self.started.exception() is not None:
            return
        with contextlib.suppress(Exception):  # the connection may already be closed
            await self.started.result().unsubscribe()


def _decode(msg: Msg) -> Event | None:
    try:
        return event_adapter.validate_json(msg.data)
    except ValueError as exc:
        # Someone else published on our subjects: skip it rather than end the subscription.
        _log.warning("skipping a message on %s that is not an event: %s", msg.subject, exc)
        return None
