"""The Parquet schema of archived events, and conversions between events and Arrow tables.

One row per event. Common columns first, then one typed, nullable column per field of each event
type (``state`` is shared by ``task.state`` and ``mission.state``), then the full JSON body, from
which any event is rebuilt exactly (see docs/archive.md).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from coditect.domain.events import Event, event_adapter

__all__ = ["SCHEMA", "SourceRecord", "partition_of", "records_to_table", "table_to_events"]

#: A stored event as read from its source: ``(seq, JSON body)``; ``seq`` is the JetStream stream
#: sequence or the SQLite event log's ``seq``, strictly increasing in the source.
SourceRecord = tuple[int, bytes | str]

_TS = pa.timestamp("us", tz="UTC")

#: Columns of every archive file, in order.
SCHEMA = pa.schema(
    [
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("mission_id", pa.string(), nullable=False),
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("agent", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("ts", _TS, nullable=False),
        # agent.think
        pa.field("text", pa.string()),
        # agent.act
        pa.field("action", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("ok", pa.bool_()),
        pa.field("input_tokens", pa.int64()),
        pa.field("output_tokens", pa.int64()),
        pa.field("duration_s", pa.float64()),
        # agent.learn
        pa.field("lesson", pa.string()),
        # task.state and mission.state
        pa.field("state", pa.string()),
        pa.field("attempt", pa.int64()),
        pa.field("error", pa.string()),
        pa.field("reason", pa.string()),
        # the whole event as JSON (event_adapter.validate_json rebuilds it)
        pa.field("body", pa.string(), nullable=False),
    ],
    metadata={b"coditect.archive.version": b"1"},
)

_COMMON = ("event_id", "mission_id", "task_id", "agent", "type")
_TYPED = tuple(f.name for f in SCHEMA if f.name not in {*_COMMON, "seq", "ts", "body"})


def partition_of(ts: datetime, event_type: str) -> str:
    """The Hive-style partition directory of an event: ``date=YYYY-MM-DD/type=<type>`` (UTC)."""
    return f"date={ts:%Y-%m-%d}/type={event_type}"


#: What the JSON bodies are parsed into (every column but ``seq`` and ``body``).
_BODY_SCHEMA = pa.schema([f.with_nullable(True) for f in SCHEMA if f.name not in ("seq", "body")])
_PARSE = pa_json.ParseOptions(explicit_schema=_BODY_SCHEMA, unexpected_field_behavior="ignore")


def records_to_table(records: Sequence[SourceRecord]) -> pa.Table:
    """An Arrow table (:data:`SCHEMA`) of raw event records.

    The bodies are parsed by Arrow's JSON reader in one call (several times faster than
    ``json.loads`` per event); fields a type does not have stay null.

    Raises:
        ValueError: A body is not a JSON object with an ISO 8601 ``ts``.
    """
    bodies = [raw.decode() if isinstance(raw, bytes) else raw for _, raw in records]
    if not bodies:
        return SCHEMA.empty_table()
    if any("\n" in b for b in bodies):  # JSON from pydantic never has raw newlines
        bodies = [json.dumps(json.loads(b)) for b in bodies]
    try:
        parsed = pa_json.read_json(io.BytesIO("\n".join(bodies).encode()), parse_options=_PARSE)
    except pa.ArrowInvalid as exc:
        raise ValueError(f"an event body is not valid JSON: {exc}") from exc
    if parsed.num_rows != len(bodies) or parsed.column("ts").null_count:
        raise ValueError("every event body must be a JSON object with a ts")
    columns: dict[str, pa.ChunkedArray | pa.Array] = {
        "seq": pa.array([seq for seq, _ in records], type=pa.int64()),
        "body": pa.array(bodies, type=pa.string()),
    }
    for name in _COMMON:
        columns[name] = pc.fill_null(parsed.column(name), "")
    for name in ("ts", *_TYPED):
        columns[name] = parsed.column(name)
    return pa.Table.from_arrays([columns[f.name] for f in SCHEMA], schema=SCHEMA)


def table_to_events(table: pa.Table) -> list[Event]:
    """Rebuild the events of an archive table (from its ``body`` column), ordered by ``seq``."""
    if table.num_rows == 0:
        return []
    ordered = table.sort_by("seq") if "seq" in table.column_names else table
    return [event_adapter.validate_json(b) for b in ordered.column("body").to_pylist()]
