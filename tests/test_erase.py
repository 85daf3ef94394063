"""Erasure end to end: a canary person goes through ingest, run, publish, API reads and an export,
is erased through the API, and afterwards no trace of their name, phone or e-mail is left in the
store, the DuckDB file, new exports or the logs; re-ingesting them is rejected."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import String, cast, column, inspect, or_, select, table

from tierwise.api.app import create_app
from tierwise.core.settings import ModelSettings, Settings, StoreSettings
from tierwise.services.access import Principal
from tierwise.services.dashboard import Dashboard
from tierwise.services.erase import ERASED_SUBJECT
from tierwise.services.exports import export_customers
from tierwise.services.generate import generate
from tierwise.services.ingest import ingest
from tierwise.services.run import run
from tierwise.services.serving import CustomerFilter, Store, add_user, opened_store
from tierwise.store.audit import verify_chain

CANARY = {"姓名": "金丝雀测试员", "手机号": "13912340987", "邮箱": "canary.erase@example.org"}
CANARY_STRINGS = [v.encode() for v in CANARY.values()]
ADMIN = Principal(0, "root", "root", "admin", None)


def plant_canary(customers_csv: Path) -> str:
    """Give the first customer the canary's name, phone and e-mail; returns their id."""
    with customers_csv.open(encoding="gb18030", newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0].update(CANARY)
    write_customers(customers_csv, rows)
    return rows[0]["客户编号"]


