"""Baseline: the tables as ``metadata.create_all`` made them before migrations existed.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

A table that already exists is left alone, so the same revision both creates a new database and
adopts one made by an older CODITECT (``migrate`` has checked the existing tables' columns first).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _missions() -> None:
    op.create_table(
        "missions",
        sa.Column("mission_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("repo", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wall_s", sa.Double(), nullable=False),
        sa.Column("report_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("mission_id"),
    )
    op.create_index("ix_missions_started_at", "missions", ["started_at"], unique=False)
    op.create_index("ix_missions_status", "missions", ["status"], unique=False)


def _events() -> None:
    op.create_table(
        "events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("mission_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_events_mission_seq", "events", ["mission_id", "seq"], unique=False)


def _file_index() -> None:
    op.create_table(
        "file_index",
        sa.Column("root_key", sa.String(length=128), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("root_key", "path"),
    )


def _llm_calls() -> None:
    op.create_table(
        "llm_calls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("mission", sa.String(), nullable=False),
        sa.Column("task", sa.String(), nullable=False),
        sa.Column("agent", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("usd", sa.Float(), nullable=False),
        sa.Column("priced", sa.Boolean(), nullable=False),
        sa.Column("latency_s", sa.Float(), nullable=False),
        sa.Column("reused", sa.Boolean(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_llm_calls_mission", "llm_calls", ["mission"], unique=False)


def _archive_cursors() -> None:
    op.create_table(
        "archive_cursors",
        sa.Column("dest", sa.String(length=512), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("dest"),
    )


_TABLES = {
    "missions": _missions,
    "events": _events,
    "file_index": _file_index,
    "llm_calls": _llm_calls,
    "archive_cursors": _archive_cursors,
}


def upgrade() -> None:
    """Create each baseline table that does not exist yet."""
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, create in _TABLES.items():
        if name not in existing:
            create()


def downgrade() -> None:
    """Drop the baseline tables (and their data)."""
    for name in reversed(_TABLES):
        op.drop_table(name)
