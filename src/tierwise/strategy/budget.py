"""Spending a retention budget where it saves the most: whom to treat, and who calls them.

Treating customer i costs `cost_i` and, with an assumed or measured treatment effect (the share
of would-be churners a treatment keeps), is worth

    value_i = P(churn_i) × effect × CLV_i − cost_i.

Choosing whom to treat within a budget is a 0/1 knapsack. The greedy plan takes customers by
value per cost while they fit (and falls back to the single best customer when that alone is
worth more, the classic guarantee of at least half the optimum). Its LP relaxation, where the
next customer may be taken in part, is an upper bound on any plan, so `(bound − plan) / bound`
bounds how far the plan can be from the best. With equal costs the greedy plan is optimal.

Two simple strategies are computed on the same budget for comparison: "top churn risk" and
"top CLV", each filling the budget in its own order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tierwise.core.errors import InvalidInputError


@dataclass(frozen=True)
class Candidate:
    customer_id: str
    churn_probability: float
    clv: float
    cost: float
    account_manager: str | None = None


@dataclass(frozen=True)
class Selection:
    """Customers a strategy treats, in its order, with what they cost and are expected to save."""

    strategy: str
    customer_ids: tuple[str, ...]
    spent: float
    expected_value: float

    @property
    def customers(self) -> int:
        return len(self.customer_ids)


@dataclass(frozen=True)
class Allocation:
    plan: Selection
    lp_bound: float
    """No plan within the budget can be expected to save more."""
    baselines: tuple[Selection, ...]
    values: Mapping[str, float]
    """Expected incremental value of each candidate, by customer id."""

    @property
    def gap(self) -> float:
        """Largest possible shortfall of the plan from the optimum, as a share of the bound."""
        if self.lp_bound <= 0:
            return 0.0
        return max(0.0, (self.lp_bound - self.plan.expected_value) / self.lp_bound)


GREEDY = "value per cost"
TOP_CHURN = "top churn risk"
TOP_CLV = "top CLV"


def expected_value(candidate: Candidate, effect: float) -> float:
    return candidate.churn_probability * effect * candidate.clv - candidate.cost


def _check(candidates: Sequence[Candidate], budget: float, effect: float) -> None:
    if not budget >= 0:
        raise InvalidInputError(f"budget must be zero or more, not {budget}")
    if not 0 < effect <= 1:
        raise InvalidInputError(f"effect must be a share above 0 and at most 1, not {effect}")
    for c in candidates:
        if not c.cost > 0:
            raise InvalidInputError(f"customer {c.customer_id}: cost must be above 0")
        if not 0 <= c.churn_probability <= 1:
            raise InvalidInputError(f"customer {c.customer_id}: churn probability outside [0, 1]")


def _by_ratio(candidates: Sequence[Candidate], values: Mapping[str, float]) -> list[Candidate]:
    """Customers worth treating, best value per cost first (ties: higher value, then id)."""
    worth = [c for c in candidates if values[c.customer_id] > 0]
    return sorted(
        worth,
        key=lambda c: (-values[c.customer_id] / c.cost, -values[c.customer_id], c.customer_id),
    )


def _fill(
    name: str, ordered: Sequence[Candidate], budget: float, values: Mapping[str, float]
) -> Selection:
    """Take customers in order, skipping any that no longer fit."""
    chosen: list[str] = []
    spent = total = 0.0
    for c in ordered:
        if spent + c.cost <= budget:
            chosen.append(c.customer_id)
            spent += c.cost
            total += values[c.customer_id]
    return Selection(name, tuple(chosen), spent, total)


def lp_bound(ordered: Sequence[Candidate], budget: float, values: Mapping[str, float]) -> float:
    """The LP relaxation's optimum: whole customers by value per cost, then part of the next."""
    left, total = budget, 0.0
    for c in ordered:
        if c.cost <= left:
            left -= c.cost
            total += values[c.customer_id]
        else:
            return total + values[c.customer_id] * left / c.cost
    return total


def _baseline(
    name: str,
    candidates: Sequence[Candidate],
    key: Callable[[Candidate], float],
    budget: float,
    values: Mapping[str, float],
) -> Selection:
    ordered = sorted(candidates, key=lambda c: (-key(c), c.customer_id))
    return _fill(name, ordered, budget, values)


def allocate(candidates: Sequence[Candidate], budget: float, effect: float) -> Allocation:
    """The greedy plan for `budget`, its LP bound, and the two simple strategies."""
    _check(candidates, budget, effect)
    values = {c.customer_id: expected_value(c, effect) for c in candidates}
    ordered = _by_ratio(candidates, values)
    plan = _fill(GREEDY, ordered, budget, values)
    affordable = [c for c in ordered if c.cost <= budget]
    if affordable:
        best = max(affordable, key=lambda c: (values[c.customer_id], c.customer_id))
        if values[best.customer_id] > plan.expected_value:
            plan = Selection(GREEDY, (best.customer_id,), best.cost, values[best.customer_id])
    return Allocation(
        plan=plan,
        lp_bound=lp_bound(ordered, budget, values),
        baselines=(
            _baseline(TOP_CHURN, candidates, lambda c: c.churn_probability, budget, values),
            _baseline(TOP_CLV, candidates, lambda c: c.clv, budget, values),
        ),
        values=values,
    )


# --- account managers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    customer_id: str
    manager: str | None
    """None: no manager had room; the customer goes to the team queue."""
    own: bool
    """Whether `manager` is the customer's own account manager."""


def assign_managers(
    chosen: Sequence[Candidate], capacity: Mapping[str, int], *, overflow: bool = True
) -> list[Assignment]:
    """Give each chosen customer (most valuable first) a manager without exceeding capacity.

    Customers keep their own account manager while that manager has room; the rest, if
    `overflow`, go to whichever manager has the most room left (ties by name), else to the queue.
    Managers missing from `capacity` have none.
    """
    if any(n < 0 for n in capacity.values()):
        raise InvalidInputError("manager capacity must be zero or more")
    room = dict(capacity)
    result: dict[str, Assignment] = {}
    for c in chosen:
        own = c.account_manager
        if own is not None and room.get(own, 0) > 0:
            room[own] -= 1
            result[c.customer_id] = Assignment(c.customer_id, own, True)
    for c in chosen:
        if c.customer_id in result:
            continue
        spare = min(room.items(), key=lambda kv: (-kv[1], kv[0]), default=None)
        if overflow and spare is not None and spare[1] > 0:
            room[spare[0]] -= 1
            result[c.customer_id] = Assignment(
                c.customer_id, spare[0], spare[0] == c.account_manager
            )
        else:
            result[c.customer_id] = Assignment(c.customer_id, None, False)
    return [result[c.customer_id] for c in chosen]
