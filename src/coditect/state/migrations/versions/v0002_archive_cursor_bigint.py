"""archive_cursors.seq becomes BIGINT, like the events.seq it points at.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

``events.seq`` is a 64-bit BIGINT on PostgreSQL but the archive cursor that stores the last archived
``seq`` was a 32-bit INTEGER: past 2**31 events the cursor could not be saved. (SQLite's INTEGER is
already 64-bit; there the table is copied with the new declared type.)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Widen the cursor column."""
    with op.batch_alter_table("archive_cursors") as batch:
        batch.alter_column(
            "seq", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False
        )


def downgrade() -> None:
    """Narrow the cursor column back to INTEGER."""
    with op.batch_alter_table("archive_cursors") as batch:
        batch.alter_column(
            "seq", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False
        )
