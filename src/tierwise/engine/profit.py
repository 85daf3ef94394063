"""Customer profitability: margin less service, marketing and acquisition cost, and CAC payback."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import ibis
import ibis.expr.types as ir

from tierwise.engine.staging import KEY, customers_at, days_between, upto


def acquisition(tables: Mapping[str, ir.Table], as_of: date) -> ir.Table | None:
    """Each customer's acquisition cost: the customer record's, else their acquisition costs."""
    parts = []
    if "customers" in tables:
        c = customers_at(tables["customers"], as_of)
        c = c.filter(c.acquisition_cost.notnull())
        parts.append(c.select(KEY, "acquisition_cost", _source_rank=ibis.literal(0)))
    if "costs" in tables:
        c = upto(tables["costs"], "incurred_at", as_of)
        c = c.filter(c.kind == "acquisition")
        c = c.group_by(KEY).agg(acquisition_cost=c.amount.sum())
        parts.append(c.mutate(_source_rank=ibis.literal(1)))
    if not parts:
        return None
    u = ibis.union(*parts)
    w = ibis.window(group_by=u[KEY], order_by=u._source_rank)
    u = u.mutate(_pick=ibis.row_number().over(w))
    return u.filter(u._pick == 0).select(KEY, "acquisition_cost")


def payback(days: ir.Table, acquisition: ir.Table) -> ir.Table:
    """Days from the first order until cumulative gross margin covers the acquisition cost.

    Customers without a positive acquisition cost, or never covered by as_of, get no row.
    """
    acquisition = acquisition.filter(acquisition.acquisition_cost > 0)
    d = days.join(acquisition, KEY)
    running = ibis.window(group_by=d[KEY], order_by=d.day, rows=(None, 0))
    d = d.mutate(
        _covered=d.margin.sum().over(running) >= d.acquisition_cost,
        _first=d.day.min().over(ibis.window(group_by=d[KEY])),
    )
    d = d.filter(d._covered)
    d = d.group_by(KEY).agg(_on=d.day.min(), _first=d._first.min())
    return d.select(KEY, cac_payback_days=days_between(d._on, d._first))


def profitability(t: ir.Table) -> ir.Table:
    profit = t.gross_margin - t.service_cost - t.marketing_cost - t.acquisition_cost
    return t.mutate(profit=profit, is_unprofitable=profit < 0)
