"""What the API and the dashboard read about behaviour: a customer's recommendations, a
segment's top products and habits, basket rules and behaviour clusters of the current run.

A customer's recommendations come with the published profile (`serving.customer_detail`:
scope, masking and audited denials included). Segment views are computed in the warehouse over
the published run's snapshot, restricted to the customers `access.scope` lets the viewer read
(roles that see everyone skip the id list), so a manager sees their team's buying habits, not
the company's. Association rules, clusters and the recommender evaluation are run-level
aggregates with no customer rows, like migration and cohorts: every signed-in user sees them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
from ibis.backends import BaseBackend

from tierwise.core.settings import Settings
from tierwise.engine.behaviour import (
    funnel,
    preferences,
    product_catalogue,
    top_products,
    weekday_hour,
)
from tierwise.services.access import OPERATOR_ROLES, Viewer, scope
from tierwise.services.recommend import behaviour_file
from tierwise.services.run import snapshot_table
from tierwise.services.serving import Store, customer_detail
from tierwise.services.warehouse import connect
from tierwise.store.models import PublishedProfile
from tierwise.store.publish import current_run

Dimension = Literal[
    "rfm_segment", "rfm_class8", "abc_class", "value_tier", "lifecycle_stage", "churn_risk",
    "behaviour_cluster",
]  # fmt: skip
"""Profile columns a segment view can be taken of."""


# -- one customer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerRecommendations:
    run_id: str
    customer_id: str
    behaviour_cluster: str | None
    repeat: list[dict[str, Any]]
    """Products bought before, best first."""
    new: list[dict[str, Any]]
    """Products never bought, best first."""


def customer_recommendations(
    store: Store, viewer: Viewer, customer_id: str
) -> CustomerRecommendations:
    """The recommendations published with the customer's profile (404 outside the scope)."""
    detail = customer_detail(store, viewer, customer_id)
    recs = detail.profile.get("recommendations") or []
    return CustomerRecommendations(
        detail.run_id,
        customer_id,
        detail.profile.get("behaviour_cluster"),
        [r for r in recs if r.get("kind") == "repeat"],
        [r for r in recs if r.get("kind") == "new"],
    )


# -- run-level aggregates ----------------------------------------------------------------------


def _current(store: Store) -> tuple[str, date] | None:
    with store.read() as session:
        run = current_run(session)
        return None if run is None else (run.run_id, run.as_of)


