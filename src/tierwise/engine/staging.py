"""Staging: canonical tables cut at `as_of`, latest master rows, and the order grains.

Everything downstream reads orders through three grains built here: lines (one per order line),
orders (one per customer and order_id) and days (one per customer and order date).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta

import ibis
import ibis.expr.types as ir

KEY = "customer_id"


def end_of(as_of: date) -> ir.TimestampScalar:
    """The first instant after the inclusive `as_of` date, naive like the data (never shifted)."""
    return ibis.timestamp(datetime.combine(as_of + timedelta(days=1), time.min))


def upto(table: ir.Table, column: str, as_of: date) -> ir.Table:
    """Rows dated on or before `as_of`."""
    return table.filter(table[column] < end_of(as_of))


def latest(table: ir.Table, key: str) -> ir.Table:
    """One row per key: the greatest (_ingest_id, _line), i.e. the most recently ingested."""
    w = ibis.window(group_by=table[key], order_by=[ibis.desc("_ingest_id"), ibis.desc("_line")])
    return table.mutate(_pick=ibis.row_number().over(w)).filter(ibis._._pick == 0).drop("_pick")


def days_between(later: ir.DateValue, earlier: ir.DateValue) -> ir.IntegerValue:
    """Whole calendar days from `earlier` to `later`."""
    return later.delta(earlier, unit="day").cast("int64")


def known_customers(tables: Mapping[str, ir.Table], as_of: date) -> ir.Table:
    """Customer ids from orders ∪ customers ∪ events ∪ interactions, each cut at as_of."""
    parts = [upto(tables["orders"], "ordered_at", as_of).select(KEY)]
    if "customers" in tables:
        parts.append(customers_at(tables["customers"], as_of).select(KEY))
    for name in ("events", "interactions"):
        if name in tables:
            parts.append(upto(tables[name], "occurred_at", as_of).select(KEY))
    return ibis.union(*parts, distinct=True) if len(parts) > 1 else parts[0].distinct()


def customers_at(customers: ir.Table, as_of: date) -> ir.Table:
    """The latest record of each customer registered by as_of (or of unknown registration)."""
    c = customers.filter(
        customers.registered_at.isnull() | (customers.registered_at < end_of(as_of))
    )
    return latest(c, KEY)


def order_lines(tables: Mapping[str, ir.Table], as_of: date, margin_rate: float) -> ir.Table:
    """Order lines by as_of with date, margin, and the product's category when the line has none."""
    o = upto(tables["orders"], "ordered_at", as_of)
    if "products" in tables:
        p = latest(tables["products"], "product_id")
        p = p.select(_pid=p.product_id, _pcat=p.category)
        o = o.left_join(p, o.product_id == p._pid)
        o = o.mutate(category=ibis.coalesce(o.category, o._pcat)).drop("_pid", "_pcat")
    return o.select(
        KEY,
        "order_id",
        "ordered_at",
        "amount",
        "category",
        "channel",
        "discount",
        day=o.ordered_at.date(),
        margin=ibis.ifelse(o.cost.notnull(), o.amount - o.cost, o.amount * margin_rate),
    )


def order_grain(lines: ir.Table) -> ir.Table:
    """One row per customer and order: an order is placed when its first line is."""
    return lines.group_by([KEY, "order_id"]).agg(ordered_at=lines.ordered_at.min())


def day_grain(lines: ir.Table) -> ir.Table:
    """One row per customer and order date, with that day's margin and the gap since the last."""
    d = lines.group_by([KEY, "day"]).agg(margin=lines.margin.sum())
    prev = d.day.lag().over(ibis.window(group_by=d[KEY], order_by=d.day))
    return d.mutate(gap=days_between(d.day, prev))
