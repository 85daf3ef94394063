"""The dashboard's store path (profile documents read with JSON operators) on SQLite and on
PostgreSQL, against sums made in plain Python over the rows that were published."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from tierwise.core.settings import Settings, StoreSettings
from tierwise.services.access import Principal
from tierwise.services.dashboard import Dashboard, ListFilter, RunRef
from tierwise.services.serving import Store, opened_store
from tierwise.store.publish import publish_run

ADMIN = Principal(1, "root", "root", "admin", None)
AGENT = Principal(2, "ag1", "ag1", "agent", None)
AS_OF = date(2025, 12, 31)


def profile(i: int) -> dict:
    buyer = i % 7 != 0
    r, f = 1 + i % 5, 1 + (i // 5) % 5
    return {
        "customer_id": f"C{i:04d}",
        "account_manager": ("ag1", "ag2")[i % 2],
        "phone": f"139{i:08d}",
        "r_score": r if buyer else None,
        "f_score": f if buyer else None,
        "rfm_segment": "champions" if buyer and r == 5 else "hibernating" if buyer else "no_orders",
        "abc_class": ("A", "B", "C")[i % 3] if buyer else None,
        "lifecycle_stage": ("active", "loyal", "churned")[i % 3] if buyer else "potential",
        "churn_risk": ("low", "high")[i % 2] if buyer else None,
        "revenue": float(10 * i) if buyer else 0.0,
        "clv": float(i) if buyer else None,
        "profit": float(i % 11 - 4),
        "mean_nps": float(i % 11) if i % 3 == 0 else None,
    }


ROWS = [profile(i) for i in range(150)]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Settings, Store]]:
    if request.param == "sqlite":
        url = "sqlite:///store.db"
    else:
        databases = request.getfixturevalue("postgres_databases")
        url = databases.url_of(databases.create())
    settings = Settings(root=tmp_path, store=StoreSettings(url=url))
    with opened_store(settings) as s:
        publish_run(s.write, "run-1", AS_OF, ROWS)
        yield settings, s


def test_store_snapshot_matches_the_published_rows(store: tuple[Settings, Store]):
    settings, s = store
    dashboard = Dashboard(settings, s)
    run = RunRef("run-1", AS_OF)
    snap = dashboard.snapshot(ADMIN, run)
    assert snap.source == "store"  # no warehouse in this directory
    assert snap.totals.customers == len(ROWS)
    assert snap.totals.revenue == pytest.approx(sum(r["revenue"] for r in ROWS))
    answered = [r["mean_nps"] for r in ROWS if r["mean_nps"] is not None]
    nps = 100 * (sum(v >= 9 for v in answered) - sum(v <= 6 for v in answered)) / len(answered)
    assert snap.totals.nps == pytest.approx(nps)
    cells: dict[tuple[int, int], int] = {}
    for r in ROWS:
        if r["r_score"] is not None:
            key = (r["r_score"], r["f_score"])
            cells[key] = cells.get(key, 0) + 1
    assert {(c.r, c.f): c.customers for c in snap.rf} == cells
    mine = dashboard.snapshot(AGENT, run)
    assert mine.totals.customers == sum(r["account_manager"] == "ag1" for r in ROWS)


def test_cell_filter_reads_scores_from_the_profile_documents(store: tuple[Settings, Store]):
    settings, s = store
    dashboard = Dashboard(settings, s)
    for viewer, rows in (
        (ADMIN, ROWS),
        (AGENT, [r for r in ROWS if r["account_manager"] == "ag1"]),
    ):
        expected = sorted(r["customer_id"] for r in rows if (r["r_score"], r["f_score"]) == (2, 3))
        page = dashboard.customers(viewer, ListFilter(r=2, f=3), page_size=200)
        assert sorted(c["customer_id"] for c in page.items) == expected
        assert page.total == len(expected) > 0
        if viewer is AGENT:
            assert all("****" in c["phone"] for c in page.items)
