"""Actions: task escalation and outcome columns, complaints, membership levels and history,
campaigns with their members.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

TS = sa.DateTime(timezone=True)
DOC = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("tasks", sa.Column("closed_by", sa.String(64), nullable=True))
    op.add_column("tasks", sa.Column("escalated_to", sa.String(64), nullable=True))
    op.add_column("tasks", sa.Column("escalated_at", TS, nullable=True))

    op.create_table(
        "complaints",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("source_key", sa.String(64), nullable=True),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("first_response_due_at", TS, nullable=False),
        sa.Column("resolution_due_at", TS, nullable=False),
        sa.Column("first_response_at", TS, nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("resolution", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("task_id", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_complaints"),
        sa.UniqueConstraint("source_key", name="uq_complaints_source_key"),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name="fk_complaints_task_id_tasks", ondelete="SET NULL"
        ),
        sa.CheckConstraint(
            "status IN ('open', 'responded', 'resolved', 'closed')", name="ck_complaints_status"
        ),
        sa.CheckConstraint("source IN ('app', 'warehouse')", name="ck_complaints_source"),
        sa.CheckConstraint(
            "category IN ('product', 'delivery', 'service', 'billing', 'other')",
            name="ck_complaints_category",
        ),
    )
    op.create_index("ix_complaints_status_opened_at", "complaints", ["status", "opened_at"])
    op.create_index("ix_complaints_customer_id", "complaints", ["customer_id"])
    op.create_index("ix_complaints_owner_status", "complaints", ["owner", "status"])

    op.create_table(
        "memberships",
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("level", sa.String(32), nullable=False),
        sa.Column("since", sa.Date, nullable=False),
        sa.Column("grace_until", sa.Date, nullable=True),
        sa.Column("value", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name="pk_memberships"),
    )
    op.create_index("ix_memberships_level", "memberships", ["level"])
    op.create_table(
        "membership_evaluations",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("basis", sa.String(16), nullable=False),
        sa.Column("evaluated_at", TS, nullable=False),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("joined", sa.Integer, nullable=False),
        sa.Column("upgrades", sa.Integer, nullable=False),
        sa.Column("downgrades", sa.Integer, nullable=False),
        sa.Column("in_grace", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_membership_evaluations"),
    )
    op.create_table(
        "membership_history",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("evaluation_id", sa.String(64), nullable=False),
        sa.Column("changed_on", sa.Date, nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("from_level", sa.String(32), nullable=True),
        sa.Column("to_level", sa.String(32), nullable=False),
        sa.Column("value", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_membership_history"),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["membership_evaluations.id"],
            name="fk_membership_history_evaluation_id_membership_evaluations",
        ),
        sa.CheckConstraint(
            "change IN ('join', 'upgrade', 'downgrade')", name="ck_membership_history_change"
        ),
    )
    op.create_index(
        "ix_membership_history_customer_id_changed_on",
        "membership_history",
        ["customer_id", "changed_on"],
    )
    op.create_index("ix_membership_history_evaluation_id", "membership_history", ["evaluation_id"])

    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("filters", DOC, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("ends_on", sa.Date, nullable=False),
        sa.Column("control_share", sa.Double, nullable=False),
        sa.Column("seed", sa.String(64), nullable=False),
        sa.Column("cost_per_contact", sa.Double, nullable=False),
        sa.Column("margin_rate", sa.Double, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_campaigns"),
        sa.CheckConstraint("purpose IN ('marketing', 'service')", name="ck_campaigns_purpose"),
        sa.CheckConstraint(
            "control_share > 0 AND control_share < 1", name="ck_campaigns_control_share"
        ),
        sa.CheckConstraint("ends_on >= starts_on", name="ck_campaigns_window"),
    )
    op.create_index("ix_campaigns_created_by", "campaigns", ["created_by"])
    op.create_table(
        "campaign_members",
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "customer_id", name="pk_campaign_members"),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name="fk_campaign_members_campaign_id_campaigns",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("arm IN ('treatment', 'control')", name="ck_campaign_members_arm"),
    )
    op.create_index("ix_campaign_members_customer_id", "campaign_members", ["customer_id"])


def downgrade() -> None:
    for table in (
        "campaign_members",
        "campaigns",
        "membership_history",
        "membership_evaluations",
        "memberships",
        "complaints",
    ):
        op.drop_table(table)
    for column in ("escalated_at", "escalated_to", "closed_by"):
        op.drop_column("tasks", column)  # native on SQLite >= 3.35: the table is not rebuilt