def write_customers(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="gb18030", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def hits_in_files(*paths: Path) -> list[str]:
    """Which files (with their WAL/journal siblings) still hold a canary string as bytes."""
    found = []
    for path in paths:
        for file in path.parent.glob(path.name + "*"):
            if file.suffix == ".lock":
                continue
            data = file.read_bytes()
            found += [f"{file.name}: {s.decode()}" for s in CANARY_STRINGS if s in data]
    return found


def store_hits(store: Store) -> list[str]:
    """Canary strings in any column of any store table, searched through SQL."""
    inspector = inspect(store.engine)
    tables = {n: [c["name"] for c in inspector.get_columns(n)] for n in inspector.get_table_names()}
    found = []
    with store.read() as session:
        for name, columns in tables.items():
            t = table(name, *[column(c) for c in columns])
            for value in CANARY.values():
                condition = or_(*[cast(t.c[c], String).contains(value) for c in columns])
                if session.execute(select(t).where(condition).limit(1)).first():
                    found.append(f"{name}: {value}")
    return found


def warehouse_hits(path: Path) -> list[str]:
    """Canary strings in any column of any warehouse table, searched through SQL."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        found = []
        for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
            for value in CANARY.values():
                sql = f'SELECT count(*) FROM "{name}" t WHERE CAST(t AS VARCHAR) LIKE ?'
                if con.execute(sql, [f"%{value}%"]).fetchall()[0][0]:
                    found.append(f"{name}: {value}")
        return found
    finally:
        con.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def pipeline(request, tmp_path) -> tuple[Settings, str]:
    generated = generate(300, tmp_path / "data", seed=11)
    canary_id = plant_canary(tmp_path / "data" / "customers.csv")
    settings = Settings.load(generated.config).model_copy(
        update={"models": ModelSettings(enabled=False)}
    )
    if request.param == "postgresql":
        databases = request.getfixturevalue("postgres_databases")
        url = databases.url_of(databases.create())
        settings = settings.model_copy(update={"store": StoreSettings(url=url)})
    report = ingest(settings)
    assert not report.failed
    run(settings)
    return settings, canary_id


def test_erased_canary_leaves_no_trace_and_cannot_come_back(pipeline, tmp_path, caplog):
    settings, canary_id = pipeline
    caplog.set_level(logging.DEBUG)
    warehouse = settings.resolve(settings.warehouse.path)
    sqlite_store = settings.root / "tierwise.db"
    uses_sqlite = settings.store.url.startswith("sqlite")
    with opened_store(settings) as store:
        add_user(store, "root", "admin")
        # the canary is everywhere before: otherwise the checks below could not fail
        before = export_customers(
            store, ADMIN, CustomerFilter(), purpose="analysis", out=tmp_path / "a.csv"
        )
        assert all(s in (tmp_path / "a.csv").read_bytes() for s in CANARY_STRINGS)
        assert len(warehouse_hits(warehouse)) >= 3
        assert len(store_hits(store)) >= 3
        assert len(hits_in_files(warehouse)) == 3
        if uses_sqlite:
            assert hits_in_files(sqlite_store)

    app = create_app(settings)
    with TestClient(app) as client, opened_store(settings) as other_store:
        elsewhere = Dashboard(settings, other_store)  # e.g. a second server process
        token = client.post(
            "/api/v1/auth/tokens",
            json={"name": "t"},
            headers=_session_headers(client, app.state.store),
        ).json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert client.get(f"/api/v1/customers/{canary_id}", headers=bearer).status_code == 200
        before_kpis = overview_customers(client, bearer)
        assert customers_kpi(elsewhere) == before_kpis
        r = client.delete(f"/api/v1/customers/{canary_id}", headers=bearer)
        assert r.status_code == 200, r.text
        receipt = r.json()
        assert receipt["customer_id"] == canary_id
        assert receipt["warehouse_rows"]["customers"] == 1
        assert receipt["store_rows"]["published_profiles"] >= 1
        assert receipt["suppressed_contacts"] == 2
        assert client.get(f"/api/v1/customers/{canary_id}", headers=bearer).status_code == 404
        assert overview_customers(client, bearer) == before_kpis - 1  # not a stale kept total
        assert customers_kpi(elsewhere) == before_kpis - 1  # the request cannot reach it
        assert client.delete(f"/api/v1/customers/{canary_id}", headers=bearer).status_code == 404
        store = app.state.store
        assert store_hits(store) == []
        with store.read() as session:
            assert verify_chain(session) is None
        after = export_customers(
            store, ADMIN, CustomerFilter(), purpose="analysis", out=tmp_path / "b.csv"
        )
        assert after.rows == before.rows - 1

    assert warehouse_hits(warehouse) == []
    assert hits_in_files(warehouse) == []
    if uses_sqlite:
        assert hits_in_files(sqlite_store) == []
    assert not any(s in (tmp_path / "b.csv").read_bytes() for s in CANARY_STRINGS)
    assert not any(v in caplog.text for v in CANARY.values())

    # a new customers export from the source system still holds the canary: rejected, not stored
    customers_csv = settings.root / "customers.csv"
    with customers_csv.open(encoding="gb18030", newline="") as f:
        rows = list(csv.DictReader(f))
    newcomer = dict(rows[1], 客户编号="N0001", 手机号="13700001111", 邮箱="new@example.org")
    returning = dict(rows[2], 客户编号="N0002", 手机号="+86 139-1234-0987")  # the canary's phone
    write_customers(customers_csv, [*rows, newcomer, returning])
    report = ingest(settings, tables=["customers"])
    (loaded,) = report.files
    assert loaded.reconciles
    assert loaded.accepted == 1  # the newcomer; the unchanged rows merge as duplicates
    assert loaded.reasons == {ERASED_SUBJECT: 2}  # the canary's own row and the reused phone
    con = duckdb.connect(str(warehouse), read_only=True)
    rejects = con.execute(
        "SELECT line, column_name, raw, value FROM _quarantine WHERE reason = ? ORDER BY line",
        [ERASED_SUBJECT],
    ).fetchall()
    con.close()
    assert [(c, raw, v) for _, c, raw, v in rejects] == [
        ("customer_id", None, None),
        ("phone", None, None),
    ]
    assert rejects[0][0] == 2 and rejects[1][0] == len(rows) + 3  # file lines, header is 1
    assert warehouse_hits(warehouse) == []


def customers_kpi(dashboard: Dashboard) -> float:
    return next(k.value for k in dashboard.overview(ADMIN).kpis if k.key == "customers")


def overview_customers(client: TestClient, bearer: dict[str, str]) -> float:
    r = client.get("/api/v1/dashboard/overview", headers=bearer)
    assert r.status_code == 200, r.text
    return next(k["value"] for k in r.json()["kpis"] if k["key"] == "customers")


def _session_headers(client: TestClient, store: Store) -> dict[str, str]:
    from tierwise.services.serving import reset_password

    password = reset_password(store, "root")
    r = client.post("/api/v1/auth/login", json={"username": "root", "password": password})
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf_token"]}


def test_only_admins_may_erase_and_refusals_are_audited(tmp_path):
    """Role-level: every other role gets 403 whatever the target, and the refusal is logged."""
    from tests.api.world import World, seed

    from tierwise.store.audit import audit_entries

    settings = Settings(root=tmp_path, store=StoreSettings(url="sqlite:///store.db"))
    app = create_app(settings)
    with TestClient(app) as client:
        world = World(app, client)
        world.tokens = seed(world.store)
        for username in ("ana", "mia", "ag1"):
            for target in ("C00001", "C99999"):
                r = client.delete(f"/api/v1/customers/{target}", headers=world.bearer(username))
                assert r.status_code == 403, r.text
        assert client.delete("/api/v1/customers/C00001").status_code == 401
        with world.store.read() as session:
            denied = [e for e in audit_entries(session) if e.action == "denied"]
        assert len(denied) == 6
        assert {e.detail["attempted"] for e in denied} == {"customer_erase"}
        r = client.delete("/api/v1/customers/C99999", headers=world.bearer("root"))
        assert r.status_code == 404
        r = client.delete("/api/v1/customers/C00001", headers=world.bearer("root"))
        assert r.status_code == 200
        assert r.json()["store_rows"]["published_profiles"] == 2  # both retained runs
