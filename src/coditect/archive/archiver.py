"""The archiver: batches of events from a source become Parquet files, then the batch is acked.

Layout (docs/archive.md)::

    <root>/date=YYYY-MM-DD/type=<event type>/part-<first seq, 20 digits>.parquet

One file per (date, type) group of a batch, named after the smallest ``seq`` of the group. Why
that name gives exactly-once: the cursor only moves after every file of a batch is written, so
a retry (after a crash, a failed write or a failed ack) reads again from the same cursor. The
source is append-only, so the group's smallest ``seq`` is the same in the retry and the file
is overwritten, never duplicated -- even when the retry's batch is larger or smaller than the
first attempt's (a different ``--batch-size``, or more events arrived meanwhile).
"""

from __future__ import annotations

import asyncio
import logging

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from coditect.archive.destination import Destination, RetryPolicy, write_with_retry
from coditect.archive.schema import records_to_table
from coditect.archive.sources import Batch, Source

__all__ = ["ArchiveStats", "Archiver", "file_name"]

_log = logging.getLogger(__name__)


def file_name(first_seq: int) -> str:
    """The deterministic file name of a group whose smallest ``seq`` is ``first_seq``."""
    return f"part-{first_seq:020d}.parquet"


class ArchiveStats(BaseModel):
    """What a run archived.

    Attributes:
        events: Events written (and acknowledged).
        files: Parquet files written.
        bytes: Total size of those files.
        batches: Batches acknowledged.
        last_seq: The cursor after the run (0 if nothing was archived).
    """

    model_config = ConfigDict(frozen=True)

    events: int = 0
    files: int = 0
    bytes: int = 0
    batches: int = 0
    last_seq: int = 0

    def __add__(self, other: ArchiveStats) -> ArchiveStats:
        return ArchiveStats(
            events=self.events + other.events,
            files=self.files + other.files,
            bytes=self.bytes + other.bytes,
            batches=self.batches + other.batches,
            last_seq=max(self.last_seq, other.last_seq),
        )


def _groups(table: pa.Table) -> list[tuple[str, pa.Table]]:
    dates = pc.strftime(table.column("ts"), format="%Y-%m-%d")
    keys = pc.binary_join_element_wise("date=", dates, "/type=", table.column("type"), "")
    out = []
    for key in pc.unique(keys).to_pylist():
        group = table.filter(pc.equal(keys, key))
        first = pc.min(group.column("seq")).as_py()
        out.append((f"{key}/{file_name(first)}", group))
    return sorted(out, key=lambda item: item[0])


class Archiver:
    """Moves events from a :class:`Source` into Parquet files at a :class:`Destination`.

    Args:
        source: Where events are read (and acknowledged).
        destination: Where files are written.
        batch_size: Events per batch (each batch writes one file per date and event type).
        retry: Backoff of failed writes; when every try failed the batch stays unacknowledged.
    """

    def __init__(
        self,
        source: Source,
        destination: Destination,
        *,
        batch_size: int = 10_000,
        retry: RetryPolicy | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.source = source
        self.destination = destination
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy()

    async def archive_batch(self) -> ArchiveStats:
        """Archive the next batch; ``events == 0`` when the source had nothing right now.

        Raises:
            ArchiveError: A file could not be written after every retry, or the batch could
                not be acknowledged (either way nothing of the batch counts as archived).
        """
        batch = await self.source.fetch(self.batch_size)
        if not batch.records:
            return ArchiveStats()
        stats = await self._write(batch)
        await self.source.commit(batch)
        _log.info("archived %d events up to seq %d", stats.events, batch.last_seq)
        return stats

    async def _write(self, batch: Batch) -> ArchiveStats:
        table = await asyncio.to_thread(records_to_table, batch.records)

        async def keepalive() -> None:
            await self.source.keepalive(batch)

        files = 0
        size = 0
        # One file at a time: a failure stops the batch early, and files already written are
        # simply overwritten by the retry.
        for relative, group in await asyncio.to_thread(_groups, table):
            size += await write_with_retry(
                self.destination, relative, group, policy=self.retry, on_retry=keepalive
            )
            files += 1
        return ArchiveStats(
            events=table.num_rows, files=files, bytes=size, batches=1, last_seq=batch.last_seq
        )

    async def run_once(self, *, max_wait_s: float = 120.0) -> ArchiveStats:
        """Archive until the source is drained; return what was archived.

        Args:
            max_wait_s: Upper bound on waiting for messages a crashed run left unacknowledged
                (JetStream delivers them again after its ack wait).
        """
        total = ArchiveStats()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait_s
        while True:
            stats = await self.archive_batch()
            total += stats
            if stats.events:
                deadline = loop.time() + max_wait_s
                continue
            if await self.source.drained() or loop.time() > deadline:
                return total

    async def run_forever(self, every_s: float, *, stop: asyncio.Event | None = None) -> None:
        """Run :meth:`run_once` every ``every_s`` seconds until ``stop`` is set.

        A failed run is logged and retried at the next tick; its batch stays unacknowledged.
        """
        from coditect.errors import CoditectError

        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                stats = await self.run_once()
                _log.info("archive run: %s", stats.model_dump())
            except CoditectError as exc:
                _log.warning("archive run failed, retrying in %gs: %s", every_s, exc)
            try:
                await asyncio.wait_for(stop.wait(), timeout=every_s)
            except TimeoutError:
                pass
