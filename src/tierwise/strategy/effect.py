"""Campaign effect measurement: a reproducible random control group and the treated-vs-control
report. Pure Python, no I/O.

Assignment hashes (seed, customer id), so the same seed always puts the same customer in the
same arm, independently of list order or size, and no state must be kept to reproduce it.

Differences of means use Welch's standard error with a normal quantile: unbiased for any
outcome distribution, and accurate for groups of a few dozen customers or more (with smaller
groups the interval is too narrow; below two customers in an arm there is none).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist, fmean, variance

DEFAULT_CONTROL_SHARE = 0.10


def in_control(seed: str, customer_id: str, share: float = DEFAULT_CONTROL_SHARE) -> bool:
    """True when the customer belongs to the control group of a campaign seeded with `seed`."""
    if not 0 < share < 1:
        raise ValueError("the control share must be between 0 and 1")
    digest = hashlib.sha256(f"{seed}\x1f{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


@dataclass(frozen=True)
class Outcome:
    """What one customer did during the campaign window."""

    orders: int
    revenue: float

    @property
    def retained(self) -> float:
        return 1.0 if self.orders > 0 else 0.0


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float | None
    high: float | None

    def covers(self, value: float) -> bool:
        return self.low is not None and self.high is not None and self.low <= value <= self.high


@dataclass(frozen=True)
class Comparison:
    """Per-customer means of the two arms and their difference (treated − control)."""

    treated: float | None
    control: float | None
    difference: Interval | None
    relative_lift: float | None
    """difference / control mean (None when the control mean is 0)."""


@dataclass(frozen=True)
class EffectReport:
    treated: int
    control: int
    confidence: float
    retention: Comparison
    """Share of customers with at least one order in the window."""
    orders: Comparison
    revenue: Comparison
    incremental_revenue: Interval | None
    """Revenue difference per customer × treated customers."""
    cost: float
    incremental_margin: Interval | None
    roi: Interval | None
    """(incremental margin − cost) / cost; None when the campaign cost nothing."""


def _compare(treated: list[float], control: list[float], z: float) -> Comparison:
    t_mean = fmean(treated) if treated else None
    c_mean = fmean(control) if control else None
    if t_mean is None or c_mean is None:
        return Comparison(t_mean, c_mean, None, None)
    diff = t_mean - c_mean
    lift = diff / c_mean if c_mean else None
    if len(treated) < 2 or len(control) < 2:
        return Comparison(t_mean, c_mean, Interval(diff, None, None), lift)
    se = math.sqrt(variance(treated) / len(treated) + variance(control) / len(control))
    return Comparison(t_mean, c_mean, Interval(diff, diff - z * se, diff + z * se), lift)


def _scaled(interval: Interval | None, factor: float, shift: float = 0.0) -> Interval | None:
    """factor × interval + shift (factor ≥ 0, so the bounds keep their order)."""
    if interval is None:
        return None

    def f(x: float | None) -> float | None:
        return None if x is None else factor * x + shift

    return Interval(factor * interval.estimate + shift, f(interval.low), f(interval.high))


def effect_report(
    treated: Sequence[Outcome],
    control: Sequence[Outcome],
    *,
    cost: float = 0.0,
    margin_rate: float = 1.0,
    confidence: float = 0.95,
) -> EffectReport:
    """Treated vs control retention, orders and revenue with confidence intervals, the
    incremental revenue over the treated group, and the ROI of `cost`."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    if cost < 0 or margin_rate < 0:
        raise ValueError("cost and margin_rate must not be negative")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    retention = _compare([o.retained for o in treated], [o.retained for o in control], z)
    orders = _compare([float(o.orders) for o in treated], [float(o.orders) for o in control], z)
    revenue = _compare([o.revenue for o in treated], [o.revenue for o in control], z)
    incremental = _scaled(revenue.difference, len(treated))
    margin = _scaled(incremental, margin_rate)
    roi = _scaled(margin, 1 / cost, -1.0) if cost > 0 else None
    return EffectReport(
        treated=len(treated),
        control=len(control),
        confidence=confidence,
        retention=retention,
        orders=orders,
        revenue=revenue,
        incremental_revenue=incremental,
        cost=cost,
        incremental_margin=margin,
        roi=roi,
    )
