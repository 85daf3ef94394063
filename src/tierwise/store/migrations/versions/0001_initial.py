"""Initial schema: users and credentials, published runs, tasks, audit log, suppression, consent.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

TS = sa.DateTime(timezone=True)
DOC = sa.JSON().with_variant(JSONB(), "postgresql")
ACTIVE_TASK = sa.text("status IN ('open', 'escalated')")
PROFILE_FILTERS = (
    "rfm_segment",
    "rfm_class8",
    "abc_class",
    "value_tier",
    "lifecycle_stage",
    "churn_risk",
    "account_manager",
    "revenue",
    "clv",
)


def _run_id() -> sa.Column[str]:
    return sa.Column("run_id", sa.String(64), nullable=False)


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id"], ["published_runs.run_id"], name=f"fk_{table}_run_id_published_runs"
    )


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("team", sa.String(64), nullable=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("password_changed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.CheckConstraint(
            "role IN ('admin', 'analyst', 'manager', 'agent')", name="ck_users_role"
        ),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(8), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_api_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_web_sessions"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_web_sessions_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_attempts"),
    )
    op.create_index("ix_login_attempts_username_at", "login_attempts", ["username", "at"])
    op.create_index("ix_login_attempts_ip_at", "login_attempts", ["ip", "at"])

    op.create_table(
        "published_runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("published_at", TS, nullable=True),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("is_current", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_published_runs"),
        sa.CheckConstraint(
            "status IN ('loading', 'published', 'retired')", name="ck_published_runs_status"
        ),
        sa.CheckConstraint(
            "NOT is_current OR status = 'published'",
            name="ck_published_runs_current_is_published",
        ),
    )
    op.create_index(
        "uq_published_runs_current",
        "published_runs",
        ["is_current"],
        unique=True,
        sqlite_where=sa.text("is_current"),
        postgresql_where=sa.text("is_current"),
    )
    op.create_table(
        "published_profiles",
        _run_id(),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("rfm_segment", sa.String(32), nullable=True),
        sa.Column("rfm_class8", sa.String(32), nullable=True),
        sa.Column("abc_class", sa.String(8), nullable=True),
        sa.Column("value_tier", sa.String(16), nullable=True),
        sa.Column("lifecycle_stage", sa.String(16), nullable=True),
        sa.Column("churn_risk", sa.String(16), nullable=True),
        sa.Column("account_manager", sa.String, nullable=True),
        sa.Column("revenue", sa.Double, nullable=True),
        sa.Column("orders", sa.Integer, nullable=True),
        sa.Column("recency_days", sa.Integer, nullable=True),
        sa.Column("clv", sa.Double, nullable=True),
        sa.Column("churn_probability", sa.Double, nullable=True),
        sa.Column("profit", sa.Double, nullable=True),
        sa.Column("name", sa.String, nullable=True),
        sa.Column("phone", sa.String, nullable=True),
        sa.Column("email", sa.String, nullable=True),
        sa.Column("consent_marketing", sa.Boolean, nullable=True),
        sa.Column("profile", DOC, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "customer_id", name="pk_published_profiles"),
        _run_fk("published_profiles"),
    )
    for column in PROFILE_FILTERS:
        op.create_index(f"ix_published_profiles_{column}", "published_profiles", ["run_id", column])
    op.create_table(
        "segment_summaries",
        _run_id(),
        sa.Column("dimension", sa.String(32), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("revenue", sa.Double, nullable=True),
        sa.Column("share", sa.Double, nullable=True),
        sa.Column("metrics", DOC, nullable=True),
        sa.PrimaryKeyConstraint("run_id", "dimension", "key", name="pk_segment_summaries"),
        _run_fk("segment_summaries"),
    )
    op.create_table(
        "segment_migrations",
        _run_id(),
        sa.Column("dimension", sa.String(32), nullable=False),
        sa.Column("from_value", sa.String(64), nullable=False),
        sa.Column("to_value", sa.String(64), nullable=False),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("rate", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint(
            "run_id", "dimension", "from_value", "to_value", name="pk_segment_migrations"
        ),
        _run_fk("segment_migrations"),
    )
    op.create_table(
        "cohort_retention",
        _run_id(),
        sa.Column("cohort_month", sa.Date, nullable=False),
        sa.Column("month_offset", sa.Integer, nullable=False),
        sa.Column("cohort_size", sa.Integer, nullable=False),
        sa.Column("active_customers", sa.Integer, nullable=False),
        sa.Column("retention", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint(
            "run_id", "cohort_month", "month_offset", name="pk_cohort_retention"
        ),
        _run_fk("cohort_retention"),
    )

    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(128), nullable=True),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.Column("queue", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("due_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.CheckConstraint(
            "status IN ('open', 'done', 'escalated', 'cancelled')", name="ck_tasks_status"
        ),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('reached', 'not_reached', 'won_back', 'lost')",
            name="ck_tasks_outcome",
        ),
    )
    op.create_index(
        "uq_tasks_active_customer_reason",
        "tasks",
        ["customer_id", "reason"],
        unique=True,
        sqlite_where=ACTIVE_TASK,
        postgresql_where=ACTIVE_TASK,
    )
    op.create_index("ix_tasks_status_due_at", "tasks", ["status", "due_at"])
    op.create_index("ix_tasks_assignee_status", "tasks", ["assignee", "status"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String, nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor"])
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    op.create_table(
        "suppression",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject_hash", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("kind", "subject_hash", name="pk_suppression"),
        sa.CheckConstraint("kind IN ('phone', 'email', 'customer_id')", name="ck_suppression_kind"),
        sa.CheckConstraint("reason IN ('erased', 'opted_out')", name="ck_suppression_reason"),
    )
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consent_events"),
    )
    op.create_index(
        "ix_consent_events_customer_purpose_at",
        "consent_events",
        ["customer_id", "purpose", "at"],
    )


def downgrade() -> None:
    for table in (
        "consent_events",
        "suppression",
        "audit_log",
        "tasks",
        "cohort_retention",
        "segment_migrations",
        "segment_summaries",
        "published_profiles",
        "published_runs",
        "login_attempts",
        "web_sessions",
        "api_tokens",
        "users",
    ):
        op.drop_table(table)
