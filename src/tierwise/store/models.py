"""Tables of the operational store. The schema is created only by the migrations in
`store/migrations`; a test checks that these models and the migrated schema agree.

Timestamps are timezone-aware UTC in Python on both databases (`UtcDateTime`). Codes with a closed
vocabulary are strings guarded by CHECK constraints, so a bad value fails in the database too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from tierwise.core.settings import COMPLAINT_CATEGORIES

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Role(StrEnum):
    ADMIN = "admin"
    ANALYST = "analyst"
    MANAGER = "manager"
    AGENT = "agent"


class RunStatus(StrEnum):
    """`loading` rows are invisible to readers; only `published` runs can be current."""

    LOADING = "loading"
    PUBLISHED = "published"
    RETIRED = "retired"


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    ESCALATED = "escalated"
    CANCELLED = "cancelled"


ACTIVE_TASK_STATUSES = (TaskStatus.OPEN, TaskStatus.ESCALATED)
"""Statuses of a task still to be worked; at most one per (customer, reason)."""


class TaskOutcome(StrEnum):
    REACHED = "reached"
    NOT_REACHED = "not_reached"
    WON_BACK = "won_back"
    LOST = "lost"


class ComplaintStatus(StrEnum):
    """open → responded → resolved → closed; a resolved ticket may be reopened (→ responded)."""

    OPEN = "open"
    RESPONDED = "responded"
    RESOLVED = "resolved"
    CLOSED = "closed"


UNRESOLVED_COMPLAINT_STATUSES = (ComplaintStatus.OPEN, ComplaintStatus.RESPONDED)


class ComplaintSource(StrEnum):
    APP = "app"
    WAREHOUSE = "warehouse"
    """Imported from the warehouse's `interactions` of kind complaint."""


class MembershipChangeKind(StrEnum):
    JOIN = "join"
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"


class CampaignPurpose(StrEnum):
    """`marketing` targets only customers who may be marketed to; `service` every customer not
    erased (a service call needs no marketing consent)."""

    MARKETING = "marketing"
    SERVICE = "service"


class CampaignArm(StrEnum):
    TREATMENT = "treatment"
    CONTROL = "control"


