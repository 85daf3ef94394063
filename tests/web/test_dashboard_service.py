"""The dashboard's numbers, checked against counts made independently of it: plain SQL on the
warehouse snapshot and on the store, and the orders table for a customer's history."""

from __future__ import annotations

import itertools
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import pytest
from sqlalchemy import select, update
from tests.web.conftest import AGENT, OTHER_AGENT, Demo

from tierwise.core.errors import NotFoundError, PermissionDeniedError
from tierwise.core.settings import Settings
from tierwise.services.access import Principal
from tierwise.services.dashboard import (
    Dashboard,
    ListFilter,
    RunRef,
    run_dashboard,
    snapshot_from_document,
)
from tierwise.services.serving import CustomerFilter, Store, opened_store
from tierwise.services.warehouse import connect
from tierwise.store.models import PublishedRun

ADMIN = Principal(1, "admin", "admin", "admin", None)
ANALYST = Principal(2, "analyst", "analyst", "analyst", None)
AGENT_VIEWER = Principal(3, AGENT, AGENT, "agent", "east")
OTHER_VIEWER = Principal(4, OTHER_AGENT, OTHER_AGENT, "agent", "west")


@pytest.fixture(scope="module")
def store(demo: Demo) -> Iterator[Store]:
    with opened_store(demo.settings) as s:
        yield s


@pytest.fixture
def dashboard(demo: Demo, store: Store) -> Dashboard:
    return Dashboard(demo.settings, store)


