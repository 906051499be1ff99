"""Where the archiver reads events from, each with a durable cursor.

* :class:`SqliteSource` -- embedded mode: the SQLite (SQL) event log; the cursor (the last
  archived ``seq``) is a row of the table ``archive_cursors`` in the same database.
* :class:`JetStreamSource` -- distributed mode: a durable pull consumer on the events stream with
  ``AckPolicy.ALL``; acknowledging the last message of a batch acknowledges the whole batch at
  once, so the consumer's ack floor is the cursor and a batch is never half acknowledged.

Both hand out batches of :data:`~coditect.archive.schema.SourceRecord` in increasing ``seq`` order
and advance their cursor only in :meth:`Source.commit`, which the archiver calls after every file
holding the batch has been durably written.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from coditect.archive.errors import ArchiveError
from coditect.archive.schema import SourceRecord
from coditect.errors import StoreError
from coditect.state.engine import open_engine
from coditect.state.migrate import ensure_schema

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

    from coditect.bus.jetstream import JetStreamConfig

__all__ = ["Batch", "JetStreamSource", "Source", "SqliteSource"]


@dataclass
class Batch:
    """Records read from a source and not yet acknowledged.

    Attributes:
        records: ``(seq, JSON body)`` in increasing ``seq`` order.
        handle: Source-specific state needed to acknowledge the batch.
    """

    records: list[SourceRecord]
    handle: list[Any] = field(default_factory=list)

    @property
    def last_seq(self) -> int:
        """The highest ``seq`` of the batch (0 when empty)."""
        return self.records[-1][0] if self.records else 0


class Source(abc.ABC):
    """A stream of stored events with a durable "archived up to here" cursor."""

    @abc.abstractmethod
    async def fetch(self, max_events: int) -> Batch:
        """The next events after the cursor (at most ``max_events``; empty when none now)."""

    @abc.abstractmethod
    async def commit(self, batch: Batch) -> None:
        """Durably advance the cursor past ``batch`` (call only once its files are written)."""

    async def keepalive(self, batch: Batch) -> None:  # noqa: B027 - optional hook
        """Tell the source that ``batch`` is still being worked on (during long retries)."""

    @abc.abstractmethod
    async def drained(self) -> bool:
        """True when nothing is left to read right now (``archive run --once`` stops then)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class SqliteSource(Source):
    """The SQL event log (table ``events``) of the embedded mode, with a cursor per destination.

    Args:
        database_url: SQLAlchemy URL of the state database (``Settings().database_url``).
        dest_key: Names the cursor (the destination URL): archiving to two places keeps two.
    """

    def __init__(self, database_url: str, dest_key: str) -> None:
        self.dest_key = dest_key
        if database_url.startswith("sqlite:///"):
            Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._engine = open_engine(database_url)
            # The state database's migrations own these tables (coditect.state.migrate).
            ensure_schema(self._engine)
        except (SQLAlchemyError, StoreError) as exc:
            raise ArchiveError(f"cannot open the event log {database_url}: {exc}") from exc

    def _cursor_sync(self) -> int:
        with self._engine.connect() as conn:
            row = conn.execute(
                text("SELECT seq FROM archive_cursors WHERE dest = :d"), {"d": self.dest_key}
            ).first()
        return int(row[0]) if row else 0

    async def cursor(self) -> int:
        """The last archived ``seq`` (0 before the first batch)."""
        return await asyncio.to_thread(self._cursor_sync)

    def _fetch_sync(self, max_events: int) -> Batch:
        with self._engine.connect() as conn:
            row = conn.execute(
                text("SELECT seq FROM archive_cursors WHERE dest = :d"), {"d": self.dest_key}
            ).first()
            after = int(row[0]) if row else 0
            rows = conn.execute(
                text("SELECT seq, body FROM events WHERE seq > :s ORDER BY seq LIMIT :n"),
                {"s": after, "n": max_events},
            ).all()
        return Batch(records=[(int(r[0]), r[1]) for r in rows])

    async def fetch(self, max_events: int) -> Batch:
        """The next events of the log after the cursor."""
        try:
            return await asyncio.to_thread(self._fetch_sync, max_events)
        except SQLAlchemyError as exc:
            raise ArchiveError(f"cannot read the event log: {exc}") from exc

    def _commit_sync(self, seq: int) -> None:
        with self._engine.begin() as conn:
            # Never moves backwards, whatever the order of concurrent commits.
            conn.execute(
                text(
                    "INSERT INTO archive_cursors (dest, seq) VALUES (:d, :s) "
                    "ON CONFLICT (dest) DO UPDATE SET seq = excluded.seq "
                    "WHERE excluded.seq > archive_cursors.seq"
                ),
                {"d": self.dest_key, "s": seq},
            )

    async def commit(self, batch: Batch) -> None:
        """Store the batch's last ``seq`` as the cursor (one committed transaction)."""
        if not batch.records:
            return
        try:
            await asyncio.to_thread(self._commit_sync, batch.last_seq)
        except SQLAlchemyError as exc:
            raise ArchiveError(f"cannot store the archive cursor: {exc}") from exc

    async def drained(self) -> bool:
        """True when no event follows the cursor."""
        return not (await self.fetch(1)).records

    async def close(self) -> None:
        """Dispose of the connection pool."""
        self._engine.dispose()


