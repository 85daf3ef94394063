"""Run-level aggregates, the quality report and runs started over the API, on a real warehouse
(DuckDB file with ingested orders) and a real store (SQLite file and PostgreSQL).

The tests of a backend share one app; the last one publishes a real run, replacing the seeded
run whose migration and cohort rows the earlier tests read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import BACKENDS, store_settings
from tests.api.world import N_CUSTOMERS, World, profile, seed
from tests.test_run import orders_parquet

from tierwise.api.app import create_app
from tierwise.core.settings import Settings
from tierwise.services.ingest import ingest
from tierwise.services.locking import warehouse_lock
from tierwise.store.audit import audit_entries
from tierwise.store.publish import publish_run

API = "/api/v1"
MIGRATIONS = [
    {"dimension": "lifecycle_stage", "from_value": "new", "to_value": "active", "customers": 7,
     "rate": 0.7},
    {"dimension": "lifecycle_stage", "from_value": "(none)", "to_value": "new", "customers": 3,
     "rate": None},
    {"dimension": "value_tier", "from_value": "high", "to_value": "mid", "customers": 2,
     "rate": 0.1},
]  # fmt: skip
COHORTS = [
    {"cohort_month": date(2024, 1, 1), "month_offset": 0, "cohort_size": 10,
     "active_customers": 10, "retention": 1.0},
    {"cohort_month": date(2024, 1, 1), "month_offset": 1, "cohort_size": 10,
     "active_customers": 4, "retention": 0.4},
]  # fmt: skip
OPERATORS = ("root", "ana")
OTHERS = ("mia", "nomad", "ag1")


@pytest.fixture(scope="module", params=BACKENDS)
def ops(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """Seeded users and a run with migrations and cohorts, over a warehouse with 3,000 orders."""
    root = tmp_path_factory.mktemp("ops")
    url = store_settings(request, root).store.url
    orders_parquet(root / "orders.parquet", customers=300, lines=3000)
    (root / "tierwise.toml").write_text(
        f'[store]\nurl = "{url}"\n\n[sources.orders]\npath = "orders.parquet"\n'
    )
    settings = Settings.load(root / "tierwise.toml")
    ingest(settings)
    app = create_app(settings)
    with TestClient(app) as client:
        w = World(app, client)
        w.tokens = seed(w.store)
        rows = [profile(i) for i in range(N_CUSTOMERS)]
        publish_run(
            w.store.write, "run-3", date(2025, 3, 31), rows, migrations=MIGRATIONS, cohorts=COHORTS
        )
        yield w


def settings_of(w: World) -> Settings:
    settings: Settings = w.app.state.settings
    return settings


@pytest.mark.parametrize("username", OPERATORS + OTHERS)
def test_quality_report_is_for_operators_only(ops: World, username: str):
    r = ops.client.get(f"{API}/quality", headers=ops.bearer(username))
    if username in OTHERS:
        assert r.status_code == 403, r.text
        return
    assert r.status_code == 200, r.text
    orders = r.json()["report"]["tables"]["orders"]
    assert orders["rows"] == 3000


@pytest.mark.parametrize("username", ["root", "ag1"])
def test_migration_rows_of_the_current_run_are_the_same_for_every_role(ops: World, username):
    r = ops.client.get(f"{API}/lifecycle/migration", headers=ops.bearer(username))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run_id"] == "run-3"
    assert body["dimension"] == "lifecycle_stage"
    assert body["rows"] == [
        {"from_value": "(none)", "to_value": "new", "customers": 3, "rate": None},
        {"from_value": "new", "to_value": "active", "customers": 7, "rate": 0.7},
    ]
    tiers = ops.client.get(
        f"{API}/lifecycle/migration", params={"dimension": "value_tier"}, headers=ops.bearer("root")
    ).json()
    assert tiers["rows"] == [{"from_value": "high", "to_value": "mid", "customers": 2, "rate": 0.1}]
    empty = ops.client.get(
        f"{API}/lifecycle/migration", params={"dimension": "rfm_class8"}, headers=ops.bearer("root")
    ).json()
    assert empty["rows"] == []


def test_migration_refuses_unknown_dimensions_and_anonymous_callers(ops: World):
    r = ops.client.get(
        f"{API}/lifecycle/migration", params={"dimension": "abc_class"}, headers=ops.bearer("root")
    )
    assert r.status_code == 422
    assert ops.client.get(f"{API}/lifecycle/migration").status_code == 401
    assert ops.client.get(f"{API}/cohorts").status_code == 401


def test_cohorts_of_the_current_run(ops: World):
    r = ops.client.get(f"{API}/cohorts", headers=ops.bearer("ag3"))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "run_id": "run-3",
        "rows": [{**c, "cohort_month": "2024-01-01"} for c in COHORTS],
    }


@pytest.mark.parametrize("username", OTHERS)
def test_only_operators_start_runs(ops: World, username: str):
    r = ops.client.post(f"{API}/runs", headers=ops.bearer(username))
    assert r.status_code == 403, r.text
    with ops.store.read() as session:
        assert not audit_entries(session, action="run", actor=username)


def test_a_busy_warehouse_refuses_a_run_at_once(ops: World):
    settings = settings_of(ops)
    with warehouse_lock(settings.resolve(settings.warehouse.path), "ingest"):
        r = ops.client.post(f"{API}/runs", headers=ops.bearer("ana"))
    assert r.status_code == 409, r.text
    assert "ingest" in r.json()["detail"]


def test_started_run_publishes_and_holds_the_lock_until_done(ops: World):
    started = ops.client.post(f"{API}/runs", headers=ops.bearer("ana"))
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["status"] == "running" and job["started_by"] == "ana"
    assert started.headers["Location"] == f"{API}/runs/jobs/{job['job_id']}"
    again = ops.client.post(f"{API}/runs", headers=ops.bearer("root"))
    assert again.status_code == 409  # the first run's thread holds the warehouse lock

    deadline = time.monotonic() + 300
    while job["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        job = ops.client.get(started.headers["Location"], headers=ops.bearer("ag1")).json()
    assert job["status"] == "succeeded", job
    assert job["error"] is None and job["finished_at"] is not None

    runs = ops.client.get(f"{API}/runs", headers=ops.bearer("ana")).json()
    assert [r["run_id"] for r in runs if r["is_current"]] == [job["run_id"]]
    with ops.store.read() as session:
        (entry,) = audit_entries(session, action="run", actor="ana")
    assert entry.target == f"job:{job['job_id']}"
    missing = ops.client.get(f"{API}/runs/jobs/nope", headers=ops.bearer("ana"))
    assert missing.status_code == 404
