"""Lifecycle stage of each customer (DESIGN.md, thresholds from LifecycleSettings).

Precedence, first match wins:
potential (no orders) → churned → dormant → reactivated → new → loyal → active.
Lapse comes first because a customer who stopped buying needs win-back whatever their history;
then the two time-boxed events (a return, a first order); then loyalty; everyone else is active.

Expected cadence is the customer's median days between order dates, or, for customers with fewer
than two order dates, the median of that over all customers. When nobody has two order dates the
cadence is unknown: the cadence rules are skipped and dormancy falls back to min_dormant_days.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from tierwise.core.settings import LifecycleSettings
from tierwise.core.vocab import Stage
from tierwise.engine.text import join


def stages(t: ir.Table, s: LifecycleSettings) -> ir.Table:
    population = t.median_interval_days.median().over(ibis.window())
    t = t.mutate(_cadence=ibis.coalesce(t.median_interval_days, population))
    own = t.median_interval_days.notnull()
    cadence = join("cadence ", t._cadence, ibis.ifelse(own, "", " (population median)"))
    dormant_after = ibis.greatest(
        ibis.literal(float(s.min_dormant_days)),
        ibis.coalesce(s.dormant_cadence_factor * t._cadence, float(s.min_dormant_days)),
    )
    recency = join("last order ", t.recency_days, " days ago")
    rules = [
        (~t._buyer, Stage.POTENTIAL, ibis.literal("known, no orders yet")),
        (
            t.recency_days > s.churn_days,
            Stage.CHURNED,
            join(recency, f" > churn_days {s.churn_days}"),
        ),
        (
            ibis.coalesce(t.recency_days > s.churn_cadence_factor * t._cadence, False),
            Stage.CHURNED,
            join(recency, f" > {s.churn_cadence_factor:g} × ", cadence),
        ),
        (
            t.recency_days > dormant_after,
            Stage.DORMANT,
            join(
                recency,
                " > ",
                dormant_after,
                ibis.ifelse(
                    t._cadence.isnull(),
                    " (min_dormant_days; no cadence known)",
                    join(f" (max of min_dormant_days, {s.dormant_cadence_factor:g} × ", cadence)
                    + ")",
                ),
            ),
        ),
        (
            ibis.coalesce(t.last_gap_days > s.churn_days, False)
            & (t.recency_days < s.reactivated_days),
            Stage.REACTIVATED,
            join(
                "returned after a ",
                t.last_gap_days,
                f"-day gap (> churn_days {s.churn_days}), ",
                recency,
            ),
        ),
        (
            t.tenure_days < s.new_days,
            Stage.NEW,
            join("first order ", t.tenure_days, f" days ago (< new_days {s.new_days})"),
        ),
        (
            (t.orders >= s.loyal_min_orders) & (t.tenure_days >= s.loyal_min_tenure_days),
            Stage.LOYAL,
            join(
                t.orders,
                f" orders (≥ {s.loyal_min_orders}) over ",
                t.tenure_days,
                f" days (≥ {s.loyal_min_tenure_days})",
            ),
        ),
    ]
    active = join(recency, ", within ", dormant_after, " days")
    t = t.mutate(
        lifecycle_stage=ibis.cases(
            *[(c, stage.value) for c, stage, _ in rules], else_=Stage.ACTIVE.value
        ),
        lifecycle_reason=ibis.cases(*[(c, r) for c, _, r in rules], else_=active),
    )
    return t.drop("_cadence")
