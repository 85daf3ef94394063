"""What the API, the dashboard and the CLI ask of the operational store: sign-in, tokens, users,
and customers read through `access.scope`, masked by `access.for_viewer`.

Reads pin the current run once per request, so a page and its total, or a segment table, come
from one run even when another is published meanwhile (the previous run is kept for that).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import Engine, Select, String, func, literal, or_, select, union_all
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, defer, sessionmaker

from tierwise.core.errors import AuthError, NotFoundError
from tierwise.core.settings import Settings
from tierwise.services.access import (
    PII_READ,
    Principal,
    Viewer,
    can,
    for_viewer,
    require_operator,
    scope,
    sees_everyone,
)
from tierwise.services.quality import latest_report
from tierwise.services.warehouse import connect
from tierwise.store import users as store_users
from tierwise.store.audit import audit, verify_chain
from tierwise.store.db import make_engine, session_factory, upgrade
from tierwise.store.models import (
    ApiToken,
    CohortRetention,
    PublishedProfile,
    PublishedRun,
    Role,
    RunStatus,
    SegmentMigration,
    SubjectKind,
    User,
)
from tierwise.store.publish import current_run
from tierwise.store.suppression import subject_hash
from tierwise.store.tokens import create_token, hash_secret, revoke_token, user_for_token
from tierwise.store.web_sessions import (
    check_csrf,
    create_web_session,
    end_web_session,
    web_session_user,
)

# --- the store -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    """The operational store: one engine, sessions for writes and DEFERRED read-only sessions."""

    engine: Engine
    write: sessionmaker[Session]
    read: sessionmaker[Session]

    def close(self) -> None:
        self.engine.dispose()


def store_url(settings: Settings) -> str:
    """`store.url` with a relative SQLite path resolved against the tierwise.toml directory."""
    url = make_url(settings.store.url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        url = url.set(database=str(settings.resolve(url.database)))
    return url.render_as_string(hide_password=False)


def open_store(settings: Settings) -> Store:
    """Connect and migrate to the latest schema (migrations are the only way tables appear)."""
    engine = make_engine(store_url(settings))
    upgrade(engine)
    return Store(engine, session_factory(engine), session_factory(engine, readonly=True))


@contextmanager
def opened_store(settings: Settings) -> Iterator[Store]:
    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


# --- sign-in, sessions and tokens ------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    """A new browser session: the cookie secret and CSRF token go to the client, never stored."""

    principal: Principal
    session_secret: str
    csrf_token: str
    expires_at: datetime


def login(store: Store, username: str, password: str, ip: str) -> SignedIn:
    """Check the password (throttled, audited) and open a web session."""
    with store.write() as session:
        user = store_users.authenticate(session, username, password, ip)
        web = create_web_session(session, user)
        session.commit()
        return SignedIn(Principal.of(user), web.secret, web.csrf_token, web.expires_at)


def logout(store: Store, viewer: Principal, session_secret: str | None) -> None:
    """End the browser session, if the request came with one; audited either way."""
    with store.write.begin() as session:
        if session_secret:
            end_web_session(session, session_secret)
        audit(session, viewer.username, "logout", viewer.username)


def principal_for_token(store: Store, token: str) -> Principal:
    with store.write.begin() as session:
        return Principal.of(user_for_token(session, token))


def principal_for_session(
    store: Store, session_secret: str, *, state_changing: bool, csrf_token: str | None
) -> Principal:
    """The session's user; a state-changing request must also carry the session's CSRF token."""
    with store.write.begin() as session:
        user, web = web_session_user(session, session_secret)
        if state_changing:
            check_csrf(web, csrf_token)
        return Principal.of(user)


@dataclass(frozen=True)
class NewToken:
    """A personal API token; `token` is the plaintext, shown this once."""

    id: int
    name: str
    token: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None


def create_api_token(store: Store, viewer: Principal, name: str, ttl_days: int | None) -> NewToken:
    with store.write.begin() as session:
        user = session.get(User, viewer.id)
        if user is None or user.disabled:
            raise AuthError(f"user {viewer.username!r} cannot create tokens")
        secret = create_token(session, user, name, ttl_days)
        row = session.scalars(
            select(ApiToken).where(ApiToken.token_hash == hash_secret(secret))
        ).one()
        return NewToken(row.id, row.name, secret, row.prefix, row.created_at, row.expires_at)


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiToken) -> TokenInfo:
        return cls(
            row.id,
            row.name,
            row.prefix,
            row.created_at,
            row.last_used_at,
            row.expires_at,
            row.revoked_at,
        )


def list_api_tokens(store: Store, viewer: Principal) -> list[TokenInfo]:
    """The caller's own tokens, revoked and expired ones included (secrets are never kept)."""
    with store.read() as session:
        rows = session.scalars(
            select(ApiToken).where(ApiToken.user_id == viewer.id).order_by(ApiToken.id)
        )
        return [TokenInfo.of(row) for row in rows]