def run_behaviour(settings: Settings, store: Store) -> tuple[str | None, dict[str, Any]]:
    """The current published run and its behaviour file ({} before any, or when absent)."""
    run = _current(store)
    if run is None:
        return None, {}
    path = behaviour_file(settings, run[0])
    if not path.exists():
        return run[0], {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return run[0], data


@dataclass(frozen=True)
class RuleTable:
    run_id: str | None
    rules: list[dict[str, Any]]


def rules(
    settings: Settings,
    store: Store,
    *,
    product_id: str | None = None,
    min_lift: float = 0.0,
    limit: int = 50,
) -> RuleTable:
    """The run's strongest basket rules (highest lift first), optionally those whose
    antecedent is `product_id`: "customers who bought it also bought"."""
    run_id, data = run_behaviour(settings, store)
    found = [
        r
        for r in data.get("association_rules", [])
        if r["lift"] >= min_lift and (product_id is None or r["antecedent"] == product_id)
    ]
    return RuleTable(run_id, found[:limit])


@dataclass(frozen=True)
class ClusterTable:
    run_id: str | None
    k: int | None
    features: list[str]
    clusters: list[dict[str, Any]]


def clusters(settings: Settings, store: Store) -> ClusterTable:
    run_id, data = run_behaviour(settings, store)
    c = data.get("clusters") or {}
    return ClusterTable(run_id, c.get("k"), c.get("features", []), c.get("clusters", []))


def evaluation(settings: Settings, store: Store) -> dict[str, Any] | None:
    """The evaluation the current run chose its recommenders by, with the choice."""
    _, data = run_behaviour(settings, store)
    if "evaluation" not in data:
        return None
    return dict(data["evaluation"]) | {"chosen": data.get("chosen", {})}


# -- segment views -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentScope:
    run_id: str | None
    as_of: date | None
    dimension: str
    key: str
    customers: int
    """Customers of the segment the viewer may see."""


@contextmanager
def _warehouse(settings: Settings) -> Iterator[BaseBackend]:
    con = connect(settings)
    try:
        yield con
    finally:
        con.disconnect()


def _visible_ids(store: Store, viewer: Viewer, run_id: str) -> list[str] | None:
    """The viewer's customer ids in the run; None for roles that see every customer."""
    if viewer.role in OPERATOR_ROLES:
        return None
    query = scope(viewer, run_id=run_id).with_only_columns(PublishedProfile.customer_id)
    with store.read() as session:
        return [str(c) for c in session.scalars(query)]


def _members(
    con: BaseBackend, run_id: str, dimension: str, key: str, ids: list[str] | None
) -> ir.Table | None:
    """customer_id, segment of the segment's members (those in `ids`, when given)."""
    name = snapshot_table("profiles", run_id)
    if name not in con.list_tables():
        return None
    p = con.table(name)
    if dimension not in p.columns:
        return None
    p = p.filter(p[dimension] == key).select("customer_id", segment=p[dimension])
    if ids is not None:
        allowed = ibis.memtable({"_vid": ids}, schema={"_vid": "string"})
        p = p.semi_join(allowed, p.customer_id == allowed._vid)
    return p


def _records(t: ir.Table) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = t.to_pyarrow().to_pylist()
    return records


@dataclass(frozen=True)
class SegmentProducts(SegmentScope):
    since: date | None
    products: list[dict[str, Any]]


def segment_products(
    settings: Settings,
    store: Store,
    viewer: Viewer,
    dimension: Dimension,
    key: str,
    *,
    n: int = 10,
    days: int = 365,
) -> SegmentProducts:
    """The `n` products most of the segment's (visible) customers bought in the last `days`."""
    run = _current(store)
    if run is None:
        return SegmentProducts(None, None, dimension, key, 0, None, [])
    run_id, as_of = run
    since = as_of - timedelta(days=days)
    ids = _visible_ids(store, viewer, run_id)
    with _warehouse(settings) as con:
        members = _members(con, run_id, dimension, key, ids)
        if members is None or "orders" not in con.list_tables():
            return SegmentProducts(run_id, as_of, dimension, key, 0, since, [])
        orders = con.table("orders")
        top = top_products(orders, members, as_of=as_of, since=since, n=n)
        products = con.table("products") if "products" in con.list_tables() else None
        cat = product_catalogue(orders, products).rename(_pid="product_id")
        top = top.left_join(cat, top.product_id == cat._pid).drop("_pid")
        rows = _records(top.order_by("rank"))
        customers = int(members.count().execute())
    fields = ("rank", "product_id", "customers", "orders", "revenue", "order_share", "category")
    products = [{k: r[k] for k in fields} | {"title": r["name"]} for r in rows]
    return SegmentProducts(run_id, as_of, dimension, key, customers, since, products)


@dataclass(frozen=True)
class SegmentBehaviour(SegmentScope):
    since: date | None
    heatmap: list[dict[str, Any]]
    """weekday (0 = Monday), hour, orders, customers: orders placed in each hour of the week."""
    categories: list[dict[str, Any]]
    channels: list[dict[str, Any]]
    funnel: dict[str, Any] | None
    """Views → carts → orders over the last `funnel_days` (None without behaviour events)."""


def segment_behaviour(
    settings: Settings,
    store: Store,
    viewer: Viewer,
    dimension: Dimension,
    key: str,
    *,
    days: int = 365,
    funnel_days: int = 90,
) -> SegmentBehaviour:
    """Time habits, category and channel preferences and the browse-to-buy funnel of the
    segment's (visible) customers."""
    run = _current(store)
    if run is None:
        return SegmentBehaviour(None, None, dimension, key, 0, None, [], [], [], None)
    run_id, as_of = run
    since = as_of - timedelta(days=days)
    ids = _visible_ids(store, viewer, run_id)
    with _warehouse(settings) as con:
        tables = set(con.list_tables())
        members = _members(con, run_id, dimension, key, ids)
        if members is None or "orders" not in tables:
            return SegmentBehaviour(run_id, as_of, dimension, key, 0, since, [], [], [], None)
        orders = con.table("orders")

        def rows(t: ir.Table, *order: str) -> list[dict[str, Any]]:
            return _records(t.drop("segment").order_by(list(order)))

        heat = rows(weekday_hour(orders, members, as_of=as_of, since=since), "weekday", "hour")
        prefs = {
            column: rows(
                preferences(orders, members, column=column, as_of=as_of, since=since),
                "value",
            )
            for column in ("category", "channel")
        }
        flow = None
        if "events" in tables:
            f = funnel(
                con.table("events"),
                orders,
                members,
                as_of=as_of,
                since=as_of - timedelta(days=funnel_days),
            )
            found = _records(f.drop("segment"))
            flow = (found[0] if found else dict.fromkeys(f.drop("segment").columns, 0)) | {
                "days": funnel_days
            }
        customers = int(members.count().execute())
    for table in prefs.values():
        table.sort(key=lambda r: (-r["orders"], str(r["value"])))
    return SegmentBehaviour(
        run_id,
        as_of,
        dimension,
        key,
        customers,
        since,
        heat,
        prefs["category"],
        prefs["channel"],
        flow,
    )
