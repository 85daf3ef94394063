"""Per-customer purchase summaries (x, t_x, T, mean repeat spend) for the purchase models.

A "purchase" is a distinct purchase day: same-day orders merge and their amounts add up, as in
the BG/NBD literature. Only expressions are built here; the caller executes them, and the models
fit on `unique_rows`, whose size does not grow with the number of customers.
"""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.types as ir

from tierwise.core.errors import DataError


def purchase_summary(orders: ir.Table, /, *, as_of: date, unit_days: float = 1.0) -> ir.Table:
    """customer_id, frequency, recency, T, monetary_value as of the inclusive end date `as_of`.

    frequency = purchase days - 1; recency = last day - first day and T = as_of - first day,
    both in units of `unit_days`; monetary_value = mean amount per repeat day (the first day
    excluded, so it is the spend the Gamma-Gamma model sees), 0 without repeat days.
    """
    if not unit_days > 0:
        raise DataError(f"unit_days must be a positive number of days, got {unit_days!r}")
    end = ibis.date(as_of)
    day = orders.ordered_at.cast("date")
    daily = (
        orders.filter(day <= end)
        .group_by(orders.customer_id, day=day)
        .aggregate(amount=orders.amount.sum())
    )
    daily = daily.mutate(first_day=daily.day.min().over(group_by=daily.customer_id))
    per_customer = daily.group_by(daily.customer_id).aggregate(
        days=daily.count(),
        first_day=daily.first_day.min(),
        last_day=daily.day.max(),
        repeat_amount=(daily.day != daily.first_day).ifelse(daily.amount, 0.0).sum(),
    )
    repeats = per_customer.days - 1
    return per_customer.select(
        per_customer.customer_id,
        frequency=repeats.cast("int64"),
        recency=per_customer.last_day.delta(per_customer.first_day, unit="day") / unit_days,
        T=end.delta(per_customer.first_day, unit="day") / unit_days,
        monetary_value=(repeats > 0).ifelse(
            per_customer.repeat_amount / repeats.cast("float64"), 0.0
        ),
    )


def unique_rows(summary: ir.Table) -> ir.Table:
    """Distinct (frequency, recency, T) with `weight` = number of customers: what models fit on."""
    return summary.group_by("frequency", "recency", "T").aggregate(weight=summary.count())