class Warehouse:
    """Plain SQL on the warehouse, each query on a connection of its own: one left open would
    keep the dashboard (same process, same file) from opening it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def execute(self, query: str) -> Any:
        con = connect(self.settings)
        try:
            return con.raw_sql(query).fetchall()
        finally:
            con.disconnect()


@pytest.fixture(scope="module")
def warehouse(demo: Demo) -> Warehouse:
    return Warehouse(demo.settings)


@pytest.fixture(scope="module")
def sql(demo: Demo) -> Iterator[sqlite3.Connection]:
    path = demo.settings.resolve("tierwise.db")
    con = sqlite3.connect(path)
    yield con
    con.close()


def runs(dashboard: Dashboard) -> tuple[RunRef, RunRef]:
    current, previous = dashboard.current_runs()
    assert current is not None and previous is not None
    return current, previous


def close(a: Any, b: Any, path: str = "") -> None:
    """Equal, floats to 1e-9 relative (sums in a different order), recursively."""
    if isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None, path
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6), f"{path}: {a} != {b}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.mark.parametrize("viewer", [ADMIN, AGENT_VIEWER], ids=["admin", "agent"])
def test_warehouse_and_store_snapshots_agree(dashboard: Dashboard, viewer: Principal):
    for run in runs(dashboard):
        fast = dashboard.snapshot(viewer, run)
        slow = dashboard.store_snapshot(viewer, run)
        assert (fast.source, slow.source) == ("warehouse", "store")
        close({**asdict(fast), "source": None}, {**asdict(slow), "source": None})


def test_publishing_keeps_the_run_summary_and_a_missing_one_is_computed_once(dashboard, store):
    current, _ = runs(dashboard)
    kept = dashboard.snapshot(ADMIN, current)
    with dashboard.warehouse() as con:
        assert con is not None
        document = run_dashboard(con, current)
    assert document is not None
    close(asdict(kept), asdict(snapshot_from_document(document)))

    def stored() -> Any:
        with store.read() as session:
            query = select(PublishedRun.dashboard).where(PublishedRun.run_id == current.run_id)
            return session.scalar(query)

    with store.write.begin() as session:  # as if published before runs kept their summary
        session.execute(
            update(PublishedRun).where(PublishedRun.run_id == current.run_id).values(dashboard=None)
        )
    assert stored() is None
    close(asdict(dashboard.snapshot(ADMIN, current)), asdict(kept))
    close(stored(), document)


def test_run_level_numbers_match_plain_sql_on_the_snapshot(dashboard, warehouse):
    current, _ = runs(dashboard)
    snap = dashboard.snapshot(ADMIN, current)
    table = f"profiles_{current.run_id}"
    customers, revenue, high, losers = warehouse.execute(
        f"SELECT count(*), sum(revenue), count(*) FILTER (churn_risk = 'high'), "
        f"count(*) FILTER (profit < 0) FROM {table}"
    )[0]
    promoters, detractors, answered = warehouse.execute(
        f"SELECT count(*) FILTER (mean_nps >= 9), count(*) FILTER (mean_nps <= 6), "
        f"count(mean_nps) FROM {table}"
    )[0]
    t = snap.totals
    assert (t.customers, t.churn_risk_high, t.unprofitable) == (customers, high, losers)
    assert t.revenue == pytest.approx(revenue)
    assert t.nps == pytest.approx(100 * (promoters - detractors) / answered)
    cells = warehouse.execute(
        f"SELECT r_score, f_score, count(*), any_value(rfm_segment) FROM {table} "
        "WHERE r_score IS NOT NULL GROUP BY ALL ORDER BY 1, 2"
    )
    assert [(c.r, c.f, c.customers, c.segment) for c in snap.rf] == cells
    assert len(snap.rf) == 25  # every R×F cell is populated at this size
    segments = dict(warehouse.execute(f"SELECT rfm_segment, count(*) FROM {table} GROUP BY ALL"))
    assert {b.key: b.customers for b in snap.dimensions["rfm_segment"]} == segments


def test_pareto_curve_and_abc_bands(dashboard: Dashboard):
    current, _ = runs(dashboard)
    snap = dashboard.snapshot(ADMIN, current)
    curve = [p.revenue_share for p in snap.pareto]
    assert curve[0] == 0 and curve[-1] == pytest.approx(1.0)
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(curve))
    abc = {b.key: b for b in snap.dimensions["abc_class"]}
    a_share = abc["A"].customers / snap.totals.buyers
    # A holds the customers ranked before 70 % of revenue: the curve crosses 0.7 at its edge
    at_a = next(p.revenue_share for p in snap.pareto if p.customer_share >= a_share)
    assert 0.69 < at_a < 0.75
    assert abc["A"].revenue_share == pytest.approx(at_a, abs=0.03)


def test_kpis_compare_with_the_previous_run(dashboard, sql):
    current, previous = runs(dashboard)
    overview = dashboard.overview(ADMIN)
    kpis = {k.key: k for k in overview.kpis}
    counts = dict(
        sql.execute("SELECT run_id, count(*) FROM published_profiles GROUP BY run_id").fetchall()
    )
    assert kpis["customers"].value == counts[current.run_id]
    assert kpis["customers"].previous == counts[previous.run_id]
    assert kpis["customers"].change == counts[current.run_id] - counts[previous.run_id] > 0
    assert overview.previous_run_id == previous.run_id


def test_an_agent_sees_numbers_of_their_own_customers_only(dashboard, sql):
    current, _ = runs(dashboard)
    snap = dashboard.snapshot(AGENT_VIEWER, current)
    n, revenue = sql.execute(
        "SELECT count(*), sum(revenue) FROM published_profiles WHERE run_id = ? "
        "AND account_manager = ?",
        (current.run_id, AGENT),
    ).fetchall()[0]
    assert 0 < snap.totals.customers == n < dashboard.snapshot(ADMIN, current).totals.customers
    assert snap.totals.revenue == pytest.approx(revenue)
    page = dashboard.customers(AGENT_VIEWER, ListFilter(), page_size=200)
    assert page.total == n
    assert {c["account_manager"] for c in page.items} == {AGENT}
    assert all("****" in c["phone"] for c in page.items if c["phone"])
    risky = dashboard.value(AGENT_VIEWER).at_risk
    assert risky and {c["account_manager"] for c in risky} == {AGENT}
    assert all("*" in c["name"] for c in risky if c["name"])


def test_another_agents_customer_is_not_found(dashboard: Dashboard):
    theirs = dashboard.customers(OTHER_VIEWER, ListFilter(), page_size=1).items[0]
    with pytest.raises(NotFoundError):
        dashboard.customer(AGENT_VIEWER, theirs["customer_id"])
    with pytest.raises(NotFoundError):
        dashboard.customer(AGENT_VIEWER, "no-such-customer")


def test_cell_filter_lists_exactly_the_cell(dashboard: Dashboard):
    current, _ = runs(dashboard)
    cell = next(c for c in dashboard.snapshot(ADMIN, current).rf if (c.r, c.f) == (2, 4))
    page = dashboard.customers(
        ADMIN, ListFilter(CustomerFilter(segment=cell.segment), r=2, f=4), page_size=200
    )
    assert page.total == cell.customers == len(page.items)
    for item in page.items[:10]:
        profile = dashboard.customer(ADMIN, item["customer_id"]).profile
        assert (profile["r_score"], profile["f_score"]) == (2, 4)
    # an agent's cell is counted in the store, not taken from a snapshot
    mine = {(c.r, c.f): c.customers for c in dashboard.snapshot(AGENT_VIEWER, current).rf}
    for (r, f), size in list(mine.items())[:5]:
        listed = dashboard.customers(AGENT_VIEWER, ListFilter(r=r, f=f), page_size=200)
        assert listed.total == size == len(listed.items)


def test_customer_360_history_adds_up_to_the_profile(dashboard: Dashboard):
    busy = dashboard.customers(ADMIN, ListFilter(), sort="orders", descending=True).items[0]
    seen = dashboard.customer(ADMIN, busy["customer_id"])
    assert seen.warehouse_available
    assert sum(m.orders for m in seen.months) == seen.profile["orders"] > 3
    assert sum(m.revenue for m in seen.months) == pytest.approx(seen.profile["revenue"])
    assert [s.column for s in seen.scores][:2] == ["rfm_segment", "rfm_class8"]
    assert all(s.reason for s in seen.scores if s.column != "churn_risk")
    assert seen.profile["phone"] == busy["phone"] and "****" not in busy["phone"]
    masked = dashboard.customer(ANALYST, busy["customer_id"]).profile
    assert "****" in masked["phone"] and masked["name"] != seen.profile["name"]


def test_data_page_is_for_operators_and_masks_rejects(dashboard: Dashboard):
    with pytest.raises(PermissionDeniedError):
        dashboard.data(AGENT_VIEWER)
    admin = dashboard.data(ADMIN)
    assert admin.quality and "orders" in admin.quality["tables"]
    assert {r["table_name"] for r in admin.ledger} >= {"orders", "customers", "feedback"}
    (reject,) = admin.rejects
    assert (reject["table_name"], reject["reason"]) == ("feedback", "bad_date")
    assert "13812345678" in reject["raw"]
    (masked,) = dashboard.data(ANALYST).rejects
    assert "13812345678" not in masked["raw"] and masked["value"] == reject["value"]


def test_runs_page_history_and_errors_for_operators(dashboard: Dashboard):
    admin = dashboard.runs(ADMIN)
    assert admin.can_start and not dashboard.runs(AGENT_VIEWER).can_start
    assert [r.status for r in admin.history].count("succeeded") >= 2
    assert {r.run_id for r in admin.published} <= {r.run_id for r in admin.history}


def test_lifecycle_stage_history_is_oldest_first(dashboard: Dashboard):
    current, previous = runs(dashboard)
    page = dashboard.lifecycle(ADMIN)
    assert [p.run_id for p in page.stage_history][-2:] == [previous.run_id, current.run_id]
    snap = dashboard.snapshot(ADMIN, current)
    stages = {b.key: b.customers for b in snap.dimensions["lifecycle_stage"]}
    assert page.stage_history[-1].stages == stages
    assert page.migration.rows and page.cohorts.rows
    agent = dashboard.lifecycle(AGENT_VIEWER)
    assert sum(agent.stage_history[-1].stages.values()) < sum(stages.values())


def test_a_missing_warehouse_leaves_store_numbers_and_empty_history(demo, store, tmp_path):
    settings = demo.settings.model_copy(
        update={"warehouse": demo.settings.warehouse.model_copy(update={"path": tmp_path / "x"})}
    )
    dashboard = Dashboard(settings, store)
    current, _ = runs(dashboard)
    kept = dashboard.snapshot(ADMIN, current)  # publishing kept it with the run
    assert kept == Dashboard(demo.settings, store).snapshot(ADMIN, current)
    assert dashboard.snapshot(AGENT_VIEWER, current).source == "store"
    assert not (tmp_path / "x").exists()
    assert dashboard.data(ADMIN).warehouse_available is False
    busy = dashboard.customers(ADMIN, ListFilter()).items[0]
    seen = dashboard.customer(ADMIN, busy["customer_id"])
    assert seen.warehouse_available is False and seen.months == []