def revoke_api_token(store: Store, viewer: Principal, token_id: int) -> TokenInfo:
    """Revoke one of the caller's tokens; anyone else's answers like a missing one."""
    with store.write.begin() as session:
        row = session.get(ApiToken, token_id)
        if row is None or row.user_id != viewer.id:
            raise NotFoundError(f"no API token {token_id}")
        return TokenInfo.of(revoke_token(session, token_id, actor=viewer.username))


# --- users, for the CLI --------------------------------------------------------------------


def _operator() -> User:
    """The local operator as an admin actor named `cli`, never stored.

    Whoever can run the CLI on this host can already read and write the store's database, so
    CLI commands act with admin rights; the audit log records them as `cli`.
    """
    return User(username="cli", role=Role.ADMIN.value, disabled=False)


def add_user(
    store: Store,
    username: str,
    role: str,
    *,
    team: str | None = None,
    display_name: str | None = None,
) -> tuple[Principal, str]:
    """Create a user with a generated password, returned once."""
    with store.write.begin() as session:
        user, password = store_users.create_user(
            session, username, role, team=team, display_name=display_name, actor="cli"
        )
        assert password is not None  # none was given, so one was generated
        return Principal.of(user), password


def reset_password(store: Store, username: str) -> str:
    """Give a user a new generated password, returned once; their web sessions end."""
    with store.write.begin() as session:
        user = store_users.get_user(session, username)
        password = store_users.generate_password()
        store_users.change_password(session, user, password, actor="cli")
        return password


@dataclass(frozen=True)
class UserInfo:
    username: str
    display_name: str
    role: str
    team: str | None
    disabled: bool
    created_at: datetime


def list_users(store: Store) -> list[UserInfo]:
    with store.read() as session:
        return [
            UserInfo(u.username, u.display_name, u.role, u.team, u.disabled, u.created_at)
            for u in store_users.list_users(session)
        ]


def disable_user(store: Store, username: str) -> None:
    """Block sign-in, tokens and sessions; refuses to disable the last enabled admin."""
    with store.write.begin() as session:
        store_users.disable_user(session, _operator(), username)


def verify_audit(store: Store) -> int | None:
    """The id of the first audit row that was edited, inserted or follows a deleted one."""
    with store.read() as session:
        return verify_chain(session)


# --- customers -----------------------------------------------------------------------------

SortKey = Literal["revenue", "orders", "recency_days", "clv", "churn_probability", "customer_id"]

SUMMARY_FIELDS = (
    "customer_id",
    "name",
    "phone",
    "email",
    "rfm_segment",
    "rfm_class8",
    "abc_class",
    "value_tier",
    "lifecycle_stage",
    "churn_risk",
    "account_manager",
    "revenue",
    "orders",
    "recency_days",
    "clv",
    "churn_probability",
    "profit",
    "consent_marketing",
)
"""Typed profile columns shown in customer lists."""

DIMENSIONS = ("rfm_segment", "rfm_class8", "abc_class", "value_tier", "lifecycle_stage")
"""Profile columns the segment summary groups by."""


@dataclass(frozen=True)
class CustomerFilter:
    """Exact matches on classification columns, and `q`, a case-insensitive substring of the
    customer id, or of the name for viewers allowed to see names (for others a name search
    would reveal the masked names)."""

    segment: str | None = None
    class8: str | None = None
    abc: str | None = None
    tier: str | None = None
    stage: str | None = None
    churn_risk: str | None = None
    q: str | None = None


_FILTER_COLUMNS = {
    "segment": PublishedProfile.rfm_segment,
    "class8": PublishedProfile.rfm_class8,
    "abc": PublishedProfile.abc_class,
    "tier": PublishedProfile.value_tier,
    "stage": PublishedProfile.lifecycle_stage,
    "churn_risk": PublishedProfile.churn_risk,
}


