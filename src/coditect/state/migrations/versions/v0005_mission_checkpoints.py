"""checkpoints: the last checkpoint of each mission run in one process, so resume continues it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

One row per mission (``coditect.domain.checkpoint.MissionCheckpoint`` as JSON: plan, decisions,
settled tasks' results, changed files), replaced after every settled task and deleted when the
mission ends. ``coditect resume ID`` continues an interrupted mission from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the checkpoints table (skipped where this CODITECT's own metadata made it)."""
    if "checkpoints" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "checkpoints",
        sa.Column("mission_id", sa.String(length=64), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("mission_id"),
    )


def downgrade() -> None:
    """Drop the checkpoints table."""
    op.drop_table("checkpoints")
