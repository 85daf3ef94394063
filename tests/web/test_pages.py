"""The pages over HTTP (no browser): sign-in with CSRF, redirects, languages, security headers,
scope and masking, the JSON twins, and the offline report of `tierwise report`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from fastapi.testclient import TestClient
from tests.web.conftest import AGENT, OTHER_AGENT, Demo
from typer.testing import CliRunner

from tierwise.api.app import create_app
from tierwise.cli.main import app as cli
from tierwise.web.i18n import translations

PAGES = ("/", "/segments", "/lifecycle", "/value", "/customers", "/data", "/runs")
TRANSLATED = {
    "/": ("Overview", "总览"),
    "/segments": ("RFM grid", "RFM 网格"),
    "/lifecycle": ("Cohort retention", "同期群留存"),
    "/value": ("Customer lifetime value", "客户终身价值"),
    "/customers": ("Days since last order", "距上次下单天数"),
    "/data": ("Ingest ledger", "导入台账"),
    "/runs": ("Published runs", "已发布的运行"),
}
WEB = Path(__file__).resolve().parents[2] / "src" / "tierwise" / "web"


@pytest.fixture(scope="module")
def app(demo: Demo) -> Iterator[TestClient]:
    application = create_app(demo.settings)
    with TestClient(application) as client:
        yield client


def sign_in(app: TestClient, demo: Demo, username: str) -> TestClient:
    client = TestClient(app.app)
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    answer = client.post(
        "/login",
        data={"username": username, "password": demo.passwords[username],
              "csrf_token": token.group(1), "next": "/customers?abc=A"},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 303 and answer.headers["location"] == "/customers?abc=A"
    return client


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found
    return found.group(1)


def test_pages_send_strangers_to_the_sign_in_form(app: TestClient):
    for path in (*PAGES, "/customers/0000001", "/report.html"):
        answer = app.get(path + "?x=1", follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next=%2F")
    assert app.get("/api/v1/dashboard/overview").status_code == 401


def test_sign_in_needs_the_form_token_and_the_password(app: TestClient, demo: Demo):
    client = TestClient(app.app)
    client.get("/login")
    no_token = client.post(
        "/login", data={"username": "admin", "password": demo.passwords["admin"]}
    )
    assert no_token.status_code == 403 and "tierwise_session" not in client.cookies
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    wrong = client.post(
        "/login",
        data={"username": "admin", "password": "nope", "csrf_token": token.group(1)},
    )
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    assert "tierwise_session" not in client.cookies


def test_next_never_leaves_the_site(app: TestClient, demo: Demo):
    client = TestClient(app.app)
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        page = client.get("/login", params={"next": target})
        assert 'name="next" value="/"' in page.text, target
        answer = client.get("/lang/zh_CN", params={"next": target}, follow_redirects=False)
        assert answer.headers["location"] == "/"


def test_every_page_in_both_languages_with_strict_scripts(app: TestClient, demo: Demo):
    client = sign_in(app, demo, "admin")
    for lang, index in (("en", 0), ("zh_CN", 1)):
        client.cookies.set("tierwise_lang", lang)
        for path in PAGES:
            page = client.get(path)
            assert page.status_code == 200, (lang, path)
            assert TRANSLATED[path][index] in page.text, (lang, path)
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert page.headers["x-frame-options"] == "DENY"
            scripts = re.findall(r"<script([^>]*)>", page.text)
            assert all("src=" in s or 'type="application/json"' in s for s in scripts), path
            assert ('data-role="admin"' in page.text) and (
                "Administrator" if lang == "en" else "管理员"
            ) in page.text
    client.cookies.delete("tierwise_lang")
    chinese = client.get("/segments", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert "冠军客户" in chinese.text and 'lang="zh-CN"' in chinese.text
    english = client.get("/segments", headers={"Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"})
    assert "Champions" in english.text
    switched = client.get("/lang/zh_CN", params={"next": "/value"}, follow_redirects=False)
    assert switched.headers["location"] == "/value"
    assert switched.cookies["tierwise_lang"] == "zh_CN"


def test_pages_show_what_their_json_twins_return(app: TestClient, demo: Demo):
    client = sign_in(app, demo, AGENT)
    overview = client.get("/api/v1/dashboard/overview").json()
    customers = int(next(k for k in overview["kpis"] if k["key"] == "customers")["value"])
    listed = client.get("/api/v1/dashboard/customers", params={"page_size": 200}).json()
    assert listed["total"] == customers
    page = client.get("/customers", params={"page_size": 200})
    assert f"{customers:,} customers" in page.text
    for item in listed["items"]:
        assert item["account_manager"] == AGENT
        assert f'href="/customers/{item["customer_id"]}"' in page.text
    for path in ("segments", "lifecycle", "value", "runs"):
        assert client.get(f"/api/v1/dashboard/{path}").status_code == 200
    assert client.get("/api/v1/dashboard/data").status_code == 403
    assert client.get("/data").status_code == 403


def test_an_agent_gets_404_for_someone_elses_customer_and_masked_contacts(
    app: TestClient, demo: Demo
):
    other = sign_in(app, demo, OTHER_AGENT)
    theirs = other.get("/api/v1/dashboard/customers").json()["items"][0]["customer_id"]
    agent = sign_in(app, demo, AGENT)
    page = agent.get(f"/customers/{theirs}")
    assert page.status_code == 404 and "not yours to see" in page.text
    assert agent.get(f"/api/v1/dashboard/customers/{theirs}").status_code == 404
    items = agent.get("/api/v1/dashboard/customers").json()["items"]
    mine = next(c for c in items if c["phone"])
    detail = agent.get(f"/customers/{mine['customer_id']}")
    assert detail.status_code == 200 and "****" in mine["phone"]
    assert mine["phone"] in detail.text and "Contact data is masked" in detail.text
    admin = sign_in(app, demo, "admin")
    full = admin.get(f"/api/v1/dashboard/customers/{mine['customer_id']}").json()
    assert full["profile"]["phone"] not in detail.text


def test_sign_out_needs_the_session_token(app: TestClient, demo: Demo):
    client = sign_in(app, demo, "analyst")
    page = client.get("/runs")
    refused = client.post("/logout", data={"csrf_token": "forged"}, follow_redirects=False)
    assert refused.headers["location"] == "/"
    assert client.get("/runs", follow_redirects=False).status_code == 200
    done = client.post("/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert done.headers["location"] == "/login"
    assert client.get("/runs", follow_redirects=False).status_code == 303


def test_heatmap_cells_link_to_their_customer_list(app: TestClient, demo: Demo):
    client = sign_in(app, demo, "admin")
    page = client.get("/segments")
    links = set(re.findall(r"/customers\?r=(\d)\\u0026f=(\d)\\u0026segment=(\w+)", page.text))
    assert len(links) == 25
    listed = client.get("/customers", params={"r": 5, "f": 5, "segment": "champions"})
    assert listed.status_code == 200 and "R5" in listed.text and "F5" in listed.text
    bad = client.get("/customers", params={"r": 9})
    assert bad.status_code == 400


def test_static_files_and_plotly_from_the_installed_package(app: TestClient):
    plotly = app.get("/static/vendor/plotly.min.js")
    assert plotly.status_code == 200 and plotly.text.lstrip().startswith("/**")
    assert "plotly.js v" in plotly.text[:200]
    assert app.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert app.get("/static/../routes.py").status_code == 404


def test_report_command_writes_an_offline_file(demo: Demo, tmp_path: Path):
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        cli, ["--config", str(demo.settings.root / "tierwise.toml"), "report", "--out", str(out),
              "--lang", "zh_CN"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    html = out.read_text("utf-8")
    assert "客户分级分类报告" in html and "冠军客户" in html
    assert not re.search(r"<(script|link|img)[^>]*(src|href)=", html)  # everything inlined
    assert html.count('type="application/json"') >= 10
    assert "plotly.js v" in html


def test_every_message_is_translated():
    """Each message of the templates and Python code has a Chinese translation."""
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    options = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found = {
        message if isinstance(message, str) else message[0]
        for _, _, message, *_ in extract_from_dir(
            str(WEB), method_map, options_map=options, keywords={"_": None, "N_": None}
        )
    }
    zh = translations("zh_CN")
    missing = [m for m in sorted(found) if zh.gettext(m) == m and not m.isupper()]
    assert len(found) > 150 and not missing