class SubjectKind(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    CUSTOMER_ID = "customer_id"


class SuppressionReason(StrEnum):
    ERASED = "erased"
    OPTED_OUT = "opted_out"


def _one_of(column: str, values: type[StrEnum], name: str) -> CheckConstraint:
    listed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out: SQLite stores them naive, PostgreSQL as timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps aware UTC timestamps")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


JSON_DOC = JSON().with_variant(JSONB(), "postgresql")
"""Queryable JSON documents (jsonb on PostgreSQL). The audit log uses plain JSON instead, which
PostgreSQL keeps verbatim, so hashes recomputed from the stored detail never drift."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (_one_of("role", Role, "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    """Stored case-folded, so uniqueness and sign-in ignore case."""
    display_name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    team: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """sha256 hex of the secret: lookups are by hash, so the secret is never compared."""
    prefix: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebSession(Base):
    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """sha256 hex of the cookie secret; a database leak does not leak live sessions."""
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class LoginAttempt(Base):
    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_username_at", "username", "at"),
        Index("ix_login_attempts_ip_at", "ip", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    ok: Mapped[bool]


class PublishedRun(Base):
    __tablename__ = "published_runs"
    __table_args__ = (
        _one_of("status", RunStatus, "status"),
        CheckConstraint("NOT is_current OR status = 'published'", name="current_is_published"),
        Index(
            "uq_published_runs_current",
            "is_current",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
    )

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    as_of: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    customers: Mapped[int] = mapped_column(Integer, default=0)
    is_current: Mapped[bool] = mapped_column(default=False)
    dashboard: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    """The dashboard's summary of every customer of the run (services.dashboard), or None."""


def _run_fk() -> Mapped[str]:
    return mapped_column(ForeignKey("published_runs.run_id"), primary_key=True)


PROFILE_FILTERS = (
    "rfm_segment",
    "rfm_class8",
    "abc_class",
    "value_tier",
    "lifecycle_stage",
    "churn_risk",
    "account_manager",
)
"""Typed profile columns the customer lists filter on (the scope's account_manager included)."""
PROFILE_SORT_KEYS = ("revenue", "orders", "recency_days", "clv", "churn_probability", "customer_id")
"""Columns customer lists sort by. Every filter index carries them all, so a filtered and sorted
page sorts narrow index entries instead of reading the wide profile rows."""
SCOPED_FILTERS = (
    "rfm_segment", "rfm_class8", "abc_class", "value_tier", "lifecycle_stage", "churn_risk",
    "r_score", "f_score",
)  # fmt: skip
"""Also carried by the account_manager index: an agent's filtered list (their high churn risk
customers, an R×F cell) is then answered from index entries alone."""


class PublishedProfile(Base):
    __tablename__ = "published_profiles"
    __table_args__ = (
        *(
            Index(
                f"ix_published_profiles_{c}_sorted",
                "run_id",
                c,
                *PROFILE_SORT_KEYS,
                *(SCOPED_FILTERS if c == "account_manager" else ()),
            )
            for c in PROFILE_FILTERS
        ),
        Index("ix_published_profiles_sorted", "run_id", *PROFILE_SORT_KEYS),
    )

    run_id: Mapped[str] = _run_fk()
    customer_id: Mapped[str] = mapped_column(String, primary_key=True)
    rfm_segment: Mapped[str | None] = mapped_column(String(32))
    rfm_class8: Mapped[str | None] = mapped_column(String(32))
    abc_class: Mapped[str | None] = mapped_column(String(8))
    value_tier: Mapped[str | None] = mapped_column(String(16))
    lifecycle_stage: Mapped[str | None] = mapped_column(String(16))
    churn_risk: Mapped[str | None] = mapped_column(String(16))
    account_manager: Mapped[str | None] = mapped_column(String)
    r_score: Mapped[int | None] = mapped_column(Integer)
    f_score: Mapped[int | None] = mapped_column(Integer)
    revenue: Mapped[float | None] = mapped_column(Double)
    orders: Mapped[int | None] = mapped_column(Integer)
    recency_days: Mapped[int | None] = mapped_column(Integer)
    clv: Mapped[float | None] = mapped_column(Double)
    churn_probability: Mapped[float | None] = mapped_column(Double)
    profit: Mapped[float | None] = mapped_column(Double)
    name: Mapped[str | None] = mapped_column(String)
    phone: Mapped[str | None] = mapped_column(String)
    email: Mapped[str | None] = mapped_column(String)
    consent_marketing: Mapped[bool | None]
    profile: Mapped[dict[str, Any]] = mapped_column(JSON_DOC)
    """The whole profile row, including columns without a typed twin."""


class SegmentMigration(Base):
    """Per run: customers moving from one value of a dimension to another since the last run."""

    __tablename__ = "segment_migrations"

    run_id: Mapped[str] = _run_fk()
    dimension: Mapped[str] = mapped_column(String(32), primary_key=True)
    from_value: Mapped[str] = mapped_column(String(64), primary_key=True)
    to_value: Mapped[str] = mapped_column(String(64), primary_key=True)
    customers: Mapped[int] = mapped_column(Integer)
    rate: Mapped[float | None] = mapped_column(Double)


class CohortRetention(Base):
    """Per run: share of each first-order-month cohort ordering `month_offset` months later."""

    __tablename__ = "cohort_retention"

    run_id: Mapped[str] = _run_fk()
    cohort_month: Mapped[date] = mapped_column(Date, primary_key=True)
    month_offset: Mapped[int] = mapped_column(Integer, primary_key=True)
    cohort_size: Mapped[int] = mapped_column(Integer)
    active_customers: Mapped[int] = mapped_column(Integer)
    retention: Mapped[float | None] = mapped_column(Double)


class Task(Base):
    """A follow-up (回访). The partial unique index allows one active task per customer and reason,
    so concurrent rule runs cannot queue the same call twice."""

    __tablename__ = "tasks"
    __table_args__ = (
        _one_of("status", TaskStatus, "status"),
        CheckConstraint(
            "outcome IS NULL OR outcome IN ("
            + ", ".join(f"'{o.value}'" for o in TaskOutcome)
            + ")",
            name="outcome",
        ),
        Index(
            "uq_tasks_active_customer_reason",
            "customer_id",
            "reason",
            unique=True,
            sqlite_where=text("status IN ('open', 'escalated')"),
            postgresql_where=text("status IN ('open', 'escalated')"),
        ),
        Index("ix_tasks_status_due_at", "status", "due_at"),
        Index("ix_tasks_assignee_status", "assignee", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String)
    reason: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str | None] = mapped_column(String(128))
    assignee: Mapped[str | None] = mapped_column(String(64))
    queue: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.OPEN.value)
    outcome: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(64))
    escalated_to: Mapped[str | None] = mapped_column(String(64))
    """The manager an overdue task was escalated to (None: escalated to a queue only)."""
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Complaint(Base):
    """A complaint ticket with its service-level deadlines, fixed when it is opened."""

    __tablename__ = "complaints"
    __table_args__ = (
        _one_of("status", ComplaintStatus, "status"),
        _one_of("source", ComplaintSource, "source"),
        CheckConstraint(
            "category IN (" + ", ".join(f"'{c}'" for c in COMPLAINT_CATEGORIES) + ")",
            name="category",
        ),
        Index("ix_complaints_status_opened_at", "status", "opened_at"),
        Index("ix_complaints_customer_id", "customer_id"),
        Index("ix_complaints_owner_status", "owner", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String)
    source: Mapped[str] = mapped_column(String(16))
    source_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    """The warehouse row hash of an imported ticket, so importing again adds nothing."""
    category: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=ComplaintStatus.OPEN.value)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    first_response_due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolution_due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolution: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    """The follow-up task the ticket opened."""


