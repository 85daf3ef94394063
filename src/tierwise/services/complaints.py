"""Complaint tickets and customer feedback (NPS, CSAT) as people see them.

Tickets come from the app or from the warehouse's `interactions` of kind complaint (imported
again and again without duplicates; a complaint resolved in the source later is resolved here).
Each gets first-response and resolution deadlines from `[complaints]` when it opens. An
unresolved ticket opens a follow-up task for its owner and, when created in the app, raises the
customer's churn risk in the current run one level (again after each run, by the import;
imported tickets already count in the churn model through `unresolved_complaints`).

Visibility follows tasks: admins and analysts see every ticket, others those they own, those of
customers they may read, and managers those of their team. Anything else is 404.
NPS and CSAT are computed in the warehouse over the viewer's customers only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

import ibis
import pyarrow as pa
from ibis.backends import BaseBackend
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from tierwise.core.errors import InvalidInputError, NotFoundError
from tierwise.core.settings import COMPLAINT_CATEGORIES, Settings
from tierwise.services.access import Viewer, require_operator, scope
from tierwise.services.serving import Store
from tierwise.services.tasks import (
    check_assignee,
    current_run_id,
    customers_in_scope,
    enabled_user,
    not_found,
    owned_or_in_scope,
)
from tierwise.services.warehouse import connect
from tierwise.store.audit import audit
from tierwise.store.complaints import move, open_complaint
from tierwise.store.models import (
    UNRESOLVED_COMPLAINT_STATUSES,
    Complaint,
    ComplaintSource,
    ComplaintStatus,
    Membership,
    PublishedProfile,
    Role,
    User,
    utcnow,
)
from tierwise.store.tasks import open_task
from tierwise.strategy.sla import SlaState, SlaSummary, Ticket, deadlines, raised_churn_risk
from tierwise.strategy.sla import sla_state as state_of
from tierwise.strategy.sla import summarize as summarize_sla

COMPLAINT_REASON = "complaint"
"""Reason of the follow-up task an unresolved complaint opens."""
RAISED_MARK = "churn_risk_before_complaint"
"""Profile key keeping the churn risk a complaint raised, so it is raised once per run."""
_UNRESOLVED = [s.value for s in UNRESOLVED_COMPLAINT_STATUSES]


def _visible(viewer: Viewer, run_id: str | None) -> ColumnElement[bool]:
    return owned_or_in_scope(
        viewer, run_id, owners=[Complaint.owner], customer=Complaint.customer_id
    )


@dataclass(frozen=True)
class ComplaintView:
    id: int
    customer_id: str
    source: str
    category: str
    channel: str | None
    description: str | None
    owner: str | None
    status: str
    opened_at: datetime
    first_response_due_at: datetime
    resolution_due_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    resolution: str | None
    created_by: str
    task_id: int | None
    first_response_sla: str
    resolution_sla: str

    @classmethod
    def of(cls, c: Complaint, now: datetime) -> ComplaintView:
        return cls(
            c.id,
            c.customer_id,
            c.source,
            c.category,
            c.channel,
            c.description,
            c.owner,
            c.status,
            c.opened_at,
            c.first_response_due_at,
            c.resolution_due_at,
            c.first_response_at,
            c.resolved_at,
            c.closed_at,
            c.resolution,
            c.created_by,
            c.task_id,
            state_of(c.first_response_due_at, c.first_response_at, now).value,
            state_of(c.resolution_due_at, c.resolved_at, now).value,
        )


@dataclass(frozen=True)
class ComplaintFilter:
    status: str | None = None
    category: str | None = None
    owner: str | None = None
    customer_id: str | None = None
    unresolved: bool | None = None
    breached: bool | None = None
    """True: a deadline was missed (late, or past due and still waiting)."""


@dataclass(frozen=True)
class ComplaintPage:
    items: list[ComplaintView]
    total: int
    counts: dict[str, int]
    page: int
    page_size: int


def _breached(now: datetime) -> ColumnElement[bool]:
    def missed(due: Any, done: Any) -> ColumnElement[bool]:
        return (done.is_(None) & (due < now)) | (done.is_not(None) & (done > due))

    return or_(
        missed(Complaint.first_response_due_at, Complaint.first_response_at),
        missed(Complaint.resolution_due_at, Complaint.resolved_at),
    )


def list_complaints(
    store: Store,
    viewer: Viewer,
    where: ComplaintFilter,
    *,
    page: int = 1,
    page_size: int = 50,
    now: datetime | None = None,
) -> ComplaintPage:
    """The viewer's tickets, newest first."""
    now = now or utcnow()
    with store.read() as session:
        visible = _visible(viewer, current_run_id(session))
        counts = dict(
            session.execute(
                select(Complaint.status, func.count()).where(visible).group_by(Complaint.status)
            ).all()
        )
        query = select(Complaint).where(visible)
        if where.status is not None:
            query = query.where(Complaint.status == ComplaintStatus(where.status).value)
        for column, value in (
            (Complaint.category, where.category),
            (Complaint.owner, where.owner),
            (Complaint.customer_id, where.customer_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if where.unresolved is not None:
            unresolved = Complaint.status.in_(_UNRESOLVED)
            query = query.where(unresolved if where.unresolved else ~unresolved)
        if where.breached is not None:
            query = query.where(_breached(now) if where.breached else ~_breached(now))
        total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
        rows = session.scalars(
            query.order_by(Complaint.opened_at.desc(), Complaint.id.desc())
            .offset((page - 1) * page_size)
            .limit(page_size)
        ).all()
        return ComplaintPage(
            [ComplaintView.of(c, now) for c in rows],
            total,
            {s.value: int(counts.get(s.value, 0)) for s in ComplaintStatus},
            page,
            page_size,
        )


def _visible_complaint(
    session: Session, viewer: Viewer, complaint_id: int, *, for_update: bool = False
) -> Complaint | None:
    query = select(Complaint).where(
        Complaint.id == complaint_id, _visible(viewer, current_run_id(session))
    )
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalar(query)


def get_complaint(
    store: Store, viewer: Viewer, complaint_id: int, *, now: datetime | None = None
) -> ComplaintView:
    with store.read() as session:
        complaint = _visible_complaint(session, viewer, complaint_id)
        if complaint is not None:
            return ComplaintView.of(complaint, now or utcnow())
        exists = session.get(Complaint, complaint_id) is not None
    raise not_found(store, viewer, f"complaint:{complaint_id}", exists)


def _check_category(category: str) -> None:
    if category not in COMPLAINT_CATEGORIES:
        raise InvalidInputError(
            f"category {category!r}: use one of {', '.join(COMPLAINT_CATEGORIES)}"
        )


def _raise_churn_risk(session: Session, run_id: str, customer_id: str) -> bool:
    """Raise the customer's churn risk in the run one level, once per run; True if raised."""
    row = session.get(PublishedProfile, (run_id, customer_id))
    if row is None or RAISED_MARK in row.profile:
        return False
    raised = raised_churn_risk(row.churn_risk)
    row.profile = {**row.profile, RAISED_MARK: row.churn_risk, "churn_risk": raised}
    row.churn_risk = raised
    return True


def _follow_up(session: Session, settings: Settings, complaint: Complaint, now: datetime) -> None:
    task, _ = open_task(
        session,
        complaint.customer_id,
        COMPLAINT_REASON,
        rule=f"complaint:{complaint.category}",
        assignee=complaint.owner,
        queue=None if complaint.owner else settings.tasks.unassigned_queue,
        due_at=complaint.resolution_due_at,
        now=now,
    )
    complaint.task_id = task.id


def create_complaint(
    store: Store,
    settings: Settings,
    viewer: Viewer,
    customer_id: str,
    category: str,
    *,
    description: str | None = None,
    channel: str | None = None,
    owner: str | None = None,
    now: datetime | None = None,
) -> ComplaintView:
    """Open a ticket for a customer the viewer may read (404 otherwise), with its deadlines, a
    follow-up task and the customer's churn risk raised. Unowned, it goes to the customer's
    account manager if they can sign in, or to the agent who opened it."""
    now = now or utcnow()
    _check_category(category)
    with store.write.begin() as session:
        run_id = current_run_id(session)
        profile = None
        if run_id is not None:
            profile = session.scalar(
                scope(viewer, run_id=run_id).where(PublishedProfile.customer_id == customer_id)
            )
        if run_id is None or profile is None:
            raise NotFoundError(f"no customer {customer_id!r}")
        if owner is not None:
            check_assignee(session, viewer, owner)
        elif enabled_user(session, profile.account_manager) is not None:
            owner = profile.account_manager
        elif viewer.role == Role.AGENT:
            owner = viewer.username
        first_due, resolve_due = deadlines(now, *settings.complaints.sla_hours(category))
        complaint, _ = open_complaint(
            session,
            customer_id,
            category=category,
            opened_at=now,
            first_response_due_at=first_due,
            resolution_due_at=resolve_due,
            created_by=viewer.username,
            channel=channel,
            description=description,
            owner=owner,
        )
        _follow_up(session, settings, complaint, now)
        _raise_churn_risk(session, run_id, customer_id)
        audit(
            session,
            viewer.username,
            "complaint_open",
            f"complaint:{complaint.id}",
            category=category,
        )
        return ComplaintView.of(complaint, now)


ComplaintMove = Literal["responded", "resolved", "closed"]


def move_complaint(
    store: Store,
    viewer: Viewer,
    complaint_id: int,
    status: ComplaintMove,
    *,
    resolution: str | None = None,
    now: datetime | None = None,
) -> ComplaintView:
    """Respond to, resolve, close or (responded from resolved) reopen a visible ticket."""
    now = now or utcnow()
    with store.write.begin() as session:
        complaint = _visible_complaint(session, viewer, complaint_id, for_update=True)
        if complaint is not None:
            before = complaint.status
            move(session, complaint, status, now=now, resolution=resolution)
            audit(
                session,
                viewer.username,
                "complaint_status",
                f"complaint:{complaint_id}",
                from_status=before,
                to_status=status,
            )
            return ComplaintView.of(complaint, now)
        exists = session.get(Complaint, complaint_id) is not None
    raise not_found(store, viewer, f"complaint:{complaint_id}", exists)


def assign_complaint(
    store: Store, viewer: Viewer, complaint_id: int, owner: str, *, now: datetime | None = None
) -> ComplaintView:
    """Give a visible ticket to another owner (agents only to themselves)."""
    now = now or utcnow()
    with store.write.begin() as session:
        complaint = _visible_complaint(session, viewer, complaint_id, for_update=True)
        if complaint is not None:
            check_assignee(session, viewer, owner)
            complaint.owner = owner
            audit(
                session,
                viewer.username,
                "complaint_assign",
                f"complaint:{complaint_id}",
                owner=owner,
            )
            return ComplaintView.of(complaint, now)
        exists = session.get(Complaint, complaint_id) is not None
    raise not_found(store, viewer, f"complaint:{complaint_id}", exists)


# --- import from the warehouse ----------------------------------------------------------------


@dataclass
class ImportResult:
    rows: int = 0
    """Complaint rows read from `interactions`."""
    created: int = 0
    resolved: int = 0
    """Tickets already imported that the source now shows resolved."""
    raised: int = 0
    """Customers whose churn risk in the current run was raised for an open app ticket."""


def _source_key(
    customer_id: str, occurred_at: datetime, channel: str | None, handled_by: str | None
) -> str:
    """Identity of a complaint in the source, without its outcome: the row a later export
    shows resolved is the same complaint."""
    raw = "\x1f".join([customer_id, occurred_at.isoformat(), channel or "", handled_by or ""])
    return hashlib.sha256(raw.encode()).hexdigest()


def _category(attributes: str | None) -> str:
    """The source's `category` attribute when it names a category, else other."""
    if attributes:
        try:
            value = json.loads(attributes).get("category")
        except (ValueError, AttributeError):
            value = None
        if isinstance(value, str) and value in COMPLAINT_CATEGORIES:
            return value
    return "other"


def import_complaints(
    settings: Settings,
    store: Store,
    viewer: Viewer,
    *,
    since: date | None = None,
    now: datetime | None = None,
) -> ImportResult:
    """Turn the warehouse's complaint interactions into tickets (admins and analysts).

    Source times are business-local (`business_timezone`). An unresolved imported ticket opens
    a follow-up task like one created in the app. A run publishes churn risks afresh, so the
    import also raises them again for customers with an unresolved ticket opened in the app:
    run it after every run (and, for the resolutions, every ingest).
    """
    require_operator(viewer, "import complaints")
    now = now or utcnow()
    zone = ZoneInfo(settings.business_timezone)
    rows: list[dict[str, Any]] = []
    con = connect(settings)
    try:
        if "interactions" in con.list_tables():
            rows = _complaint_rows(con, since)
    finally:
        con.disconnect()
    result = ImportResult(rows=len(rows))
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:  # a resolved copy of a complaint wins over an open one
        key = _source_key(row["customer_id"], row["occurred_at"], row["channel"], row["handled_by"])
        if key not in latest or row["resolved_at"] is not None:
            latest[key] = row

    def aware(value: datetime | None) -> datetime | None:
        return None if value is None else value.replace(tzinfo=zone).astimezone(UTC)

    with store.write.begin() as session:
        managers = _account_managers(session)
        users = set(session.scalars(select(User.username).where(~User.disabled)))
        for key, row in latest.items():
            opened = aware(row["occurred_at"])
            resolved = aware(row["resolved_at"])
            assert opened is not None  # occurred_at is required by the contract
            category = _category(row["attributes"])
            handler = row["handled_by"]
            manager = managers.get(row["customer_id"])
            owner = handler if handler in users else manager if manager in users else None
            first_due, resolve_due = deadlines(opened, *settings.complaints.sla_hours(category))
            complaint, created = open_complaint(
                session,
                row["customer_id"],
                category=category,
                opened_at=opened,
                first_response_due_at=first_due,
                resolution_due_at=resolve_due,
                created_by=viewer.username,
                source=ComplaintSource.WAREHOUSE.value,
                source_key=key,
                channel=row["channel"],
                owner=owner,
                resolved_at=resolved,
            )
            if created:
                result.created += 1
                if resolved is None:
                    _follow_up(session, settings, complaint, now)
            elif resolved is not None and complaint.status in _UNRESOLVED:
                move(session, complaint, ComplaintStatus.RESOLVED, now=resolved)
                result.resolved += 1
        run_id = current_run_id(session)
        if run_id is not None:
            for customer_id in session.scalars(
                select(Complaint.customer_id)
                .where(
                    Complaint.source == ComplaintSource.APP.value,
                    Complaint.status.in_(_UNRESOLVED),
                )
                .distinct()
            ):
                result.raised += _raise_churn_risk(session, run_id, customer_id)
        audit(
            session,
            viewer.username,
            "complaint_import",
            "complaints",
            rows=result.rows,
            created=result.created,
            resolved=result.resolved,
            raised=result.raised,
        )
    return result


def _complaint_rows(con: BaseBackend, since: date | None) -> list[dict[str, Any]]:
    t = con.table("interactions")
    t = t.filter(t.kind == "complaint")
    if since is not None:
        t = t.filter(t.occurred_at >= datetime.combine(since, datetime.min.time()))
    columns = ("customer_id", "occurred_at", "channel", "handled_by", "resolved_at", "attributes")
    return list(t.select(*columns).order_by("occurred_at", "customer_id").to_pyarrow().to_pylist())


def _account_managers(session: Session) -> dict[str, str | None]:
    """customer_id -> account manager in the current run."""
    run_id = current_run_id(session)
    if run_id is None:
        return {}
    return dict(
        session.execute(
            select(PublishedProfile.customer_id, PublishedProfile.account_manager).where(
                PublishedProfile.run_id == run_id
            )
        ).all()
    )


# --- service levels -------------------------------------------------------------------------


@dataclass
class SlaReport:
    now: datetime
    overall: SlaSummary
    by_category: dict[str, SlaSummary] = field(default_factory=dict)
    open: int = 0


def sla_report(
    store: Store, viewer: Viewer, *, since: datetime | None = None, now: datetime | None = None
) -> SlaReport:
    """First-response and resolution deadlines met, missed and pending over the viewer's
    tickets (opened since `since`), overall and per category."""
    now = now or utcnow()
    with store.read() as session:
        query = select(
            Complaint.category,
            Complaint.status,
            Complaint.first_response_due_at,
            Complaint.first_response_at,
            Complaint.resolution_due_at,
            Complaint.resolved_at,
        ).where(_visible(viewer, current_run_id(session)))
        if since is not None:
            query = query.where(Complaint.opened_at >= since)
        rows = session.execute(query).all()
    by_category: dict[str, list[Ticket]] = {}
    for row in rows:
        by_category.setdefault(row.category, []).append(
            Ticket(
                row.first_response_due_at,
                row.first_response_at,
                row.resolution_due_at,
                row.resolved_at,
            )
        )
    return SlaReport(
        now,
        summarize_sla((t for tickets in by_category.values() for t in tickets), now),
        {c: summarize_sla(tickets, now) for c, tickets in sorted(by_category.items())},
        sum(1 for row in rows if row.status in _UNRESOLVED),
    )


def sla_breached(view: ComplaintView) -> bool:
    missed = {SlaState.BREACHED.value, SlaState.OVERDUE.value}
    return view.first_response_sla in missed or view.resolution_sla in missed


# --- feedback: NPS and CSAT -------------------------------------------------------------------

FeedbackDimension = Literal[
    "rfm_segment",
    "rfm_class8",
    "abc_class",
    "value_tier",
    "lifecycle_stage",
    "churn_risk",
    "membership_level",
]


FEEDBACK_DIMENSIONS: tuple[str, ...] = get_args(FeedbackDimension)


@dataclass(frozen=True)
class FeedbackStat:
    key: str | None
    """The segment (or the period's first day); None for customers without one."""
    responses: int
    csat_responses: int
    csat_mean: float | None
    csat_satisfied: float | None
    """Share of CSAT answers of 4 or 5 (CSAT %)."""
    nps_responses: int
    nps: float | None
    """% promoters (9–10) − % detractors (0–6)."""


@dataclass(frozen=True)
class FeedbackTable:
    run_id: str | None
    dimension: str
    rows: list[FeedbackStat]


def _scoped_keys(session: Session, viewer: Viewer, run_id: str, dimension: str | None) -> pa.Table:
    """customer_id and the dimension's value of each customer the viewer may read."""
    query = customers_in_scope(viewer, run_id)
    if dimension == "membership_level":
        query = query.add_columns(Membership.level).outerjoin(
            Membership, Membership.customer_id == PublishedProfile.customer_id
        )
    elif dimension is not None:
        query = query.add_columns(getattr(PublishedProfile, dimension))
    rows: list[Any] = list(session.execute(query))
    return pa.table(
        {
            "_cid": pa.array([r[0] for r in rows], pa.string()),
            "_key": pa.array([r[1] if dimension else None for r in rows], pa.string()),
        }
    )


def _feedback_stats(settings: Settings, keys: pa.Table, group: str) -> list[dict[str, Any]]:
    """Answers per key; none before any feedback was ingested (it is an optional source)."""
    con = connect(settings)
    try:
        if "feedback" not in con.list_tables():
            return []
        f = con.table("feedback")
        k = ibis.memtable(keys)
        j = f.join(k, f.customer_id == k._cid)
        if group == "month":
            j = j.mutate(_key=j.responded_at.truncate("M").date().cast("string"))
        agg = j.group_by("_key").aggregate(
            responses=j.count(),
            csat_responses=j.csat.count(),
            csat_mean=j.csat.mean(),
            csat_satisfied=(j.csat >= 4).sum(),
            nps_responses=j.nps.count(),
            promoters=(j.nps >= 9).sum(),
            detractors=(j.nps <= 6).sum(),
        )
        return list(agg.order_by("_key").to_pyarrow().to_pylist())
    finally:
        con.disconnect()


def _stat(row: dict[str, Any]) -> FeedbackStat:
    csat_n, nps_n = int(row["csat_responses"]), int(row["nps_responses"])
    return FeedbackStat(
        key=row["_key"],
        responses=int(row["responses"]),
        csat_responses=csat_n,
        csat_mean=None if not csat_n else float(row["csat_mean"]),
        csat_satisfied=None if not csat_n else int(row["csat_satisfied"] or 0) / csat_n,
        nps_responses=nps_n,
        nps=None
        if not nps_n
        else 100.0 * (int(row["promoters"] or 0) - int(row["detractors"] or 0)) / nps_n,
    )


def feedback_by(
    settings: Settings, store: Store, viewer: Viewer, dimension: FeedbackDimension
) -> FeedbackTable:
    """NPS and CSAT per value of a profile dimension (or membership level), over the survey
    answers of the viewer's customers in the current run."""
    with store.read() as session:
        run_id = current_run_id(session)
        if run_id is None:
            return FeedbackTable(None, dimension, [])
        keys = _scoped_keys(session, viewer, run_id, dimension)
    return FeedbackTable(
        run_id, dimension, [_stat(r) for r in _feedback_stats(settings, keys, "key")]
    )


def feedback_trend(settings: Settings, store: Store, viewer: Viewer) -> FeedbackTable:
    """NPS and CSAT per calendar month of the answer, over the viewer's customers."""
    with store.read() as session:
        run_id = current_run_id(session)
        if run_id is None:
            return FeedbackTable(None, "month", [])
        keys = _scoped_keys(session, viewer, run_id, None)
    return FeedbackTable(
        run_id, "month", [_stat(r) for r in _feedback_stats(settings, keys, "month")]
    )
