"""Budget plans over the published profiles: whom a campaign should treat, and who calls them.

Every action costs the same here, so each strategy treats at most n = ⌊budget / cost⌋ customers
and only customers among the n (+1, for the LP bound) best by its own key can matter: those are
all that leave the database, ties at the edge included, so a plan over millions of customers
reads a bounded number of rows. The choice itself is `strategy.budget.allocate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func
from sqlalchemy.orm import Session

from tierwise.core.errors import InvalidInputError, PermissionDeniedError
from tierwise.services.access import Viewer, scope
from tierwise.services.serving import Store
from tierwise.store.models import PublishedProfile, Role
from tierwise.store.publish import current_run
from tierwise.strategy.budget import Allocation, Candidate, Selection, allocate, assign_managers

PLANNER_ROLES = frozenset({Role.ADMIN.value, Role.ANALYST.value, Role.MANAGER.value})
"""Who may plan a budget; managers plan over their team's customers."""

P = PublishedProfile


@dataclass(frozen=True)
class StrategyResult:
    strategy: str
    customers: int
    spent: float
    expected_value: float

    @classmethod
    def of(cls, s: Selection) -> StrategyResult:
        return cls(s.strategy, s.customers, s.spent, s.expected_value)


@dataclass(frozen=True)
class ManagerLoad:
    manager: str
    capacity: int
    assigned: int
    own: int
    """Of `assigned`, customers this manager already looks after."""


@dataclass(frozen=True)
class ChosenCustomer:
    customer_id: str
    churn_probability: float
    clv: float
    expected_value: float
    account_manager: str | None
    assigned_to: str | None


@dataclass(frozen=True)
class BudgetPlan:
    run_id: str | None
    budget: float
    cost: float
    effect: float
    candidates: int
    """Customers in scope with both a churn probability and a CLV."""
    plan: StrategyResult
    lp_bound: float
    gap: float
    baselines: list[StrategyResult]
    managers: list[ManagerLoad]
    queued: int
    """Chosen customers no manager had room for (capacity given), left to the team queue."""
    top: list[ChosenCustomer]


def _check(budget: float, cost: float, effect: float, capacity: int | None) -> None:
    if not (math.isfinite(budget) and budget >= 0):
        raise InvalidInputError("budget must be a number, zero or more")
    if not (math.isfinite(cost) and cost > 0):
        raise InvalidInputError("cost must be a number above 0")
    if not 0 < effect <= 1:
        raise InvalidInputError("effect must be a share above 0 and at most 1")
    if capacity is not None and capacity < 0:
        raise InvalidInputError("capacity must be zero or more")


def _top_rows(
    session: Session, base: Select[Any], key: ColumnElement[Any], n: int
) -> list[tuple[str, float, float, str | None]]:
    """Customers among the `n` largest by `key`, everyone tied at the edge included."""
    if n <= 0:
        return []
    edge = session.scalar(base.with_only_columns(key).order_by(key.desc()).offset(n - 1).limit(1))
    query = base.with_only_columns(P.customer_id, P.churn_probability, P.clv, P.account_manager)
    if edge is not None:
        query = query.where(key >= edge)
    rows = session.execute(query).all()
    return [(cid, float(p or 0), float(clv or 0), manager) for cid, p, clv, manager in rows]


def _candidates(
    session: Session, viewer: Viewer, run_id: str, budget: float, cost: float
) -> tuple[list[Candidate], int]:
    """The customers any strategy could choose, and how many customers could be scored at all."""
    base = scope(viewer, run_id=run_id).where(
        P.churn_probability.is_not(None),
        P.clv.is_not(None),
        P.churn_probability >= 0,
        P.churn_probability <= 1,
    )
    total = int(session.scalar(base.with_only_columns(func.count())) or 0)
    n = total if budget / cost >= total else math.floor(budget / cost)
    seen: dict[str, Candidate] = {}
    keys: list[tuple[ColumnElement[Any], int]] = [
        (P.churn_probability * P.clv, n + 1),
        (P.churn_probability.expression, n),
        (P.clv.expression, n),
    ]
    for key, limit in keys:
        for cid, p, clv, manager in _top_rows(session, base, key, limit):
            seen[cid] = Candidate(cid, p, clv, cost, manager)
    return list(seen.values()), total


def _managers(session: Session, viewer: Viewer, run_id: str) -> list[str]:
    rows = session.scalars(
        scope(viewer, run_id=run_id)
        .with_only_columns(P.account_manager)
        .where(P.account_manager.is_not(None))
        .distinct()
    )
    return sorted(m for m in rows if m is not None)


def plan_budget(
    store: Store,
    viewer: Viewer,
    *,
    budget: float,
    cost: float,
    effect: float,
    capacity: int | None = None,
    top: int = 20,
) -> BudgetPlan:
    """Whom to treat with `budget` at `cost` each, against the two simple strategies.

    `capacity`, when given, is how many chosen customers each account manager (anyone named as
    one in the viewer's scope) can take on; the most valuable keep their own manager.
    """
    if viewer.role not in PLANNER_ROLES:
        raise PermissionDeniedError(f"role {viewer.role!r} may not plan budgets")
    _check(budget, cost, effect, capacity)
    with store.read() as session:
        run = current_run(session)
        candidates: list[Candidate] = []
        total, managers = 0, []
        if run is not None:
            candidates, total = _candidates(session, viewer, run.run_id, budget, cost)
            managers = _managers(session, viewer, run.run_id) if capacity is not None else []
    allocation = allocate(candidates, budget, effect)
    return _plan(
        run.run_id if run else None,
        allocation,
        candidates,
        total,
        managers,
        capacity,
        budget=budget,
        cost=cost,
        effect=effect,
        top=top,
    )


def _plan(
    run_id: str | None,
    allocation: Allocation,
    candidates: list[Candidate],
    total: int,
    managers: list[str],
    capacity: int | None,
    *,
    budget: float,
    cost: float,
    effect: float,
    top: int,
) -> BudgetPlan:
    by_id = {c.customer_id: c for c in candidates}
    chosen = [by_id[cid] for cid in allocation.plan.customer_ids]
    assigned: dict[str, str | None] = {}
    loads: list[ManagerLoad] = []
    queued = 0
    if capacity is not None:
        assignments = assign_managers(chosen, dict.fromkeys(managers, capacity))
        assigned = {a.customer_id: a.manager for a in assignments}
        queued = sum(a.manager is None for a in assignments)
        for m in managers:
            mine = [a for a in assignments if a.manager == m]
            loads.append(ManagerLoad(m, capacity, len(mine), sum(a.own for a in mine)))
    return BudgetPlan(
        run_id=run_id,
        budget=budget,
        cost=cost,
        effect=effect,
        candidates=total,
        plan=StrategyResult.of(allocation.plan),
        lp_bound=allocation.lp_bound,
        gap=allocation.gap,
        baselines=[StrategyResult.of(b) for b in allocation.baselines],
        managers=loads,
        queued=queued,
        top=[
            ChosenCustomer(
                c.customer_id,
                c.churn_probability,
                c.clv,
                allocation.values[c.customer_id],
                c.account_manager,
                assigned.get(c.customer_id, c.account_manager if capacity is None else None),
            )
            for c in chosen[:top]
        ],
    )
