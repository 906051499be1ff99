"""Reading an archive back: a pyarrow dataset over the Hive-partitioned Parquet files."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds
from pyarrow import fs as pafs

from coditect.archive.destination import ArchiveSettings, open_destination
from coditect.archive.errors import ArchiveError
from coditect.archive.schema import SCHEMA, table_to_events
from coditect.domain.events import Event

__all__ = ["PARTITIONING", "archive_dataset", "read_archive", "read_events"]

#: ``date=YYYY-MM-DD/type=<event type>`` directories (the ``type`` column is in the files too).
PARTITIONING = ds.partitioning(
    pa.schema([("date", pa.string()), ("type", pa.string())]), flavor="hive"
)


def archive_dataset(url: str, settings: ArchiveSettings | None = None) -> ds.Dataset | None:
    """The archive at ``url`` as a pyarrow dataset, or None when it holds no file yet.

    Raises:
        ArchiveError: The destination cannot be listed.
    """
    dest = open_destination(url, settings)
    try:
        if dest.filesystem.get_file_info(dest.root).type == pafs.FileType.NotFound:
            return None
        return ds.dataset(
            dest.root,
            filesystem=dest.filesystem,
            format="parquet",
            partitioning=PARTITIONING,
            schema=SCHEMA.append(pa.field("date", pa.string())),
        )
    except OSError as exc:
        raise ArchiveError(f"cannot read the archive {url}: {exc}") from exc


def read_archive(
    url: str, *, mission_id: str | None = None, settings: ArchiveSettings | None = None
) -> pa.Table:
    """Archived rows (:data:`~coditect.archive.schema.SCHEMA` plus ``date``), ordered by ``seq``.

    Args:
        url: ``file:///path`` or ``s3://bucket/prefix``.
        mission_id: Only this mission's events (a filter pushed down to the Parquet reader).
        settings: S3 endpoint and credentials (from the environment by default).
    """
    dataset = archive_dataset(url, settings)
    if dataset is None:
        return SCHEMA.empty_table()
    where = ds.field("mission_id") == mission_id if mission_id is not None else None
    try:
        table = dataset.to_table(filter=where)
    except OSError as exc:
        raise ArchiveError(f"cannot read the archive {url}: {exc}") from exc
    return table.sort_by("seq")


def read_events(
    url: str, *, mission_id: str | None = None, settings: ArchiveSettings | None = None
) -> list[Event]:
    """Archived events rebuilt from their JSON bodies, in ``seq`` order."""
    return table_to_events(read_archive(url, mission_id=mission_id, settings=settings))
