"""Membership levels (会员等级): evaluated from warehouse orders after every run, kept with their
history in the store, and read per customer through `access.scope`.

Every customer with an order by as_of is evaluated on their rolling spend (or points) in the
warehouse; the level rules are `strategy.membership`. One evaluation is one store transaction:
levels, history and the evaluation's counts never disagree. Evaluations only move forward in
time, so a review date is applied once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from ibis.backends import BaseBackend
from sqlalchemy import func, select

from tierwise.core.errors import ConflictError, DataError
from tierwise.core.settings import Settings
from tierwise.engine.membership import rolling_value
from tierwise.services.access import Viewer, scope
from tierwise.services.ingest import new_id
from tierwise.services.locking import warehouse_lock
from tierwise.services.run import current_run as current_snapshot
from tierwise.services.serving import Store, opened_store
from tierwise.services.tasks import customers_in_scope, not_found
from tierwise.services.warehouse import connect
from tierwise.store.membership import (
    current_memberships,
    customer_history,
    evaluations,
    latest_evaluation_date,
    save_evaluation,
)
from tierwise.store.models import Membership as MembershipRow
from tierwise.store.models import PublishedProfile, utcnow
from tierwise.store.publish import current_run
from tierwise.strategy.membership import Change, Level, Membership, Rules, evaluate


def rules_of(settings: Settings) -> Rules:
    m = settings.membership
    return Rules(
        levels=tuple(Level(x.code, x.name, x.min_value) for x in m.levels),
        review_dates=tuple((int(d[:2]), int(d[3:])) for d in m.review_dates),
        grace_days=m.grace_days,
    )


@dataclass(frozen=True)
class EvaluationResult:
    id: str
    run_id: str | None
    as_of: date
    basis: str
    evaluated_at: datetime
    customers: int
    joined: int
    upgrades: int
    downgrades: int
    in_grace: int


def _values(con: BaseBackend, settings: Settings, as_of: date) -> dict[str, float]:
    if "orders" not in con.list_tables():
        raise DataError("no orders in the warehouse yet: run `tierwise ingest` first")
    m = settings.membership
    expr = rolling_value(
        con.table("orders"),
        as_of=as_of,
        window_days=m.window_days,
        basis=m.basis,
        points_per_unit=m.points_per_unit,
        points_per_order=m.points_per_order,
    ).select("customer_id", "value")
    values: dict[str, float] = {}
    for batch in expr.to_pyarrow_batches(chunk_size=100_000):
        ids, amounts = batch.column(0).to_pylist(), batch.column(1).to_pylist()
        values.update(zip(ids, amounts, strict=True))
    return values


def evaluate_levels(
    settings: Settings,
    store: Store,
    con: BaseBackend,
    as_of: date,
    *,
    run_id: str | None = None,
) -> EvaluationResult:
    """Evaluate every customer's level at `as_of`; ConflictError if a later date was evaluated."""
    rules = rules_of(settings)
    values = _values(con, settings, as_of)
    with store.write.begin() as session:
        last = latest_evaluation_date(session)
        if last is not None and as_of < last:
            raise ConflictError(
                f"membership was already evaluated at {last}; levels only move forward in time"
            )
        held = {
            row.customer_id: (
                Membership(row.level, row.since, last or as_of, row.grace_until),
                row.value,
            )
            for row in current_memberships(session)
        }
        inserted: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        counts = dict.fromkeys(Change, 0)
        in_grace = 0
        for customer_id, value in values.items():
            before, old_value = held.get(customer_id, (None, None))
            decision = evaluate(rules, before, value, as_of)
            after = decision.membership
            row = {
                "customer_id": customer_id,
                "level": after.level,
                "since": after.since,
                "grace_until": after.grace_until,
                "value": value,
            }
            if before is None:
                inserted.append(row)
            elif (before.level, before.since, before.grace_until, old_value) != (
                after.level,
                after.since,
                after.grace_until,
                value,
            ):
                updated.append(row)
            if decision.change is not None:
                counts[decision.change] += 1
                changes.append(
                    {
                        "customer_id": customer_id,
                        "changed_on": as_of,
                        "change": decision.change.value,
                        "from_level": decision.previous,
                        "to_level": after.level,
                        "value": value,
                    }
                )
            in_grace += after.grace_until is not None
        result = EvaluationResult(
            id=new_id(),
            run_id=run_id,
            as_of=as_of,
            basis=settings.membership.basis,
            evaluated_at=utcnow(),
            customers=len(values),
            joined=counts[Change.JOIN],
            upgrades=counts[Change.UPGRADE],
            downgrades=counts[Change.DOWNGRADE],
            in_grace=in_grace,
        )
        save_evaluation(
            session, asdict(result), inserted=inserted, updated=updated, changes=changes
        )
    return result


