"""Campaign effect measurement: the reproducible control group, the report's arithmetic, and
confidence intervals that cover a known effect as often as they claim."""

from __future__ import annotations

import math
import random
from statistics import fmean, variance

import pytest

from tierwise.strategy.effect import Outcome, effect_report, in_control

IDS = [f"C{i:06d}" for i in range(20_000)]


def test_the_control_group_is_reproducible_and_about_the_share_asked():
    control = {c for c in IDS if in_control("spring-2025", c)}
    assert control == {c for c in reversed(IDS) if in_control("spring-2025", c)}
    assert 1_800 <= len(control) <= 2_200  # 10 % of 20,000, ± 5 standard deviations
    quarter = {c for c in IDS if in_control("spring-2025", c, 0.25)}
    assert 4_700 <= len(quarter) <= 5_300
    assert control <= quarter  # one uniform draw per customer: a larger share nests
    other = {c for c in IDS if in_control("autumn-2025", c)}
    assert 100 <= len(control & other) <= 320  # another seed is an independent draw (~1 %)


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1])
def test_the_share_must_be_a_proper_fraction(share):
    with pytest.raises(ValueError):
        in_control("s", "C1", share)


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    diff = fmean(a) - fmean(b)
    return diff, math.sqrt(variance(a) / len(a) + variance(b) / len(b))


def test_report_arithmetic_on_a_small_example():
    treated = [Outcome(0, 0.0), Outcome(1, 10.0), Outcome(2, 20.0), Outcome(1, 30.0)]
    control = [Outcome(0, 0.0), Outcome(0, 0.0), Outcome(1, 5.0), Outcome(1, 15.0)]
    r = effect_report(treated, control, cost=8.0, margin_rate=0.5, confidence=0.95)
    assert (r.treated, r.control) == (4, 4)
    assert (r.retention.treated, r.retention.control) == (0.75, 0.5)
    assert (r.revenue.treated, r.revenue.control) == (15.0, 5.0)
    assert r.revenue.relative_lift == pytest.approx(2.0)
    diff, se = welch([0, 10, 20, 30], [0, 0, 5, 15])
    z = 1.959963984540054
    assert r.revenue.difference.estimate == pytest.approx(diff)
    assert r.revenue.difference.low == pytest.approx(diff - z * se)
    assert r.revenue.difference.high == pytest.approx(diff + z * se)
    assert r.incremental_revenue.estimate == pytest.approx(40.0)  # 10 per customer × 4
    assert r.incremental_revenue.low == pytest.approx(4 * (diff - z * se))
    assert r.incremental_margin.estimate == pytest.approx(20.0)
    assert r.roi.estimate == pytest.approx((20.0 - 8.0) / 8.0)
    assert r.roi.low == pytest.approx((0.5 * 4 * (diff - z * se) - 8.0) / 8.0)


def test_no_cost_means_no_roi_and_tiny_arms_no_interval():
    r = effect_report([Outcome(1, 5.0)], [Outcome(0, 0.0), Outcome(1, 2.0)])
    assert r.roi is None
    assert r.revenue.difference.estimate == pytest.approx(4.0)
    assert r.revenue.difference.low is None and not r.revenue.difference.covers(4.0)
    empty = effect_report([], [Outcome(0, 0.0)])
    assert empty.revenue.difference is None and empty.incremental_revenue is None


def simulate(rng: random.Random, n: int, p_order: float, extra: float) -> list[Outcome]:
    """Zero-inflated, skewed spend: most customers buy nothing in the window."""
    out = []
    for _ in range(n):
        orders = 0
        revenue = 0.0
        if rng.random() < p_order:
            orders = 1 + int(rng.expovariate(1.0))
            revenue = sum(rng.gammavariate(2.0, 60.0) for _ in range(orders))
        if rng.random() < extra:  # the treatment's extra order
            orders += 1
            revenue += rng.gammavariate(2.0, 50.0)
        out.append(Outcome(orders, revenue))
    return out


def test_intervals_cover_a_known_effect_at_their_nominal_rate():
    """The treatment adds an order (mean 100) for 8 % of customers: +8 revenue per customer,
    +0.08 orders, and retention up by 0.08 × (1 − P(order without it))."""
    rng = random.Random(20250101)
    p, extra = 0.25, 0.08
    true_revenue, true_orders = extra * 100.0, extra
    true_retention = (1 - (1 - p) * (1 - extra)) - p
    reps, hits = 300, {"revenue": 0, "orders": 0, "retention": 0, "incremental": 0}
    for _ in range(reps):
        treated = simulate(rng, 1_800, p, extra)
        control = simulate(rng, 600, p, 0.0)
        r = effect_report(treated, control, cost=1_000.0)
        hits["revenue"] += r.revenue.difference.covers(true_revenue)
        hits["orders"] += r.orders.difference.covers(true_orders)
        hits["retention"] += r.retention.difference.covers(true_retention)
        hits["incremental"] += r.incremental_revenue.covers(true_revenue * len(treated))
    for name, k in hits.items():
        assert 0.91 <= k / reps <= 0.985, f"{name} intervals covered the truth {k}/{reps}"


def test_a_wider_confidence_gives_a_wider_interval_around_the_same_estimate():
    rng = random.Random(7)
    treated, control = simulate(rng, 500, 0.3, 0.1), simulate(rng, 500, 0.3, 0.0)
    narrow = effect_report(treated, control, confidence=0.80).revenue.difference
    wide = effect_report(treated, control, confidence=0.99).revenue.difference
    assert narrow.estimate == wide.estimate
    assert wide.low < narrow.low < narrow.estimate < narrow.high < wide.high