def filtered(viewer: Viewer, run_id: str, where: CustomerFilter) -> Select[PublishedProfile]:
    """`scope(viewer)` narrowed by `where`: what lists, counts and exports read."""
    query = scope(viewer, run_id=run_id)
    for name, column in _FILTER_COLUMNS.items():
        value = getattr(where, name)
        if value is not None:
            query = query.where(column == value)
    if where.q:
        matches = [PublishedProfile.customer_id.icontains(where.q, autoescape=True)]
        if can(viewer, PII_READ):
            matches.append(PublishedProfile.name.icontains(where.q, autoescape=True))
        query = query.where(or_(*matches))
    return query


def _count(session: Session, query: Select[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


@dataclass(frozen=True)
class CustomerPage:
    run_id: str | None
    items: list[dict[str, Any]]
    total: int
    page: int
    page_size: int


def list_customers(
    store: Store,
    viewer: Viewer,
    where: CustomerFilter,
    *,
    sort: SortKey = "customer_id",
    descending: bool = False,
    page: int = 1,
    page_size: int = 50,
) -> CustomerPage:
    """One page of the viewer's customers (list and search), masked, with the matching total.

    Missing values sort last either way; ties are broken by customer id so pages never overlap.
    """
    with store.read() as session:
        run = current_run(session)
        if run is None:
            return CustomerPage(None, [], 0, page, page_size)
        query = filtered(viewer, run.run_id, where)
        total = _count(session, query)
        column = getattr(PublishedProfile, sort)
        if sort == "customer_id" and (where != CustomerFilter() or not sees_everyone(viewer)):
            # With a bound LIMIT, SQLite walks the primary key in id order and skips rows that
            # do not match: a rare filter value (new customers, 2 %) then reads most of the
            # wide table (2 s at 1M). An expression key makes it sort the matching ids from the
            # filter's covering index instead; the order is the same.
            column = column.concat("")
        order = (column.desc() if descending else column.asc()).nulls_last()
        # The page's ids first: sorting them reads only the covering filter index, not the
        # wide rows; then the page's rows by key.
        ids = session.scalars(
            query.with_only_columns(PublishedProfile.customer_id)
            .order_by(order, PublishedProfile.customer_id.asc())
            .offset((page - 1) * page_size)
            .limit(page_size)
        ).all()
        rows = {
            r.customer_id: r
            for r in session.scalars(
                select(PublishedProfile)
                .options(defer(PublishedProfile.profile))
                .where(PublishedProfile.run_id == run.run_id, PublishedProfile.customer_id.in_(ids))
            )
        }
        items = [for_viewer(viewer, {f: getattr(rows[i], f) for f in SUMMARY_FIELDS}) for i in ids]
        return CustomerPage(run.run_id, items, total, page, page_size)


@dataclass(frozen=True)
class CustomerCount:
    run_id: str | None
    total: int


def count_customers(store: Store, viewer: Viewer, where: CustomerFilter) -> CustomerCount:
    with store.read() as session:
        run = current_run(session)
        if run is None:
            return CustomerCount(None, 0)
        return CustomerCount(run.run_id, _count(session, filtered(viewer, run.run_id, where)))


@dataclass(frozen=True)
class CustomerDetail:
    run_id: str
    as_of: date
    profile: dict[str, Any]


def customer_detail(store: Store, viewer: Viewer, customer_id: str) -> CustomerDetail:
    """The whole published profile, masked for the viewer.

    A customer outside the viewer's scope is answered exactly like a missing one, so ids cannot
    be probed, and the refusal is audited as `denied`.
    """
    with store.read() as session:
        run = current_run(session)
        if run is None:
            raise NotFoundError(f"no customer {customer_id!r}")
        row = session.scalar(
            scope(viewer, run_id=run.run_id).where(PublishedProfile.customer_id == customer_id)
        )
        if row is not None:
            return CustomerDetail(run.run_id, run.as_of, for_viewer(viewer, row.profile))
        exists = session.scalar(
            select(PublishedProfile.customer_id).where(
                PublishedProfile.run_id == run.run_id,
                PublishedProfile.customer_id == customer_id,
            )
        )
    if exists is not None:
        with store.write.begin() as session:
            audit(
                session,
                viewer.username,
                "denied",
                f"customer:{subject_hash(SubjectKind.CUSTOMER_ID, customer_id)}",
                attempted="customer_read",
                run_id=run.run_id,
            )
    raise NotFoundError(f"no customer {customer_id!r}")


@dataclass(frozen=True)
class SegmentStat:
    key: str | None
    customers: int
    share: float
    revenue: float | None
    mean_clv: float | None


@dataclass(frozen=True)
class SegmentTable:
    run_id: str | None
    customers: int
    dimensions: dict[str, list[SegmentStat]]


def segments(store: Store, viewer: Viewer) -> SegmentTable:
    """Size, revenue and mean CLV of each value of every dimension, over the viewer's scope."""
    with store.read() as session:
        run = current_run(session)
        if run is None:
            return SegmentTable(None, 0, {d: [] for d in DIMENSIONS})
        scoped = scope(viewer, run_id=run.run_id).cte("scoped")
        parts = [
            select(
                literal(dim, String).label("dimension"),
                scoped.c[dim].label("key"),
                func.count().label("customers"),
                func.sum(scoped.c.revenue).label("revenue"),
                func.avg(scoped.c.clv).label("mean_clv"),
            ).group_by(scoped.c[dim])
            for dim in DIMENSIONS
        ]
        rows = session.execute(union_all(*parts)).all()
    tables: dict[str, list[SegmentStat]] = {d: [] for d in DIMENSIONS}
    totals = dict.fromkeys(DIMENSIONS, 0)
    for row in rows:
        totals[row.dimension] += row.customers
    for row in rows:
        total = totals[row.dimension]
        tables[row.dimension].append(
            SegmentStat(
                row.key,
                row.customers,
                row.customers / total if total else 0.0,
                None if row.revenue is None else float(row.revenue),
                None if row.mean_clv is None else float(row.mean_clv),
            )
        )
    for stats in tables.values():
        stats.sort(key=lambda s: (-s.customers, s.key or ""))
    return SegmentTable(run.run_id, totals[DIMENSIONS[0]], tables)


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    as_of: date
    status: str
    published_at: datetime | None
    customers: int
    is_current: bool


def list_runs(store: Store) -> list[RunInfo]:
    """Published and retired runs, newest first (runs still loading are invisible)."""
    with store.read() as session:
        runs = session.scalars(
            select(PublishedRun)
            .where(PublishedRun.status != RunStatus.LOADING.value)
            .order_by(PublishedRun.published_at.desc().nulls_last(), PublishedRun.run_id.desc())
        ).all()
        return [
            RunInfo(r.run_id, r.as_of, r.status, r.published_at, r.customers, r.is_current)
            for r in runs
        ]


# --- run-level aggregates --------------------------------------------------------------------
# Migration and cohort tables are counts the run computed over every customer; they hold no
# customer rows and cannot be narrowed to a viewer's scope, so every signed-in user sees them.

MigrationDimension = Literal["lifecycle_stage", "rfm_segment", "rfm_class8", "value_tier"]


@dataclass(frozen=True)
class MigrationRow:
    from_value: str
    to_value: str
    customers: int
    rate: float | None


@dataclass(frozen=True)
class MigrationTable:
    run_id: str | None
    dimension: str
    rows: list[MigrationRow]


def migration(store: Store, dimension: MigrationDimension) -> MigrationTable:
    """Customers moving between values of `dimension` since the previous run (run-level)."""
    with store.read() as session:
        run = current_run(session)
        if run is None:
            return MigrationTable(None, dimension, [])
        rows = session.scalars(
            select(SegmentMigration)
            .where(SegmentMigration.run_id == run.run_id, SegmentMigration.dimension == dimension)
            .order_by(SegmentMigration.from_value, SegmentMigration.to_value)
        ).all()
        return MigrationTable(
            run.run_id,
            dimension,
            [MigrationRow(r.from_value, r.to_value, r.customers, r.rate) for r in rows],
        )


@dataclass(frozen=True)
class CohortRow:
    cohort_month: date
    month_offset: int
    cohort_size: int
    active_customers: int
    retention: float | None


@dataclass(frozen=True)
class CohortTable:
    run_id: str | None
    rows: list[CohortRow]


def cohorts(store: Store) -> CohortTable:
    """Retention of each first-order-month cohort in the current run (run-level)."""
    with store.read() as session:
        run = current_run(session)
        if run is None:
            return CohortTable(None, [])
        rows = session.scalars(
            select(CohortRetention)
            .where(CohortRetention.run_id == run.run_id)
            .order_by(CohortRetention.cohort_month, CohortRetention.month_offset)
        ).all()
        return CohortTable(
            run.run_id,
            [
                CohortRow(
                    r.cohort_month, r.month_offset, r.cohort_size, r.active_customers, r.retention
                )
                for r in rows
            ],
        )


def quality(settings: Settings, viewer: Viewer) -> dict[str, Any] | None:
    """The data-quality report saved by the last ingest (None before any), for operators only:
    it describes every table, not the viewer's customers."""
    require_operator(viewer, "read the data-quality report")
    con = connect(settings)
    try:
        return latest_report(con)
    finally:
        con.disconnect()