def evaluate_after_run(
    settings: Settings, con: BaseBackend, run_id: str, as_of: date
) -> EvaluationResult | None:
    """The per-run evaluation; a run dated before the last evaluation (a back-test) is skipped,
    since levels only move forward."""
    with opened_store(settings) as store:
        with store.read() as session:
            last = latest_evaluation_date(session)
        if last is not None and as_of < last:
            return None
        return evaluate_levels(settings, store, con, as_of, run_id=run_id)


# --- reads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LevelInfo:
    code: str
    name: str
    min_value: float


def levels(settings: Settings) -> list[LevelInfo]:
    return [LevelInfo(x.code, x.name, x.min_value) for x in settings.membership.levels]


@dataclass(frozen=True)
class LevelCount:
    code: str
    name: str
    customers: int
    in_grace: int


@dataclass(frozen=True)
class LevelSummary:
    run_id: str | None
    levels: list[LevelCount]


def level_summary(settings: Settings, store: Store, viewer: Viewer) -> LevelSummary:
    """Members per level among the viewer's customers of the current run."""
    with store.read() as session:
        run = current_run(session)
        if run is None:
            return LevelSummary(None, [LevelCount(x.code, x.name, 0, 0) for x in levels(settings)])
        rows = session.execute(
            select(
                MembershipRow.level,
                func.count(),
                func.count(MembershipRow.grace_until),
            )
            .where(
                MembershipRow.customer_id.in_(
                    customers_in_scope(viewer, run.run_id).scalar_subquery()
                )
            )
            .group_by(MembershipRow.level)
        ).all()
    found = {level: (n, grace) for level, n, grace in rows}
    configured = [LevelCount(x.code, x.name, *found.pop(x.code, (0, 0))) for x in levels(settings)]
    retired = [LevelCount(code, code, n, g) for code, (n, g) in sorted(found.items())]
    return LevelSummary(run.run_id, configured + retired)


@dataclass(frozen=True)
class HistoryEntry:
    changed_on: date
    change: str
    from_level: str | None
    to_level: str
    value: float


@dataclass(frozen=True)
class CustomerMembership:
    customer_id: str
    level: str | None
    level_name: str | None
    since: date | None
    grace_until: date | None
    value: float | None
    next_level: str | None
    to_next_level: float | None
    """How much more rolling spend (or points) reaches the next level."""
    history: list[HistoryEntry]


def customer_membership(
    settings: Settings, store: Store, viewer: Viewer, customer_id: str
) -> CustomerMembership:
    """A customer's level, distance to the next one and history; 404 outside the viewer's scope."""
    with store.read() as session:
        run = current_run(session)
        visible = run is not None and session.scalar(
            scope(viewer, run_id=run.run_id)
            .with_only_columns(PublishedProfile.customer_id)
            .where(PublishedProfile.customer_id == customer_id)
        )
        if visible:
            row = session.get(MembershipRow, customer_id)
            history = [
                HistoryEntry(h.changed_on, h.change, h.from_level, h.to_level, h.value)
                for h in customer_history(session, customer_id)
            ]
            names = {x.code: x.name for x in settings.membership.levels}
            if row is None:
                return CustomerMembership(
                    customer_id, None, None, None, None, None, None, None, history
                )
            above = [x for x in settings.membership.levels if x.min_value > row.value]
            nxt = above[0] if above else None
            return CustomerMembership(
                customer_id,
                row.level,
                names.get(row.level),
                row.since,
                row.grace_until,
                row.value,
                nxt.code if nxt else None,
                nxt.min_value - row.value if nxt else None,
                history,
            )
        exists = run is not None and (
            session.get(PublishedProfile, (run.run_id, customer_id)) is not None
        )
    raise not_found(store, viewer, f"customer:{customer_id}", exists)


def evaluation_history(store: Store, *, limit: int = 100) -> list[EvaluationResult]:
    """Evaluations newest first, with their upgrade and downgrade counts (run-level counts,
    like segment migration: not narrowed to a viewer's scope)."""
    with store.read() as session:
        return [
            EvaluationResult(
                e.id,
                e.run_id,
                e.as_of,
                e.basis,
                e.evaluated_at,
                e.customers,
                e.joined,
                e.upgrades,
                e.downgrades,
                e.in_grace,
            )
            for e in evaluations(session, limit=limit)
        ]


def evaluate_now(settings: Settings, as_of: date | None = None) -> EvaluationResult:
    """Evaluate at `as_of` (default: the current run's as_of), holding the warehouse lock so no
    ingest or run writes meanwhile; for `tierwise membership evaluate`."""
    with warehouse_lock(settings.resolve(settings.warehouse.path), "membership"):
        con = connect(settings)
        try:
            if as_of is None:
                snapshot = current_snapshot(con)
                if snapshot is None:
                    raise DataError("no run yet: run `tierwise run` or pass an as_of date")
                run_id, as_of = snapshot
            else:
                run_id = None
            with opened_store(settings) as store:
                return evaluate_levels(settings, store, con, as_of, run_id=run_id)
        finally:
            con.disconnect()
