"""Movement over time: monthly cohort retention and migration between two profile snapshots."""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.types as ir

from tierwise.engine.staging import KEY, upto

NONE = "(none)"
"""The value of a customer absent from a snapshot (from_value before, to_value after)."""


def _month_index(ts: ir.TimestampValue) -> ir.IntegerValue:
    return ts.year().cast("int64") * 12 + ts.month().cast("int64") - 1


def cohort_retention(orders: ir.Table, /, *, as_of: date) -> ir.Table:
    """Share of each first-order-month cohort that orders in each later month up to as_of.

    Every month from the cohort's own (offset 0) to as_of's appears, with 0 when nobody ordered.
    """
    o = upto(orders, "ordered_at", as_of)
    o = o.select(KEY, month=_month_index(o.ordered_at)).distinct()
    firsts = o.group_by(KEY).agg(cohort=o.month.min())
    active = o.join(firsts, KEY)
    active = active.mutate(month_offset=active.month - active.cohort)
    active = active.group_by(["cohort", "month_offset"]).agg(active_customers=active.count())
    last = as_of.year * 12 + as_of.month - 1
    grid = firsts.group_by("cohort").agg(cohort_size=firsts.count())
    grid = grid.mutate(month_offset=ibis.range(0, last - grid.cohort + 1)).unnest("month_offset")
    out = grid.left_join(
        active,
        [grid.cohort == active.cohort, grid.month_offset == active.month_offset],
    )
    active_customers = ibis.coalesce(out.active_customers, 0)
    return out.select(
        cohort_month=ibis.date(out.cohort // 12, out.cohort % 12 + 1, 1),
        month_offset=out.month_offset.cast("int64"),
        active_customers=active_customers.cast("int64"),
        cohort_size=out.cohort_size.cast("int64"),
        retention=active_customers / out.cohort_size,
    )


def migration_matrix(before: ir.Table, after: ir.Table, /, *, column: str) -> ir.Table:
    """Customers moving from each value of `column` to each value, and the share of the from-value.

    Values are compared as text; customers absent from a snapshot count as "(none)" there.
    """
    present = ibis.literal(True)
    b = before.select(_kb=before[KEY], _from=before[column].cast("string"), _in_b=present)
    a = after.select(_ka=after[KEY], _to=after[column].cast("string"), _in_a=present)
    j = b.outer_join(a, b._kb == a._ka)
    j = j.select(
        from_value=ibis.ifelse(j._in_b.isnull(), NONE, j._from),
        to_value=ibis.ifelse(j._in_a.isnull(), NONE, j._to),
    )
    m = j.group_by(["from_value", "to_value"]).agg(customers=j.count())
    total = m.customers.sum().over(ibis.window(group_by=m.from_value))
    return m.mutate(customers=m.customers.cast("int64"), rate=m.customers / total)