class JetStreamSource(Source):
    """A durable pull consumer (``AckPolicy.ALL``) on the events stream.

    Build it with :meth:`connect`. Messages delivered to a crashed archiver are delivered again
    after ``ack_wait_s``; while a batch waits for a slow destination the archiver keeps it alive
    with :meth:`keepalive`.
    """

    def __init__(self, nc: NatsClient, psub: Any, *, fetch_timeout_s: float = 1.0) -> None:
        """Wrap an open connection and subscription (prefer :meth:`connect`)."""
        self._nc = nc
        self._psub = psub
        self._fetch_timeout_s = fetch_timeout_s
        self._acked = 0
        self._held: dict[int, Msg] = {}
        self._missing = 0

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        durable: str = "coditect-archive",
        config: JetStreamConfig | None = None,
        ack_wait_s: float = 30.0,
        max_ack_pending: int = 10_000,
        fetch_timeout_s: float = 1.0,
        max_wait_s: float = 10.0,
    ) -> JetStreamSource:
        """Connect, create the stream if needed, and create or update the durable consumer.

        Args:
            url: NATS server URL.
            durable: Name of the durable consumer (its ack floor is the archive's cursor).
            config: The events stream (name and subject prefix).
            ack_wait_s: Messages unacknowledged this long are delivered again.
            max_ack_pending: Messages in flight at most; use the archiver's batch size.
            fetch_timeout_s: How long one fetch waits for messages.
            max_wait_s: How long to retry connecting.

        Raises:
            ArchiveError: NATS/JetStream is not reachable or refused the consumer.
        """
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        from coditect.bus.jetstream import (
            BusError,
            JetStreamConfig,
            connect_nats,
            ensure_stream,
            stream_config,
        )

        cfg = config or JetStreamConfig()
        try:
            nc = await connect_nats(url, max_wait_s=max_wait_s, name=f"coditect-{durable}")
        except BusError as exc:
            raise ArchiveError(exc.message, hint=exc.hint) from exc
        try:
            js: JetStreamContext = nc.jetstream()
            try:  # the stream's owner (the bus) sets its limits; the archiver only reads
                await js.stream_info(cfg.stream)
            except NotFoundError:
                await ensure_stream(
                    js,
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
            consumer = ConsumerConfig(
                name=durable,
                durable_name=durable,
                filter_subject=f"{cfg.subject_prefix}.>",
                ack_policy=AckPolicy.ALL,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=ack_wait_s,
                # At most one batch in flight: while a crashed run's messages wait for their
                # re-delivery the server cannot hand out newer ones (see fetch).
                max_ack_pending=max_ack_pending,
            )
            await js.add_consumer(cfg.stream, consumer)  # creates, or updates ack_wait & co.
            psub = await js.pull_subscribe_bind(durable=durable, stream=cfg.stream)
        except BusError as exc:
            await nc.close()
            raise ArchiveError(exc.message, hint=exc.hint) from exc
        except Exception as exc:
            await nc.close()
            raise ArchiveError(f"cannot open the JetStream consumer {durable}: {exc!r}") from exc
        return cls(nc, psub, fetch_timeout_s=fetch_timeout_s)

    async def fetch(self, max_events: int) -> Batch:
        """The oldest unacknowledged events, at most ``max_events`` (empty when none now).

        Every message delivered but not yet acknowledged is held here until its batch is
        committed, and a batch is handed out only when *all* such messages are held: after a
        crash the server first re-delivers what the crashed run left (after ``ack_wait_s``),
        and acknowledging a newer message before that would acknowledge them unwritten.
        """
        from nats.errors import Error as NatsError
        from nats.errors import TimeoutError as NatsTimeout

        # While messages of a crashed run are missing, keep asking: they arrive once re-delivered.
        want = max(max_events - len(self._held), self._missing)
        try:
            if want > 0:
                for msg in await self._psub.fetch(want, timeout=self._fetch_timeout_s):
                    await self._hold(msg)
        except (TimeoutError, NatsTimeout):
            pass
        except NatsError as exc:
            raise ArchiveError(f"cannot fetch events from JetStream: {exc!r}") from exc
        if not self._held:
            return Batch(records=[])
        try:
            info = await self._psub.consumer_info()
        except (TimeoutError, NatsError) as exc:
            raise ArchiveError(f"cannot read the consumer's state: {exc!r}") from exc
        self._missing = max((info.num_ack_pending or 0) - len(self._held), 0)
        if self._missing:
            return Batch(records=[])  # a crashed run's messages are not re-delivered yet
        seqs = sorted(self._held)[:max_events]
        msgs = [self._held[s] for s in seqs]
        return Batch(records=[(s, m.data) for s, m in zip(seqs, msgs, strict=True)], handle=msgs)

    async def _hold(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq <= self._acked:  # a late re-delivery of a batch already acknowledged
            with contextlib.suppress(Exception):
                await msg.ack()
            return
        self._held[seq] = msg  # the newest delivery of a message replaces an older one

    async def commit(self, batch: Batch) -> None:
        """Acknowledge the batch's last message, which acknowledges all before it (AckAll)."""
        from nats.errors import Error as NatsError

        if not batch.handle:
            return
        try:
            await batch.handle[-1].ack_sync(timeout=5.0)
        except (TimeoutError, NatsError) as exc:
            raise ArchiveError(f"cannot acknowledge the batch: {exc!r}") from exc
        self._acked = max(self._acked, batch.last_seq)
        for seq in [s for s in self._held if s <= self._acked]:
            del self._held[seq]

    async def keepalive(self, batch: Batch) -> None:
        """Reset the ack timer of every message of the batch."""
        for msg in batch.handle:
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def drained(self) -> bool:
        """True when the consumer has nothing pending and nothing awaiting acknowledgement."""
        from nats.errors import Error as NatsError

        try:
            info = await self._psub.consumer_info()
        except (TimeoutError, NatsError) as exc:
            raise ArchiveError(f"cannot read the consumer's state: {exc!r}") from exc
        return not info.num_pending and not info.num_ack_pending

    async def close(self) -> None:
        """Close the connection (the durable consumer and its ack floor stay on the server)."""
        with contextlib.suppress(Exception):
            await self._psub.unsubscribe()
        await self._nc.close()
