"""Rolling spend and points for membership levels (expressions only)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

import ibis
import ibis.expr.types as ir

from tierwise.engine.staging import KEY, end_of, upto


def rolling_value(
    orders: ir.Table,
    /,
    *,
    as_of: date,
    window_days: int,
    basis: Literal["spend", "points"] = "spend",
    points_per_unit: float = 1.0,
    points_per_order: float = 0.0,
) -> ir.Table:
    """customer_id, spend, orders and value over the `window_days` days ending on `as_of`.

    Every customer with an order by as_of has a row (spend 0 when none in the window), so a
    member who stopped buying is evaluated too. Spend is net of returns. Points are whole:
    floor(spend × points_per_unit) + points_per_order × orders, never below 0.
    """
    o = upto(orders, "ordered_at", as_of)
    inside = o.ordered_at >= end_of(as_of - timedelta(days=window_days))
    totals = o.group_by(KEY).aggregate(
        spend=o.amount.sum(where=inside).fill_null(0.0),
        orders=o.order_id.nunique(where=inside),
    )
    if basis == "spend":
        value = totals.spend
    else:
        points = (totals.spend * points_per_unit).floor() + totals.orders * points_per_order
        value = ibis.greatest(points, 0)
    return totals.mutate(value=value.cast("float64"))