class Membership(Base):
    """A customer's current membership level (会员等级)."""

    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_level", "level"),)

    customer_id: Mapped[str] = mapped_column(String, primary_key=True)
    level: Mapped[str] = mapped_column(String(32))
    since: Mapped[date] = mapped_column(Date)
    """When the customer reached `level`."""
    grace_until: Mapped[date | None] = mapped_column(Date)
    """Set after a missed review: the level is kept until this date, then lowered."""
    value: Mapped[float] = mapped_column(Double)
    """Rolling spend or points at the last evaluation (the latest `membership_evaluations`
    row, which every member took part in)."""


class MembershipEvaluation(Base):
    """One evaluation of every customer's level, with its counts."""

    __tablename__ = "membership_evaluations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(String(64))
    as_of: Mapped[date] = mapped_column(Date)
    basis: Mapped[str] = mapped_column(String(16))
    evaluated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    customers: Mapped[int] = mapped_column(Integer)
    joined: Mapped[int] = mapped_column(Integer)
    upgrades: Mapped[int] = mapped_column(Integer)
    downgrades: Mapped[int] = mapped_column(Integer)
    in_grace: Mapped[int] = mapped_column(Integer)


class MembershipChange(Base):
    """Level history: every join, upgrade and downgrade."""

    __tablename__ = "membership_history"
    __table_args__ = (
        _one_of("change", MembershipChangeKind, "change"),
        Index("ix_membership_history_customer_id_changed_on", "customer_id", "changed_on"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String)
    evaluation_id: Mapped[str] = mapped_column(ForeignKey("membership_evaluations.id"), index=True)
    changed_on: Mapped[date] = mapped_column(Date)
    change: Mapped[str] = mapped_column(String(16))
    from_level: Mapped[str | None] = mapped_column(String(32))
    to_level: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Double)


class Campaign(Base):
    """A target list, an action and a random control group that is not contacted."""

    __tablename__ = "campaigns"
    __table_args__ = (
        _one_of("purpose", CampaignPurpose, "purpose"),
        CheckConstraint("control_share > 0 AND control_share < 1", name="control_share"),
        CheckConstraint("ends_on >= starts_on", name="window"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(16))
    filters: Mapped[dict[str, Any]] = mapped_column(JSON_DOC)
    run_id: Mapped[str] = mapped_column(String(64))
    """The published run the target list was drawn from."""
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    control_share: Mapped[float] = mapped_column(Double)
    seed: Mapped[str] = mapped_column(String(64))
    cost_per_contact: Mapped[float] = mapped_column(Double, default=0.0)
    margin_rate: Mapped[float] = mapped_column(Double, default=1.0)
    created_by: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class CampaignMember(Base):
    __tablename__ = "campaign_members"
    __table_args__ = (
        _one_of("arm", CampaignArm, "arm"),
        Index("ix_campaign_members_customer_id", "customer_id"),
    )

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[str] = mapped_column(String, primary_key=True)
    arm: Mapped[str] = mapped_column(String(16))


class AuditEntry(Base):
    """Append-only, hash-chained: hash = sha256(prev_hash + canonical JSON of the row's fields)."""

    __tablename__ = "audit_log"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str | None] = mapped_column(String)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class Suppression(Base):
    """Subjects never to contact again; survives erasure because only a hash is kept."""

    __tablename__ = "suppression"
    __table_args__ = (
        _one_of("kind", SubjectKind, "kind"),
        _one_of("reason", SuppressionReason, "reason"),
    )

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ConsentEvent(Base):
    """Consent given or withdrawn for a purpose (marketing, profiling...); the latest one counts."""

    __tablename__ = "consent_events"
    __table_args__ = (
        Index("ix_consent_events_customer_purpose_at", "customer_id", "purpose", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String)
    purpose: Mapped[str] = mapped_column(String(32))
    granted: Mapped[bool]
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(64))
