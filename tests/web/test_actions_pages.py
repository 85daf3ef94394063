"""The action pages over HTTP (no browser): the tasks board and its outcome form, complaints with
their status form and satisfaction charts, the playbook with customers per rule, and campaigns
with the effect report; each page shows what its /api/v1 twin returns, under the same roles and
scope, in both languages, and the forms need the session's CSRF token.

The demo is copied first: the tasks, tickets and campaigns made here stay out of the shared one.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from tests.web.conftest import AGENT, OTHER_AGENT, Demo

from tierwise.api.app import create_app
from tierwise.core.settings import Settings
from tierwise.services import campaigns, complaints, tasks
from tierwise.services.access import Principal
from tierwise.services.serving import CustomerFilter, opened_store
from tierwise.store.publish import current_run

ADMIN = Principal(0, "admin", "admin", "admin", None)
MANAGER = Principal(0, "boss", "boss", "manager", "east")
PAGES = {
    "/tasks": ("Follow-up tasks", "回访任务"),
    "/complaints": ("Customer satisfaction", "客户满意度"),
    "/playbook": ("Would get a follow-up task", "将生成回访任务"),
    "/campaigns": ("target list, random control group, effect", "目标名单、随机对照组与效果"),
}


@dataclass
class ActionWorld:
    """A copy of the demo with churn tasks, escalated overdue ones, imported complaint tickets
    and campaigns: one ended, one running (an interim report), one planned, one a manager's."""

    demo: Demo
    settings: Settings
    ended: int
    running: int
    planned: int
    managers: int


def build_action_world(demo: Demo, directory: Path) -> ActionWorld:
    root = directory / "actions"
    shutil.copytree(demo.settings.root, root, ignore=shutil.ignore_patterns("*.lock"))
    settings = Settings.load(root / "tierwise.toml")
    today = date.today()
    with opened_store(settings) as store:
        assert tasks.create_churn_tasks(store, settings, ADMIN).created > 0
        assert complaints.import_complaints(settings, store, ADMIN).created > 0
        assert tasks.escalate_overdue(store, settings, ADMIN).escalated  # imported, long due
        with store.read() as session:
            run = current_run(session)
            assert run is not None
            last_day = min(run.as_of, today - timedelta(days=1))

        def campaign(viewer: Principal, name: str, starts: date, ends: date, **kw: object) -> int:
            spec = campaigns.CampaignSpec(name, "coupon 20", starts, ends, seed=name, **kw)
            return campaigns.create_campaign(store, viewer, spec).id

        ended = campaign(
            ADMIN,
            "win-back spring",
            last_day - timedelta(days=89),
            last_day,
            purpose="service",
            control_share=0.2,
            cost_per_contact=2.0,
            margin_rate=0.4,
        )
        running = campaign(ADMIN, "vip care", last_day - timedelta(days=29), today + timedelta(30))
        planned = campaign(ADMIN, "autumn", today + timedelta(days=10), today + timedelta(40))
        managers = campaign(
            MANAGER,
            "east champions",
            last_day - timedelta(days=59),
            last_day,
            where=CustomerFilter(segment="champions"),
            purpose="service",
        )
    return ActionWorld(demo, settings, ended, running, planned, managers)


@pytest.fixture(scope="module")
def world(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> ActionWorld:
    return build_action_world(demo, tmp_path_factory.mktemp("action-pages"))


@pytest.fixture(scope="module")
def app(world: ActionWorld) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings)) as client:
        yield client


