"""Customer exports (API and CLI, one service) and `tierwise audit verify`, on SQLite and
PostgreSQL: scope, masking, formula neutralisation, consent and suppression, audit."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from tests.api.conftest import BACKENDS, store_settings
from tests.api.test_api_customers import all_ids
from tests.api.world import N_CUSTOMERS, World, profile, seed

from tierwise.api.app import create_app
from tierwise.cli.audit import verify
from tierwise.cli.exports import export_customers
from tierwise.cli.main import state
from tierwise.core.settings import Settings
from tierwise.services.serving import opened_store
from tierwise.store.audit import audit, audit_entries
from tierwise.store.models import AuditEntry
from tierwise.store.publish import publish_run
from tierwise.store.suppression import erase_customer, record_consent, suppress

API = "/api/v1"
FORMULA = '=HYPERLINK("http://evil.example","点我")'
INJECTED = {
    **profile(1),
    "customer_id": "C90000",
    "name": FORMULA,
    "account_manager": "ag1",
    "consent_marketing": True,
}
PROFILES = [profile(i) for i in range(N_CUSTOMERS)] + [INJECTED]
CONSENTING = {p["customer_id"] for p in PROFILES if p["consent_marketing"]}
OPTED_OUT_PHONE, OPTED_OUT_EMAIL, WITHDRAWN, ERASED = "C00002", "C00004", "C00006", "C00008"
GRANTED = "C00001"
"""Consenting in the source (even numbers) but opted out by phone, by e-mail, withdrawn by a
consent event, erased; and one not consenting in the source who granted it later."""


@pytest.fixture(scope="module", params=BACKENDS)
def ex(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = store_settings(request, tmp_path_factory.mktemp("exports"))
    app = create_app(settings)
    with TestClient(app) as client:
        w = World(app, client)
        w.tokens = seed(w.store)
        publish_run(w.store.write, "run-3", date(2025, 3, 31), PROFILES)
        by_id = {p["customer_id"]: p for p in PROFILES}
        earlier = datetime(2025, 1, 1, tzinfo=UTC)
        with w.store.write.begin() as s:
            suppress(s, "phone", "+86 " + by_id[OPTED_OUT_PHONE]["phone"], "opted_out")
            suppress(s, "email", by_id[OPTED_OUT_EMAIL]["email"].upper(), "opted_out")
            record_consent(s, WITHDRAWN, "marketing", True, "crm", at=earlier)
            record_consent(s, WITHDRAWN, "marketing", False, "crm", at=earlier + timedelta(1))
            record_consent(s, GRANTED, "marketing", True, "crm")
            erase_customer(s, ERASED, actor="root")
        yield w


def settings_of(w: World) -> Settings:
    settings: Settings = w.app.state.settings
    return settings


def download(w: World, username: str, **params) -> tuple[bytes, list[dict[str, str]]]:
    """The file's bytes and its rows (xlsx cells as text)."""
    r = w.client.get(f"{API}/exports/customers", params=params, headers=w.bearer(username))
    assert r.status_code == 200, r.text
    assert r.headers["X-Content-SHA256"] == hashlib.sha256(r.content).hexdigest()
    if params.get("format") == "xlsx":
        sheet = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True).active
        header, *cells = sheet.iter_rows(values_only=True)
        rows = [
            {k: "" if v is None else str(v) for k, v in zip(header, c, strict=True)} for c in cells
        ]
        return r.content, rows
    return r.content, list(csv.DictReader(io.StringIO(r.content.decode())))


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("username", ["root", "ag1"])
def test_formula_cells_are_neutralised(ex: World, fmt: str, username: str):
    _, rows = download(ex, username, format=fmt)
    (row,) = [r for r in rows if r["customer_id"] == "C90000"]
    assert row["name"].startswith("'=")
    if username == "root":
        assert row["name"] == "'" + FORMULA
    assert not any(v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_marketing_exports_only_consenting_unsuppressed_customers(ex: World, fmt: str):
    _, analysis = download(ex, "root", format=fmt, purpose="analysis")
    _, marketing = download(ex, "root", format=fmt, purpose="marketing")
    everyone = {p["customer_id"] for p in PROFILES} - {ERASED}
    assert {r["customer_id"] for r in analysis} == everyone
    blocked = {OPTED_OUT_PHONE, OPTED_OUT_EMAIL, WITHDRAWN, ERASED}
    assert {r["customer_id"] for r in marketing} == (CONSENTING - blocked) | {GRANTED}


@pytest.mark.parametrize("purpose", ["analysis", "marketing"])
def test_an_agent_exports_exactly_the_customers_it_lists(ex: World, purpose: str):
    _, rows = download(ex, "ag1", purpose=purpose, stage="active")
    listed = set(all_ids(ex, ex.bearer("ag1"), stage="active"))
    marketable = (CONSENTING | {GRANTED}) - {OPTED_OUT_PHONE, OPTED_OUT_EMAIL, WITHDRAWN}
    expected = listed if purpose == "analysis" else listed & marketable
    assert listed and {r["customer_id"] for r in rows} == expected
    assert all(r["phone"].startswith("138****") for r in rows)  # masked without pii:read


def test_every_export_is_audited_without_personal_data(ex: World):
    content, rows = download(ex, "root", format="csv", purpose="marketing", tier="high", q="王")
    with ex.store.read() as session:
        entry = audit_entries(session, action="export", actor="root", limit=1)[0]
    assert entry.target == "customers"
    assert entry.detail["rows"] == len(rows) > 0
    assert entry.detail["sha256"] == hashlib.sha256(content).hexdigest()
    assert entry.detail["purpose"] == "marketing" and entry.detail["format"] == "csv"
    assert entry.detail["filters"] == {"tier": "high"} and entry.detail["searched"] is True
    assert entry.detail["masked"] is False and "name" in entry.detail["fields"]
    logged = str(entry.detail)
    assert "王" not in logged
    assert not any(r[f] in logged for r in rows for f in ("customer_id", "phone", "email"))


def test_cli_export_is_the_admin_export_audited_as_cli(
    ex: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    settings = settings_of(ex)
    toml = settings.root / "tierwise.toml"
    toml.write_text(f'[store]\nurl = "{settings.store.url}"\n')
    monkeypatch.setattr(state, "config", toml)
    out = tmp_path / "out" / "marketing.xlsx"
    export_customers(out_file=out, purpose="marketing", segment=None, class8=None, abc=None,
                     tier=None, stage=None, churn_risk=None, q=None)  # fmt: skip
    sheet = openpyxl.load_workbook(out, read_only=True).active
    from_cli = {row[0] for row in sheet.iter_rows(min_row=2, values_only=True)}
    _, from_api = download(ex, "root", format="xlsx", purpose="marketing")
    assert from_cli == {r["customer_id"] for r in from_api}
    with ex.store.read() as session:
        entry = audit_entries(session, action="export", actor="cli", limit=1)[0]
    assert entry.detail["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert entry.detail["masked"] is False
    assert not list(out.parent.glob("*.partial*"))


def test_exports_refuse_unknown_formats_and_anonymous_callers(ex: World):
    r = ex.client.get(f"{API}/exports/customers", params={"format": "json"},
                      headers=ex.bearer("root"))  # fmt: skip
    assert r.status_code == 422
    assert ex.client.get(f"{API}/exports/customers").status_code == 401


def test_audit_verify_reports_the_first_edited_row(
    empty_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    with opened_store(empty_settings) as store, store.write.begin() as session:
        ids = [audit(session, "root", "login", f"t{i}").id for i in range(3)]
    toml = empty_settings.root / "tierwise.toml"
    toml.write_text(f'[store]\nurl = "{empty_settings.store.url}"\n')
    monkeypatch.setattr(state, "config", toml)
    verify()
    assert capsys.readouterr().out.strip() == "OK"

    with opened_store(empty_settings) as store, store.write.begin() as session:
        session.execute(
            text("UPDATE audit_log SET actor = 'mallory' WHERE id = :id"), {"id": ids[1]}
        )
        assert session.scalar(select(AuditEntry.actor).where(AuditEntry.id == ids[1]))
    with pytest.raises(typer.Exit) as exited:
        verify()
    assert exited.value.exit_code == 1
    assert f"row {ids[1]}" in capsys.readouterr().err
