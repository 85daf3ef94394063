"""The customer profile mart: one row per known customer with facts, scores, stage and profit.

The output schema is fixed (`PROFILE_SCHEMA`): optional tables that are absent only turn their
columns into zeros and nulls, so everything downstream can rely on every column.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import ibis
import ibis.expr.types as ir

from tierwise.core.errors import ConfigError, DataError
from tierwise.core.settings import LifecycleSettings, ScoringSettings
from tierwise.engine import facts, scores
from tierwise.engine.lifecycle import stages
from tierwise.engine.profit import acquisition, payback, profitability
from tierwise.engine.staging import (
    KEY,
    day_grain,
    days_between,
    known_customers,
    order_grain,
    order_lines,
)

_SHARES = [f"share_{d}" for d in facts.WEEKDAYS] + [f"share_{b}" for b in facts.HOUR_BANDS]

PROFILE_SCHEMA = ibis.schema(
    {
        KEY: "string",
        "first_order_at": "timestamp",
        "last_order_at": "timestamp",
        "orders": "int64",
        "order_lines": "int64",
        "order_days": "int64",
        "revenue": "float64",
        "avg_order_value": "float64",
        "recency_days": "int64",
        "tenure_days": "int64",
        "median_interval_days": "float64",
        "categories": "int64",
        "preferred_category": "string",
        "preferred_channel": "string",
        **dict.fromkeys(_SHARES, "float64"),
        "discount_share": "float64",
        "views": "int64",
        "carts": "int64",
        "browse_to_buy": "float64",
        "complaints": "int64",
        "unresolved_complaints": "int64",
        "follow_ups": "int64",
        "last_csat": "float64",
        "mean_nps": "float64",
        "gross_margin": "float64",
        "service_cost": "float64",
        "marketing_cost": "float64",
        "acquisition_cost": "float64",
        "profit": "float64",
        "is_unprofitable": "boolean",
        "cac_payback_days": "int64",
        "r_score": "int64",
        "f_score": "int64",
        "m_score": "int64",
        "rfm_code": "string",
        "rfm_segment": "string",
        "rfm_segment_reason": "string",
        "rfm_class8": "string",
        "rfm_class8_reason": "string",
        "abc_class": "string",
        "abc_reason": "string",
        "value_tier": "string",
        "value_tier_reason": "string",
        "lifecycle_stage": "string",
        "lifecycle_reason": "string",
    }
)
"""Column order and types of `build_profiles`."""

_FACTS: dict[str, str] = {
    "views": "int64",
    "carts": "int64",
    "complaints": "int64",
    "unresolved_complaints": "int64",
    "follow_ups": "int64",
    "interaction_cost": "float64",
    "mean_nps": "float64",
    "last_csat": "float64",
    "service_costs": "float64",
    "marketing_costs": "float64",
    "acquisition_cost": "float64",
    "cac_payback_days": "int64",
}
"""Columns of optional sources: null when the source is absent, like a customer without rows."""

_ZERO_WHEN_MISSING = (
    "orders",
    "order_lines",
    "order_days",
    "categories",
    "revenue",
    "gross_margin",
    "views",
    "carts",
    "complaints",
    "unresolved_complaints",
    "follow_ups",
    "interaction_cost",
    "service_costs",
    "marketing_costs",
    "acquisition_cost",
)


def latest_order_date(orders: ir.Table, /) -> ir.DateScalar:
    """The default as_of: the date of the latest order."""
    return orders.ordered_at.max().date()


def _attach(t: ir.Table, part: ir.Table) -> ir.Table:
    """Left-join per-customer columns of `part` onto `t`."""
    part = part.rename(_key=KEY)
    return t.left_join(part, t[KEY] == part._key).drop("_key")


def _optional_facts(tables: Mapping[str, ir.Table], as_of: date, days: ir.Table) -> list[ir.Table]:
    out = []
    if "events" in tables:
        out.append(facts.event_facts(tables["events"], as_of))
    if "interactions" in tables:
        out.append(facts.interaction_facts(tables["interactions"], as_of))
    if "feedback" in tables:
        out.append(facts.feedback_facts(tables["feedback"], as_of))
    if "costs" in tables:
        out.append(facts.cost_facts(tables["costs"], as_of))
    acquired = acquisition(tables, as_of)
    if acquired is not None:
        out.extend([acquired, payback(days, acquired)])
    return out


def build_profiles(
    tables: Mapping[str, ir.Table],
    /,
    *,
    as_of: date,
    scoring: ScoringSettings,
    lifecycle: LifecycleSettings,
    value_column: str = "revenue",
) -> ir.Table:
    """Profiles of every customer known by `as_of` (inclusive), as one Ibis expression."""
    if "orders" not in tables:
        raise DataError("profiles need an orders table")
    lines = order_lines(tables, as_of, scoring.margin_rate)
    days = day_grain(lines)
    t = known_customers(tables, as_of)
    for part in (
        facts.line_facts(lines),
        facts.order_facts(order_grain(lines)),
        facts.day_facts(days),
        facts.preferred(lines, "category"),
        facts.preferred(lines, "channel"),
        *_optional_facts(tables, as_of, days),
    ):
        t = _attach(t, part)
    t = t.mutate(
        **{c: ibis.null(typ) for c, typ in _FACTS.items() if c not in t.columns},
    )
    t = t.mutate(**{c: ibis.coalesce(t[c], 0) for c in _ZERO_WHEN_MISSING})
    buyer = t.orders > 0
    t = t.mutate(
        _buyer=buyer,
        recency_days=days_between(ibis.literal(as_of), t.last_order_at.date()),
        tenure_days=days_between(ibis.literal(as_of), t.first_order_at.date()),
        avg_order_value=ibis.ifelse(buyer, t.revenue / t.orders, ibis.null("float64")),
        browse_to_buy=ibis.ifelse(t.views > 0, t.orders / t.views, ibis.null("float64")),
        service_cost=t.interaction_cost + t.service_costs,
        marketing_cost=t.marketing_costs,
    )
    t = profitability(t)
    _check_value_column(t, value_column)
    t = scores.rfm_scores(t, scoring)
    t = scores.segments(t, scoring.scheme_rules())
    t = scores.class8(t, scoring)
    t = scores.abc(t, scoring)
    t = scores.value_tiers(t, scoring, value_column)
    t = stages(t, lifecycle)
    return t.select(*PROFILE_SCHEMA.names).cast(PROFILE_SCHEMA)


def _check_value_column(t: ir.Table, value_column: str) -> None:
    numeric = [
        c
        for c in PROFILE_SCHEMA.names
        if c in t.columns and t[c].type().is_numeric() and not t[c].type().is_boolean()
    ]
    if value_column not in numeric:
        raise ConfigError(
            f"value column {value_column!r} is not a numeric profile column; "
            f"choose one of: {', '.join(numeric)}"
        )
