"""Engine side of the predictive columns: churn features and labels, and attaching predictions.

The models run outside the engine on bounded data; what they need per customer (activity
trends, labels) and what they return (predictions joined back, value tiers by CLV) stays here.
"""

from __future__ import annotations

from datetime import date, timedelta

import ibis
import ibis.expr.types as ir

from tierwise.core.settings import ScoringSettings
from tierwise.engine import scores
from tierwise.engine.staging import KEY, end_of, upto

PREDICTION_SCHEMA = ibis.schema(
    {
        KEY: "string",
        "predicted_purchases": "float64",
        "p_alive": "float64",
        "expected_avg_spend": "float64",
        "clv": "float64",
        "churn_probability": "float64",
        "churn_risk": "string",
        "churn_reasons": "string",
    }
)
"""Columns a run adds to every profile (null where no model could score the customer)."""

TREND_DAYS = 90


def activity_trend(orders: ir.Table, /, *, as_of: date) -> ir.Table:
    """Orders in the last 90 days and in the 90 days before: a falling count warns of churn."""
    o = upto(orders, "ordered_at", as_of)
    recent_start = end_of(as_of - timedelta(days=TREND_DAYS))
    prev_start = end_of(as_of - timedelta(days=2 * TREND_DAYS))
    orders_at = o.group_by([KEY, "order_id"]).agg(at=o.ordered_at.min())
    recent = orders_at.at >= recent_start
    previous = (orders_at.at >= prev_start) & ~recent
    return orders_at.group_by(KEY).agg(
        orders_last_90d=recent.sum().cast("int64"),
        orders_prev_90d=previous.sum().cast("int64"),
    )


def churn_labels(orders: ir.Table, /, *, cutoff: date, window_days: int) -> ir.Table:
    """customer_id, churned (1 = no order in the `window_days` after `cutoff`), for every
    customer with an order on or before `cutoff`."""
    before = upto(orders, "ordered_at", cutoff).select(KEY).distinct()
    window = orders.filter(
        (orders.ordered_at >= end_of(cutoff))
        & (orders.ordered_at < end_of(cutoff + timedelta(days=window_days)))
    )
    came_back = window.select(KEY).distinct().mutate(_back=ibis.literal(1))
    labelled = before.left_join(came_back, before[KEY] == came_back[KEY]).select(
        before[KEY], churned=ibis.ifelse(came_back._back.isnull(), 1, 0)
    )
    return labelled


def attach_predictions(
    profiles: ir.Table, predictions: ir.Table, /, *, scoring: ScoringSettings, tier_by_clv: bool
) -> ir.Table:
    """Profiles with the prediction columns; value tiers re-ranked by CLV when the value model
    scored every buyer (DESIGN: tiers by predicted CLV, historical revenue when models are off)."""
    p = predictions.select(*PREDICTION_SCHEMA.names).cast(PREDICTION_SCHEMA)
    p = p.rename({"_pk": KEY})
    t = profiles.left_join(p, profiles[KEY] == p._pk).drop("_pk")
    if tier_by_clv:
        t = t.mutate(_buyer=t.orders > 0)
        t = scores.value_tiers(t, scoring, "clv").drop("_buyer")
    return t.select(*profiles.columns, *PREDICTION_SCHEMA.names[1:])
