"""missions.owner: the process running a mission, so a killed one is seen as interrupted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

A nullable JSON text column (host, boot id, pid and process start time); rows written by an
older CODITECT have none and are shown as they were stored.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the owner column."""
    with op.batch_alter_table("missions") as batch:
        batch.add_column(sa.Column("owner", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop the owner column."""
    with op.batch_alter_table("missions") as batch:
        batch.drop_column("owner")
