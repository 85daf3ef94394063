"""Drop segment_summaries: nothing reads them.

Publishing grouped every run six ways into this table, but the segment API counts live over the
viewer's scope and the dashboard reads the run summary of 0004; erasure did not recount it
either, so it kept the numbers of customers who had asked to be forgotten.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.drop_table("segment_summaries")


def downgrade() -> None:
    """The table comes back empty: its rows were derived and are not kept."""
    op.create_table(
        "segment_summaries",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("dimension", sa.String(32), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("revenue", sa.Double, nullable=True),
        sa.Column("share", sa.Double, nullable=True),
        sa.Column("metrics", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "dimension", "key", name="pk_segment_summaries"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["published_runs.run_id"], name="fk_segment_summaries_run_id_published_runs"
        ),
    )
