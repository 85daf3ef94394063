"""Per-customer facts: order behaviour, browsing, service interactions, feedback and costs.

Each function returns one row per customer that has rows in its source; `profiles` left-joins
them onto the known customers and fills the gaps, so an absent table only yields zeros and nulls.
"""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.types as ir

from tierwise.engine.staging import KEY, end_of, upto

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
COST_KINDS = ("service", "marketing")
HOUR_BANDS = {"night": (0, 5), "morning": (6, 11), "afternoon": (12, 17), "evening": (18, 23)}


def _share(condition: ir.BooleanValue) -> ir.FloatingScalar:
    """Share of rows meeting `condition`; a null condition counts as not met.

    The mean of integers is a double everywhere, while a float literal would be a DECIMAL in
    Spark SQL and round the share to a few digits.
    """
    return ibis.ifelse(condition, 1, 0).mean()


def _count(condition: ir.BooleanValue) -> ir.IntegerScalar:
    return ibis.ifelse(condition, 1, 0).sum()


def line_facts(lines: ir.Table) -> ir.Table:
    return lines.group_by(KEY).agg(
        first_order_at=lines.ordered_at.min(),
        last_order_at=lines.ordered_at.max(),
        order_lines=lines.count(),
        revenue=lines.amount.sum(),
        categories=lines.category.nunique(),
        discount_share=_share(lines.discount > 0),
        gross_margin=lines.margin.sum(),
    )


def order_facts(orders: ir.Table) -> ir.Table:
    """Order counts and when orders are placed: share by weekday and by hour band."""
    dow = orders.ordered_at.day_of_week.index()
    hour = orders.ordered_at.hour()
    return orders.group_by(KEY).agg(
        orders=orders.count(),
        **{f"share_{d}": _share(dow == i) for i, d in enumerate(WEEKDAYS)},
        **{f"share_{b}": _share(hour.between(lo, hi)) for b, (lo, hi) in HOUR_BANDS.items()},
    )


def day_facts(days: ir.Table) -> ir.Table:
    """Purchase days, the median gap between them, and the gap before the latest one."""
    per = days.group_by(KEY).agg(order_days=days.count(), last_gap_days=days.gap.argmax(days.day))
    med = _median_gap(days)
    out = per.left_join(med, per[KEY] == med._mid)
    return out.select(per[KEY], "order_days", "median_interval_days", "last_gap_days")


def _median_gap(days: ir.Table) -> ir.Table:
    """The median gap per customer (the mean of the two middle gaps when their number is even),
    from ranks: a grouped median holds every customer's gaps in memory at once, which ran out
    of DuckDB's 2 GB limit at 100M order lines, while windows sort and spill."""
    g = days.filter(days.gap.notnull())
    g = g.mutate(
        _i=ibis.row_number().over(ibis.window(group_by=g[KEY], order_by=g.gap)),
        _n=g.count().over(ibis.window(group_by=g[KEY])),
    )
    mid = g.filter((g._i == (g._n - 1) // 2) | (g._i == g._n // 2))
    return mid.group_by(_mid=mid[KEY]).agg(median_interval_days=mid.gap.mean().cast("float64"))


def preferred(lines: ir.Table, column: str) -> ir.Table:
    """The value of `column` on most of a customer's orders; ties go to the first by name."""
    t = lines.filter(lines[column].notnull())
    t = t.group_by([KEY, column]).agg(n=t.order_id.nunique())
    w = ibis.window(group_by=t[KEY], order_by=[ibis.desc(t.n), t[column]])
    t = t.mutate(_pick=ibis.row_number().over(w))
    return t.filter(t._pick == 0).select(KEY, **{f"preferred_{column}": t[column]})


def event_facts(events: ir.Table, as_of: date) -> ir.Table:
    e = upto(events, "occurred_at", as_of)
    return e.group_by(KEY).agg(
        views=_count(e.event_type == "view"), carts=_count(e.event_type == "cart")
    )


def interaction_facts(interactions: ir.Table, as_of: date) -> ir.Table:
    """Complaints are unresolved when not resolved by the end of as_of (back-testable)."""
    i = upto(interactions, "occurred_at", as_of)
    complaint = i.kind == "complaint"
    open_ = i.resolved_at.isnull() | (i.resolved_at >= end_of(as_of))
    return i.group_by(KEY).agg(
        complaints=_count(complaint),
        unresolved_complaints=_count(complaint & open_),
        follow_ups=_count(i.kind == "follow_up"),
        interaction_cost=i.cost.sum(),
    )


def feedback_facts(feedback: ir.Table, as_of: date) -> ir.Table:
    """The latest CSAT answer (latest ingest breaks ties) and the mean NPS."""
    f = upto(feedback, "responded_at", as_of)
    nps = f.group_by(KEY).agg(mean_nps=f.nps.mean())
    c = f.filter(f.csat.notnull())
    w = ibis.window(
        group_by=c[KEY],
        order_by=[ibis.desc(c.responded_at), ibis.desc(c._ingest_id), ibis.desc(c._line)],
    )
    c = c.mutate(_pick=ibis.row_number().over(w))
    csat = c.filter(c._pick == 0).select(KEY, last_csat=c.csat)
    out = nps.left_join(csat, nps[KEY] == csat[KEY])
    return out.select(nps[KEY], "mean_nps", "last_csat")


def cost_facts(costs: ir.Table, as_of: date) -> ir.Table:
    """Service and marketing cost totals; acquisition cost is `profit.acquisition`'s."""
    c = upto(costs, "incurred_at", as_of)
    return c.group_by(KEY).agg(
        **{f"{kind}_costs": c.amount.sum(where=c.kind == kind) for kind in COST_KINDS}
    )
