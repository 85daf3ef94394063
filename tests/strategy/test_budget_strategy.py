"""Budget allocation on small instances, checked against brute force and hand-worked cases."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierwise.core.errors import InvalidInputError
from tierwise.strategy.budget import (
    GREEDY,
    TOP_CHURN,
    TOP_CLV,
    Candidate,
    allocate,
    assign_managers,
    expected_value,
)


def best_by_brute_force(candidates: list[Candidate], budget: float, effect: float) -> float:
    best = 0.0
    for k in range(len(candidates) + 1):
        for subset in itertools.combinations(candidates, k):
            if sum(c.cost for c in subset) <= budget:
                best = max(best, sum(expected_value(c, effect) for c in subset))
    return best


def test_expected_value_and_a_worked_example():
    a = Candidate("a", 0.5, 1000.0, 10.0)  # 0.5 × 0.2 × 1000 − 10 = 90, 9 per unit of cost
    b = Candidate("b", 0.9, 100.0, 10.0)  # 18 − 10 = 8
    c = Candidate("c", 0.1, 5000.0, 50.0)  # 100 − 50 = 50, 1 per unit
    d = Candidate("d", 1.0, 10.0, 10.0)  # 2 − 10 = −8: never worth it
    assert expected_value(a, 0.2) == pytest.approx(90.0)
    result = allocate([a, b, c, d], budget=40.0, effect=0.2)
    assert result.plan.strategy == GREEDY
    assert result.plan.customer_ids == ("a", "b")  # by ratio a, c, b; c does not fit
    assert result.plan.expected_value == pytest.approx(98.0)
    assert result.lp_bound == pytest.approx(90.0 + 50.0 * 30 / 50)  # a, then 3/5 of c
    assert result.gap == pytest.approx((120.0 - 98.0) / 120.0)
    churn, clv = result.baselines
    assert (churn.strategy, churn.customer_ids) == (TOP_CHURN, ("d", "b", "a"))
    assert churn.expected_value == pytest.approx(-8 + 8 + 90)
    assert (clv.strategy, clv.customer_ids) == (TOP_CLV, ("a", "b", "d"))  # c does not fit
    assert clv.expected_value == pytest.approx(90 + 8 - 8) and clv.spent == 30.0


def test_one_valuable_customer_beats_many_small_ones():
    """Greedy by ratio alone would fill the budget with small wins; the plan takes the big one."""
    small = [Candidate(f"s{i}", 1.0, 30.0, 1.0) for i in range(3)]  # 3 − 1 = 2 each, ratio 2
    big = Candidate("big", 1.0, 2000.0, 99.0)  # 200 − 99 = 101, ratio 1.02
    result = allocate([*small, big], budget=99.0, effect=0.1)
    assert result.plan.customer_ids == ("big",)
    assert result.plan.expected_value == pytest.approx(101.0)


@pytest.mark.parametrize(
    "bad",
    [
        {"budget": -1.0},
        {"budget": float("nan")},
        {"effect": 0.0},
        {"effect": 1.5},
        {"cost": 0.0},
        {"p": 1.2},
    ],
)
def test_invalid_inputs_are_refused(bad: dict[str, float]):
    c = Candidate("a", bad.get("p", 0.5), 100.0, bad.get("cost", 1.0))
    with pytest.raises(InvalidInputError):
        allocate([c], budget=bad.get("budget", 10.0), effect=bad.get("effect", 0.5))


candidates = st.lists(
    st.builds(
        Candidate,
        customer_id=st.text("abcdefgh", min_size=1, max_size=4),
        churn_probability=st.floats(0, 1),
        clv=st.floats(-100, 5000),
        cost=st.floats(0.5, 60),
        account_manager=st.sampled_from([None, "m1", "m2", "m3"]),
    ),
    max_size=9,
    unique_by=lambda c: c.customer_id,
)


@given(candidates, st.floats(0, 200), st.floats(0.01, 1))
@settings(max_examples=300, deadline=None)
def test_plan_is_between_half_the_optimum_and_the_lp_bound(cs, budget, effect):
    result = allocate(cs, budget, effect)
    optimum = best_by_brute_force(cs, budget, effect)
    plan = result.plan
    assert plan.spent <= budget + 1e-9
    assert plan.expected_value == pytest.approx(
        sum(expected_value(c, effect) for c in cs if c.customer_id in plan.customer_ids)
    )
    assert plan.expected_value <= optimum + 1e-6
    assert optimum <= result.lp_bound + 1e-6
    assert plan.expected_value >= optimum / 2 - 1e-6
    assert 0 <= result.gap <= 1
    for baseline in result.baselines:
        assert baseline.spent <= budget + 1e-9
        assert baseline.expected_value <= optimum + 1e-6


@given(candidates, st.floats(0, 200), st.floats(0.01, 1), st.floats(0.5, 60))
@settings(max_examples=200, deadline=None)
def test_with_equal_costs_the_plan_is_optimal_and_beats_both_baselines(cs, budget, effect, cost):
    same = [Candidate(c.customer_id, c.churn_probability, c.clv, cost) for c in cs]
    result = allocate(same, budget, effect)
    assert result.plan.expected_value == pytest.approx(
        best_by_brute_force(same, budget, effect), abs=1e-6
    )
    for baseline in result.baselines:
        assert result.plan.expected_value >= baseline.expected_value - 1e-6


def test_managers_keep_their_most_valuable_customers_within_capacity():
    chosen = [Candidate(f"c{i}", 0.5, 100.0, 1.0, "m1" if i < 4 else None) for i in range(6)]
    out = assign_managers(chosen, {"m1": 2, "m2": 3})
    assert [(a.customer_id, a.manager, a.own) for a in out] == [
        ("c0", "m1", True),
        ("c1", "m1", True),
        ("c2", "m2", False),  # m1 is full: the manager with most room takes over
        ("c3", "m2", False),
        ("c4", "m2", False),
        ("c5", None, False),  # nobody has room: the team queue
    ]
    alone = assign_managers(chosen, {"m1": 2, "m2": 3}, overflow=False)
    assert [a.manager for a in alone] == ["m1", "m1", None, None, None, None]
    with pytest.raises(InvalidInputError):
        assign_managers(chosen, {"m1": -1})


@given(candidates, st.dictionaries(st.sampled_from(["m1", "m2", "m3"]), st.integers(0, 4)))
def test_no_manager_is_ever_over_capacity(cs, capacity):
    out = assign_managers(cs, capacity)
    assert [a.customer_id for a in out] == [c.customer_id for c in cs]
    for manager, room in capacity.items():
        assert sum(a.manager == manager for a in out) <= room
    assert all(a.manager is None or a.manager in capacity for a in out)
    owners = {c.customer_id: c.account_manager for c in cs}
    assert all(a.own == (a.manager is not None and a.manager == owners[a.customer_id]) for a in out)
