"""The dashboard's run-level summary, kept with each published run.

Summing 1M customers for the overview takes about a second; publishing computes it once, so
the first page after a new run reads a small document instead (and every server process sees
the same numbers, also after an erasure in another process).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("published_runs", sa.Column("dashboard", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("published_runs") as batch:
        batch.drop_column("dashboard")