def sign_in(app: TestClient, world: ActionWorld, username: str) -> TestClient:
    client = TestClient(app.app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    answer = client.post(
        "/login",
        data={
            "username": username,
            "password": world.demo.passwords[username],
            "csrf_token": token.group(1),
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    return client


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found
    return found.group(1)


def number(text: str) -> int:
    return int(text.replace(",", ""))


def board(html: str) -> dict[str, tuple[int, list[int]]]:
    """Each column of the board: (its count badge, the task ids of its cards)."""
    columns = {}
    for part in html.split('data-column="')[1:]:
        key = part[: part.index('"')]
        count = re.search(r'<span class="badge count">([\d,]+)</span>', part)
        assert count
        columns[key] = (
            number(count.group(1)),
            [int(i) for i in re.findall(r'data-task="(\d+)"', part)],
        )
    return columns


def test_action_pages_send_strangers_to_the_sign_in_form(app: TestClient):
    for path in ("/tasks", "/tasks/1", "/complaints", "/playbook", "/campaigns", "/campaigns/1"):
        answer = app.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?"), path
    posted = app.post(
        "/tasks/1/outcome", data={"outcome": "reached", "next": "/tasks"}, follow_redirects=False
    )
    assert posted.status_code == 303 and posted.headers["location"] == "/login?next=%2Ftasks"


def test_every_action_page_in_both_languages_with_role_aware_links(
    app: TestClient, world: ActionWorld
):
    admin = sign_in(app, world, "admin")
    paths = [*PAGES, "/tasks?status=open", f"/campaigns/{world.ended}", "/playbook?rule=vip_care"]
    for lang, index in (("en", 0), ("zh_CN", 1)):
        admin.cookies.set("tierwise_lang", lang)
        for path in paths:
            page = admin.get(path)
            assert page.status_code == 200, (lang, path)
            scripts = re.findall(r"<script([^>]*)>", page.text)
            assert all("src=" in s or 'type="application/json"' in s for s in scripts), path
            for link in PAGES:
                assert f'<a href="{link}"' in page.text, (path, link)
            if path in PAGES:
                assert PAGES[path][index] in page.text, (lang, path)
    assert "已挽回" in admin.get("/tasks").text  # the outcome choices, translated
    agent = sign_in(app, world, AGENT)
    page = agent.get("/tasks")
    assert '<a href="/tasks" class="active"' in page.text
    assert '<a href="/campaigns"' not in page.text  # agents work no campaigns
    assert agent.get("/campaigns").status_code == 403


def test_the_board_shows_what_the_tasks_api_returns(app: TestClient, world: ActionWorld):
    agent = sign_in(app, world, AGENT)
    columns = board(agent.get("/tasks").text)
    for column, statuses in (
        ("open", ["open"]),
        ("escalated", ["escalated"]),
        ("closed", ["done", "cancelled"]),
    ):
        listed = [
            agent.get("/api/v1/tasks", params={"status": s, "page_size": 200}).json()
            for s in statuses
        ]
        count, ids = columns[column]
        assert count == sum(page["total"] for page in listed), column
        api_ids = {t["id"] for page in listed for t in page["items"]}
        assert set(ids) <= api_ids and len(ids) == min(count, 20)
    assert columns["open"][0] > 20 and columns["escalated"][0] > 0
    overdue = agent.get("/tasks", params={"overdue": "true", "status": "escalated"}).text
    late = agent.get("/api/v1/tasks", params={"overdue": True, "status": "escalated"}).json()
    cards = re.findall(r'class="task-card status-(\w+)( overdue)?" id="task-(\d+)"', overdue)
    assert {int(c[2]) for c in cards} == {t["id"] for t in late["items"]} and late["total"] > 0
    assert all(c[0] == "escalated" and c[1] == " overdue" for c in cards)
    assert 'name="assignee"' not in overdue
    manager = sign_in(app, world, "boss")
    mine = manager.get("/tasks", params={"assignee": AGENT, "status": "open"}).text
    assert 'name="assignee"' in mine
    api = manager.get("/api/v1/tasks", params={"assignee": AGENT, "status": "open"}).json()
    assert f"{api['total']:,} tasks" in mine and api["total"] > 0


def test_an_agent_records_an_outcome_with_the_session_token(app: TestClient, world: ActionWorld):
    agent = sign_in(app, world, AGENT)
    page = agent.get("/tasks", params={"overdue": "false"})
    task_id = board(page.text)["open"][1][0]
    form = {"outcome": "won_back", "note": "下单了 — ordered again", "next": "/tasks?overdue=false"}
    for token in (None, "forged"):
        refused = agent.post(
            f"/tasks/{task_id}/outcome", data=form | ({"csrf_token": token} if token else {})
        )
        assert refused.status_code == 403 and "Reload the page" in refused.text
    bad = agent.post(
        f"/tasks/{task_id}/outcome",
        data=form | {"outcome": "maybe", "csrf_token": csrf_of(page.text)},
    )
    assert bad.status_code == 400 and "Choose the outcome" in bad.text
    assert agent.get(f"/api/v1/tasks/{task_id}").json()["status"] == "open"
    done = agent.post(
        f"/tasks/{task_id}/outcome",
        data=form | {"csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/tasks?overdue=false"
    task = agent.get(f"/api/v1/tasks/{task_id}").json()
    assert (task["status"], task["outcome"], task["closed_by"]) == ("done", "won_back", AGENT)
    assert task["note"] == "下单了 — ordered again"
    after = board(agent.get("/tasks", params={"overdue": "false"}).text)
    assert task_id in after["closed"][1] and task_id not in after["open"][1]
    detail = agent.get(f"/tasks/{task_id}").text
    assert "Won back" in detail and "下单了 — ordered again" in detail
    assert f"/tasks/{task_id}/outcome" not in detail  # a closed task has no form
    again = agent.post(f"/tasks/{task_id}/outcome", data=form | {"csrf_token": csrf_of(page.text)})
    assert again.status_code == 409 and "already done" in again.text
    away = agent.post(
        f"/tasks/{task_id}/outcome",
        data=form | {"csrf_token": csrf_of(page.text), "next": "//evil.example"},
        follow_redirects=False,
    )
    assert away.status_code == 409  # refused before any redirect; a redirect would go home:
    next_task = after["open"][1][0]
    home = agent.post(
        f"/tasks/{next_task}/outcome",
        data=form | {"csrf_token": csrf_of(page.text), "next": "//evil.example"},
        follow_redirects=False,
    )
    assert home.status_code == 303 and home.headers["location"] == "/"


def hidden_from(agent: TestClient, other: TestClient, kind: str, **params: str) -> int:
    """The id of one of `other`'s records (tasks, complaints) the agent may not see."""
    for item in other.get(f"/api/v1/{kind}", params=params | {"page_size": "200"}).json()["items"]:
        if agent.get(f"/api/v1/{kind}/{item['id']}").status_code == 404:
            return int(item["id"])
    raise AssertionError(f"every {kind} of the other agent is visible")


def test_someone_elses_task_is_a_404_page(app: TestClient, world: ActionWorld):
    other = sign_in(app, world, OTHER_AGENT)
    agent = sign_in(app, world, AGENT)
    theirs = hidden_from(agent, other, "tasks", status="open")
    page = agent.get(f"/tasks/{theirs}")
    assert page.status_code == 404 and "not yours to see" in page.text
    tasks_page = agent.get("/tasks")
    assert f'data-task="{theirs}"' not in tasks_page.text
    posted = agent.post(
        f"/tasks/{theirs}/outcome", data={"outcome": "lost", "csrf_token": csrf_of(tasks_page.text)}
    )
    assert posted.status_code == 404
    assert other.get(f"/api/v1/tasks/{theirs}").json()["status"] == "open"
    for missing in ("999999", "abc", "0"):
        assert agent.get(f"/tasks/{missing}").status_code == 404


def test_complaints_page_lists_the_api_tickets_and_moves_one(app: TestClient, world: ActionWorld):
    agent = sign_in(app, world, AGENT)
    for params in ({}, {"breached": "true"}, {"unresolved": "true", "category": "other"}):
        page = agent.get("/complaints", params=params)
        api = agent.get("/api/v1/complaints", params=params | {"page_size": 200}).json()
        assert page.status_code == 200 and f"{api['total']:,} tickets" in page.text, params
        rows = re.findall(r'data-complaint="(\d+)" data-status="(\w+)"', page.text)
        assert rows == [(str(c["id"]), c["status"]) for c in api["items"][:50]]
        for c in api["items"][:50]:
            row = page.text.split(f'data-complaint="{c["id"]}"')[1].split("</tr>")[0]
            assert f"sla-{c['first_response_sla']}" in row.split('class="sla-resolution"')[0]
            assert f"sla-{c['resolution_sla']}" in row.split('class="sla-resolution"')[1]
    ticket = agent.get("/api/v1/complaints", params={"status": "open"}).json()["items"][0]
    page = agent.get("/complaints")
    moved = agent.post(
        f"/complaints/{ticket['id']}/status",
        data={
            "status": "responded",
            "csrf_token": csrf_of(page.text),
            "next": "/complaints?status=responded",
        },
        follow_redirects=False,
    )
    assert moved.status_code == 303 and moved.headers["location"] == "/complaints?status=responded"
    now = agent.get(f"/api/v1/complaints/{ticket['id']}").json()
    assert now["status"] == "responded" and now["first_response_at"]
    listed = agent.get("/complaints", params={"status": "responded"}).text
    assert f'data-complaint="{ticket["id"]}" data-status="responded"' in listed
    refused = agent.post(
        f"/complaints/{ticket['id']}/status",
        data={"status": "closed", "csrf_token": csrf_of(page.text)},
    )
    assert refused.status_code == 409  # responded -> closed skips resolving
    theirs = hidden_from(agent, sign_in(app, world, OTHER_AGENT), "complaints", status="open")
    hidden = agent.post(
        f"/complaints/{theirs}/status",
        data={"status": "resolved", "csrf_token": csrf_of(page.text)},
    )
    assert hidden.status_code == 404


def test_complaints_page_charts_nps_and_csat_like_the_feedback_api(
    app: TestClient, world: ActionWorld
):
    manager = sign_in(app, world, "boss")
    for by in ("rfm_segment", "value_tier"):
        page = manager.get("/complaints", params={"by": by})
        api = manager.get("/api/v1/feedback", params={"by": by}).json()["rows"]
        assert api and 'id="fig-feedback-segments"' in page.text
        table = page.text.split('id="feedback-segments"')[1].split("</table>")[0]
        nps = re.findall(r'<td class="num">[\d,]+</td><td class="num">([^<]+)</td>', table)
        assert nps == [f"{r['nps']:,.1f}" if r["nps"] is not None else "—" for r in api]
    months = manager.get("/api/v1/feedback", params={"by": "month"}).json()["rows"]
    figure = re.search(r'id="fig-feedback-months">(.*?)</script>', page.text, re.S)
    assert figure and all(r["key"] in figure.group(1) for r in months)
    assert manager.get("/complaints", params={"by": "nonsense"}).status_code == 400


def test_playbook_page_counts_the_viewers_customers_per_rule(app: TestClient, world: ActionWorld):
    agent = sign_in(app, world, AGENT)
    api = agent.get("/api/v1/playbook").json()
    page = agent.get("/playbook").text
    shown = re.findall(r'<tr data-rule="(\w+)"', page)
    assert shown == [r["name"] for r in api["rules"]]  # in order
    for rule in api["rules"]:
        row = page.split(f'<tr data-rule="{rule["name"]}"')[1].split("</tr>")[0]
        assert rule["when"] is None or str(escape(rule["when"])) in row
        assert re.search(
            rf'class="rule-customers" href="/playbook\?rule={rule["name"]}#customers">'
            rf"{rule['customers']:,}</a>",
            row,
        )
    chosen = max(api["rules"], key=lambda r: r["customers"])
    listed = agent.get("/playbook", params={"rule": chosen["name"], "page_size": 200}).text
    customers = agent.get(
        f"/api/v1/playbook/rules/{chosen['name']}/customers", params={"page_size": 200}
    ).json()
    section = listed.split('id="customers"')[1]
    assert f"{customers['total']:,} customers" in section
    ids = re.findall(r'<a href="/customers/(\w+)">', section)
    assert ids == [c["customer_id"] for c in customers["items"]] and ids
    assert agent.get("/playbook", params={"rule": "no_such_rule"}).status_code == 404


def test_campaign_pages_report_the_api_effect(app: TestClient, world: ActionWorld):
    admin = sign_in(app, world, "admin")
    listing = admin.get("/campaigns").text
    listed = admin.get("/api/v1/campaigns").json()
    assert re.findall(r'data-campaign="(\d+)"', listing) == [str(c["id"]) for c in listed]
    ended = admin.get(f"/campaigns/{world.ended}").text
    effect = admin.get(f"/api/v1/campaigns/{world.ended}/effect").json()
    report = effect["report"]
    assert effect["complete"] and 'data-interim="false"' in ended and 'id="fig-effect"' in ended
    revenue = report["incremental_revenue"]
    assert f"{revenue['estimate']:,.2f}" in ended.split('id="incremental-revenue"')[1][:300]
    assert f"{revenue['low']:,.2f}" in ended and f"{revenue['high']:,.2f}" in ended
    roi = report["roi"]
    assert f"{100 * roi['estimate']:,.1f}%" in ended.split('id="roi"')[1][:300]
    treated = report["retention"]["treated"]
    assert f"{100 * treated:,.2f}%" in ended.split('data-metric="retention"')[1][:300]
    figure = re.search(r'id="fig-effect">(.*?)</script>', ended, re.S)
    assert figure and figure.group(1).count('"error_y"') == 3
    running = admin.get(f"/campaigns/{world.running}")
    interim = admin.get(f"/api/v1/campaigns/{world.running}/effect", params={"interim": True})
    assert interim.json()["complete"] is False and 'data-interim="true"' in running.text
    assert admin.get(f"/api/v1/campaigns/{world.running}/effect").status_code == 409
    admin.cookies.set("tierwise_lang", "zh_CN")
    assert "中期" in admin.get(f"/campaigns/{world.running}").text
    planned = admin.get(f"/campaigns/{world.planned}").text
    assert 'id="not-started"' in planned and 'id="fig-effect"' not in planned
    narrow = admin.get(f"/campaigns/{world.ended}", params={"confidence": "0.9"}).text
    low = admin.get(f"/api/v1/campaigns/{world.ended}/effect", params={"confidence": 0.9}).json()
    assert f"{low['report']['incremental_revenue']['low']:,.2f}" in narrow
    assert admin.get(f"/campaigns/{world.ended}", params={"confidence": "2"}).status_code == 400
    manager = sign_in(app, world, "boss")
    assert re.findall(r'data-campaign="(\d+)"', manager.get("/campaigns").text) == [
        str(world.managers)
    ]
    assert manager.get(f"/campaigns/{world.managers}").status_code == 200
    assert manager.get(f"/campaigns/{world.ended}").status_code == 404
    agent = sign_in(app, world, AGENT)
    assert agent.get(f"/campaigns/{world.ended}").status_code == 403
