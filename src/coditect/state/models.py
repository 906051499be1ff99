"""Every table of the state database (SQLite or PostgreSQL), owned by its migrations.

The ledger's and the archiver's tables are declared here too, so that the migrations see
the whole schema without importing the LLM or archive packages.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "CheckpointRow",
    "EventRow",
    "FileIndexRow",
    "MissionRow",
    "archive_cursors",
    "llm_calls",
]


class Base(DeclarativeBase):
    """Declarative base of every CODITECT table."""


class MissionRow(Base):
    """One mission; the full report is kept as JSON next to the indexed columns."""

    __tablename__ = "missions"

    mission_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    request: Mapped[str] = mapped_column(Text)
    repo: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    wall_s: Mapped[float] = mapped_column(default=0.0)
    report_json: Mapped[str] = mapped_column(Text)
    # The process running the mission (JSON of coditect.leftovers.ProcessIdentity) while it is
    # RUNNING; NULL once it ended. A dead owner means the mission was interrupted.
    owner: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)


class CheckpointRow(Base):
    """The last checkpoint of a mission run in one process (migration 0005).

    JSON of :class:`coditect.domain.checkpoint.MissionCheckpoint`, replaced after every settled
    task and removed when the mission ends; what is left belongs to an interrupted mission.
    """

    __tablename__ = "checkpoints"

    mission_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    body: Mapped[str] = mapped_column(Text)


class EventRow(Base):
    """One event of a mission's event log."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_mission_seq", "mission_id", "seq"),)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    mission_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    body: Mapped[str] = mapped_column(Text)


class FileIndexRow(Base):
    """The world model's knowledge of one file of one project."""

    __tablename__ = "file_index"

    root_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    path: Mapped[str] = mapped_column(Text, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))


#: The LLM cost ledger (:class:`coditect.llm.ledger.SqliteLedger`): one row per model call.
_metadata = MetaData()
llm_calls = Table(
    "llm_calls",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("mission", String, nullable=False, index=True),
    Column("task", String, nullable=False),
    Column("agent", String, nullable=False),
    Column("model", String, nullable=False),
    Column("purpose", String, nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("cached_input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("usd", Float, nullable=False),
    Column("priced", Boolean, nullable=False),
    Column("latency_s", Float, nullable=False),
    Column("reused", Boolean, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    # migration 0004: Anthropic cache writes, and the cascade tier that answered the call
    Column("cache_write_input_tokens", Integer, nullable=False, server_default="0"),
    Column("tier", Integer, nullable=False, server_default="0"),
)


_cursor_meta = MetaData()

#: One row per archive destination: the last event log ``seq`` archived there.
archive_cursors = Table(
    "archive_cursors",
    _cursor_meta,
    Column("dest", String(512), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)
