"""The event archive: events from JetStream or the SQLite event log, kept as Parquet files.

See docs/archive.md for the layout, the schema and the exactly-once argument.
"""

from __future__ import annotations

from coditect.archive.archiver import Archiver, ArchiveStats, file_name
from coditect.archive.destination import (
    ArchiveSettings,
    Destination,
    RetryPolicy,
    open_destination,
)
from coditect.archive.errors import ArchiveError
from coditect.archive.reader import archive_dataset, read_archive, read_events
from coditect.archive.schema import SCHEMA, records_to_table, table_to_events
from coditect.archive.sources import Batch, JetStreamSource, Source, SqliteSource
from coditect.archive.timeline import TimelineRow, summarize, timeline

__all__ = [
    "SCHEMA",
    "ArchiveError",
    "ArchiveSettings",
    "ArchiveStats",
    "Archiver",
    "Batch",
    "Destination",
    "JetStreamSource",
    "RetryPolicy",
    "Source",
    "SqliteSource",
    "TimelineRow",
    "archive_dataset",
    "file_name",
    "open_destination",
    "read_archive",
    "read_events",
    "records_to_table",
    "summarize",
    "table_to_events",
    "timeline",
]
