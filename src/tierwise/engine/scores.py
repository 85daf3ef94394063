"""Value scores on a profile table: R/F/M, segment scheme, 八类 class8, ABC and value tier.

Every window is partitioned by `_buyer` (at least one order), so population statistics
(n, means, medians, revenue totals) only count customers with orders; others get nulls.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import reduce

import ibis
import ibis.expr.types as ir

from tierwise.core.schemes import SCORES, SegmentRule
from tierwise.core.settings import ScoringSettings
from tierwise.core.vocab import CLASS8_BY_RFM, AbcClass, Segment, ValueTier
from tierwise.engine.staging import KEY
from tierwise.engine.text import join, pct

NULL_INT = ibis.null("int64")
NULL_STR = ibis.null("string")


def _buyers(t: ir.Table, *order_by: ir.Value, rows: tuple[int | None, int] | None = None):
    """A window over the customers with orders (or, for the others, over the others)."""
    return ibis.window(group_by=t._buyer, order_by=list(order_by) or None, rows=rows)


def _quantile(t: ir.Table, worst_first: ir.Value) -> ir.IntegerValue:
    """DESIGN: 1 + floor(5 (rank_min − 1) / n); ties share the lower rank, so never split."""
    n = t[KEY].count().over(_buyers(t))
    return 1 + (5 * ibis.rank().over(_buyers(t, worst_first))) // n


def _cuts(
    x: ir.NumericValue, cuts: list[int] | list[float], *, low_is_good: bool
) -> ir.IntegerValue:
    """Fixed thresholds: the first cut x does not exceed decides the score."""
    scores = (5, 4, 3, 2, 1) if low_is_good else (1, 2, 3, 4, 5)
    return ibis.cases(*[(x <= c, s) for c, s in zip(cuts, scores, strict=False)], else_=scores[-1])


def rfm_scores(t: ir.Table, s: ScoringSettings) -> ir.Table:
    if s.score_method == "fixed":
        r = _cuts(t.recency_days, s.recency_days_cuts, low_is_good=True)
        f = _cuts(t.orders, s.orders_cuts, low_is_good=False)
        m = _cuts(t.revenue, s.revenue_cuts, low_is_good=False)
    else:
        r = _quantile(t, ibis.desc(t.recency_days))
        f = _quantile(t, t.orders)
        m = _quantile(t, t.revenue)
    t = t.mutate(
        **{
            name: ibis.ifelse(t._buyer, score.cast("int64"), NULL_INT)
            for name, score in (("r_score", r), ("f_score", f), ("m_score", m))
        }
    )
    return t.mutate(rfm_code=join(t.r_score, t.f_score, t.m_score))


def _matches(t: ir.Table, rule: SegmentRule) -> ir.BooleanValue:
    tests = [
        t[col].isin(sorted(cells))
        for col, cells in (("r_score", rule.r), ("f_score", rule.f), ("m_score", rule.m))
        if cells != frozenset(SCORES)
    ]
    return reduce(operator.and_, tests, ibis.literal(True))


def segments(t: ir.Table, rules: list[SegmentRule]) -> ir.Table:
    """First matching rule wins; its rule text is the reason."""
    first = [(~t._buyer, Segment.NO_ORDERS.value)]
    return t.mutate(
        rfm_segment=ibis.cases(*first, *[(_matches(t, r), r.segment) for r in rules]),
        rfm_segment_reason=ibis.cases(
            (~t._buyer, "no orders"), *[(_matches(t, r), r.reason) for r in rules]
        ),
    )


_CENTRE: dict[str, Callable[[ir.NumericColumn], ir.NumericScalar]] = {
    "mean": operator.methodcaller("mean"),
    "median": operator.methodcaller("median"),
}


def class8(t: ir.Table, s: ScoringSettings) -> ir.Table:
    """R high ⇔ recency < threshold, F high ⇔ orders > threshold, M high ⇔ revenue > threshold."""
    if s.class8_method == "fixed":
        cuts = {
            "recency_days": ibis.literal(s.class8_recency_days, "float64"),
            "orders": ibis.literal(s.class8_orders, "float64"),
            "revenue": ibis.literal(s.class8_revenue, "float64"),
        }
    else:
        centre = _CENTRE[s.class8_method]
        cuts = {
            c: centre(t[c]).over(_buyers(t)).cast("float64")
            for c in ("recency_days", "orders", "revenue")
        }
    t = t.mutate(**{f"_cut_{c}": v for c, v in cuts.items()})
    high = {
        "R": t.recency_days < t._cut_recency_days,
        "F": t.orders > t._cut_orders,
        "M": t.revenue > t._cut_revenue,
    }

    def part(
        letter: str, label: str, value: ir.Value, cut: ir.Value, sign: str, neg: str
    ) -> ir.StringValue:
        h = high[letter]
        return join(
            f"{letter} ",
            ibis.ifelse(h, "high", "low"),
            f" ({label} ",
            value,
            ibis.ifelse(h, f" {sign} ", f" {neg} "),
            cut,
            ")",
        )

    reason = join(
        part("R", "recency", t.recency_days, t._cut_recency_days, "<", "≥"),
        ", ",
        part("F", "orders", t.orders, t._cut_orders, ">", "≤"),
        ", ",
        part("M", "revenue", t.revenue, t._cut_revenue, ">", "≤"),
        f" vs {s.class8_method}",
    )
    klass = ibis.cases(
        *[
            (
                (high["R"] == r) & (high["F"] == f) & (high["M"] == m),
                code.value,
            )
            for (r, f, m), code in CLASS8_BY_RFM.items()
        ]
    )
    t = t.mutate(
        rfm_class8=ibis.ifelse(t._buyer, klass, NULL_STR),
        rfm_class8_reason=ibis.ifelse(t._buyer, reason, NULL_STR),
    )
    return t.drop(*(f"_cut_{c}" for c in cuts))


def abc(t: ir.Table, s: ScoringSettings) -> ir.Table:
    """Pareto class by the revenue share of the customers ranked above (revenue ≤ 0 → C).

    When returns outweigh sales (total revenue ≤ 0) shares mean nothing and every buyer is C.
    """
    a, b = s.abc_cuts
    order = (ibis.desc(t.revenue), t[KEY])
    above = t.revenue.sum().over(_buyers(t, *order, rows=(None, -1)))
    total = t.revenue.sum().over(_buyers(t))
    t = t.mutate(
        _total=total,
        _before=ibis.ifelse(total > 0, ibis.coalesce(above, 0.0) / total, ibis.null("float64")),
    )
    share = join("customers ranked above hold ", t._before * 100, "% of revenue")
    rules = (
        (t.revenue <= 0, AbcClass.C, ibis.literal("revenue ≤ 0")),
        (t._total <= 0, AbcClass.C, ibis.literal("total revenue ≤ 0")),
        (t._before < a, AbcClass.A, share + f" (< {pct(a)})"),
        (t._before < b, AbcClass.B, share + f" (< {pct(b)})"),
    )
    klass = ibis.cases(*[(c, k.value) for c, k, _ in rules], else_=AbcClass.C.value)
    reason = ibis.cases(*[(c, r) for c, _, r in rules], else_=share + f" (≥ {pct(b)})")
    t = t.mutate(
        abc_class=ibis.ifelse(t._buyer, klass, NULL_STR),
        abc_reason=ibis.ifelse(t._buyer, reason, NULL_STR),
    )
    return t.drop("_before", "_total")


def value_tiers(t: ir.Table, s: ScoringSettings, value_column: str) -> ir.Table:
    """Top share of buyers by `value_column` (ties by customer_id) is high, the next mid."""
    h, m = s.value_tier_shares
    value = t[value_column]
    n = t[KEY].count().over(_buyers(t))
    position = ibis.row_number().over(_buyers(t, ibis.desc(value), t[KEY]))
    t = t.mutate(_pos=position, _n=n)
    tier = ibis.cases(
        (~t._buyer, ValueTier.LOW.value),
        (t._pos < t._n.cast("float64") * h, ValueTier.HIGH.value),
        (t._pos < t._n.cast("float64") * (h + m), ValueTier.MID.value),
        else_=ValueTier.LOW.value,
    )
    rule = f"high = top {pct(h)}, mid = next {pct(m)}"
    reason = join("rank ", t._pos + 1, " of ", t._n, f" by {value_column} ({rule})")
    t = t.mutate(value_tier=tier, value_tier_reason=ibis.ifelse(t._buyer, reason, "no orders"))
    return t.drop("_pos", "_n")
