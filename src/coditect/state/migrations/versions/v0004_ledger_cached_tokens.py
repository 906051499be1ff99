"""llm_calls gains cache_write_input_tokens and tier (provider-exact bills, the verified cascade).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

``cache_write_input_tokens``: prompt tokens written to the provider's prompt cache, which
Anthropic bills at 1.25x the input price (``cached_input_tokens``, the cache reads, were already
there). ``tier``: the cascade tier that answered the call (0 = the first model; see
``coditect.llm.cascade``). Both default to 0 for rows written before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the two columns, 0 for existing rows (skipped where a ledger already made them)."""
    # A ledger table created by this CODITECT's own metadata before migrations ran (a "legacy"
    # database adopted at the baseline) already has them.
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("llm_calls")}
    new = [
        sa.Column(name, sa.Integer(), nullable=False, server_default="0")
        for name in ("cache_write_input_tokens", "tier")
        if name not in existing
    ]
    if not new:
        return
    with op.batch_alter_table("llm_calls") as batch:
        for column in new:
            batch.add_column(column)


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("llm_calls") as batch:
        batch.drop_column("tier")
        batch.drop_column("cache_write_input_tokens")
