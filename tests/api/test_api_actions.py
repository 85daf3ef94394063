"""/api/v1 tasks, complaints, feedback, membership and campaigns on SQLite and PostgreSQL, under
the same role and scope rules as customers: checked against the world's independent oracle."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import BACKENDS, store_settings
from tests.api.world import N_CUSTOMERS, World, profile, seed, visible_to

from tierwise.api.app import create_app
from tierwise.core.settings import Settings, SourceSettings, TaskSettings
from tierwise.services.ingest import ingest
from tierwise.services.membership import evaluate_levels
from tierwise.services.warehouse import connect

API = "/api/v1"
PROFILES = [profile(i) for i in range(N_CUSTOMERS)]
AT_RISK = {p["customer_id"] for p in PROFILES if p["churn_risk"] in ("medium", "high")}
CONSENTING = {p["customer_id"] for p in PROFILES if p["consent_marketing"]}


def spend(i: int) -> float:
    """Each world customer's January 2025 spend: 0 to 24,000 in steps of 1,200."""
    return 1_200.0 * (i % 21)


def feedback_nps(i: int) -> int:
    return i % 11


@pytest.fixture(scope="module", params=BACKENDS)
def aw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The seeded world over a warehouse holding January orders and survey answers."""
    root = tmp_path_factory.mktemp("actions")
    base = store_settings(request, root)
    ids = [p["customer_id"] for p in PROFILES]
    pacsv.write_csv(
        pa.table(
            {
                "customer_id": ids,
                "order_id": [f"O{i}" for i in range(N_CUSTOMERS)],
                "ordered_at": [f"2025-01-{1 + i % 28:02d} 12:00:00" for i in range(N_CUSTOMERS)],
                "amount": [spend(i) for i in range(N_CUSTOMERS)],
            }
        ),
        root / "orders.csv",
    )
    pacsv.write_csv(
        pa.table(
            {
                "customer_id": ids,
                "responded_at": ["2025-02-01 10:00:00"] * N_CUSTOMERS,
                "nps": [feedback_nps(i) for i in range(N_CUSTOMERS)],
            }
        ),
        root / "feedback.csv",
    )
    settings = Settings(
        root=root,
        store=base.store,
        sources={
            "orders": SourceSettings(path="orders.csv"),
            "feedback": SourceSettings(path="feedback.csv"),
        },
        tasks=TaskSettings(churn_risks=["medium", "high"]),
    )
    ingest(settings)
    app = create_app(settings)
    with TestClient(app) as client:
        w = World(app, client)
        w.tokens = seed(w.store)
        con = connect(settings)
        try:
            evaluate_levels(settings, w.store, con, date(2025, 1, 31))
        finally:
            con.disconnect()
        r = client.post(f"{API}/tasks/churn", headers=w.bearer("root"))
        assert r.status_code == 200, r.text
        yield w


def get(w: World, username: str, path: str, **params):
    return w.client.get(f"{API}{path}", params=params, headers=w.bearer(username))


def post(w: World, username: str, path: str, body: dict | None = None, **params):
    return w.client.post(f"{API}{path}", json=body, params=params, headers=w.bearer(username))


def all_tasks(w: World, username: str, **params) -> list[dict]:
    r = get(w, username, "/tasks", page_size=200, **params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(body["items"])
    return body["items"]


@pytest.mark.parametrize("username", ["root", "ana", "mia", "nomad", "ag1", "ag2", "ag3"])
def test_the_tasks_board_shows_each_role_its_own_tasks(aw: World, username: str):
    seen = {t["customer_id"] for t in all_tasks(aw, username, reason="churn_risk")}
    assert seen == AT_RISK & visible_to(username)


def test_tasks_of_others_are_404_like_missing_ones(aw: World):
    theirs = all_tasks(aw, "ag2", reason="churn_risk")[0]
    hidden = get(aw, "ag1", f"/tasks/{theirs['id']}")
    missing = get(aw, "ag1", "/tasks/2000000")
    assert get(aw, "mia", f"/tasks/{theirs['id']}").status_code == 200  # ag2's manager
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == {"detail": f"no task {theirs['id']}"}
    r = post(aw, "ag1", f"/tasks/{theirs['id']}/outcome", {"outcome": "reached"})
    assert r.status_code == 404
    assert get(aw, "ag2", f"/tasks/{theirs['id']}").status_code == 200


def test_an_agent_records_outcomes_and_the_board_counts_follow(aw: World):
    mine = all_tasks(aw, "ag3", reason="churn_risk", status="open")[0]
    before = get(aw, "ag3", "/tasks").json()["counts"]
    r = post(aw, "ag3", f"/tasks/{mine['id']}/outcome", {"outcome": "won_back", "note": "回购"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["outcome"], r.json()["closed_by"]) == (
        "done",
        "won_back",
        "ag3",
    )
    after = get(aw, "ag3", "/tasks").json()["counts"]
    assert after["done"] == before["done"] + 1 and after["open"] == before["open"] - 1
    again = post(aw, "ag3", f"/tasks/{mine['id']}/outcome", {"outcome": "lost"})
    assert again.status_code == 409
    for bad in ({"outcome": "maybe"}, {"outcome": "lost", "status": "open"}):
        assert post(aw, "ag3", f"/tasks/{mine['id']}/outcome", bad).status_code == 422


def test_tasks_by_hand_respect_scope_and_dedupe(aw: World):
    own = sorted(visible_to("ag1"))[0]
    other = sorted(visible_to("ag2"))[0]
    first = post(aw, "ag1", "/tasks", {"customer_id": own, "reason": "birthday"})
    assert first.status_code == 201 and first.json()["created"] is True
    assert first.json()["task"]["assignee"] == "ag1"
    again = post(aw, "ag1", "/tasks", {"customer_id": own, "reason": "birthday"})
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["task"]["id"] == first.json()["task"]["id"]
    assert post(aw, "ag1", "/tasks", {"customer_id": other, "reason": "x"}).status_code == 404
    assigning = post(aw, "ag1", "/tasks", {"customer_id": own, "reason": "y", "assignee": "ag2"})
    assert assigning.status_code == 403


def test_escalation_and_churn_tasks_are_for_operators(aw: World):
    for path in ("/tasks/escalate", "/tasks/churn"):
        assert post(aw, "ag1", path).status_code == 403
        assert post(aw, "mia", path).status_code == 403
    r = post(aw, "ana", "/tasks/escalate")
    assert r.status_code == 200 and r.json() == {"escalated": []}  # nothing is due yet
    post(aw, "root", "/tasks/churn")  # reopens churn tasks other tests closed
    again = post(aw, "root", "/tasks/churn").json()
    assert again["created"] == 0 and again["customers"] == len(AT_RISK)


def test_cookie_sessions_need_csrf_to_change_tasks(aw: World):
    client, csrf = aw.session_client("ag1")
    own = sorted(visible_to("ag1"))[1]
    body = {"customer_id": own, "reason": "visit"}
    assert client.post(f"{API}/tasks", json=body).status_code == 403
    r = client.post(f"{API}/tasks", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201


def test_complaints_flow_and_sla_through_the_api(aw: World):
    own = sorted(visible_to("ag3"))[0]
    r = post(
        aw,
        "ag3",
        "/complaints",
        {"customer_id": own, "category": "delivery", "description": "破损"},
    )
    assert r.status_code == 201, r.text
    c = r.json()
    assert (c["status"], c["owner"], c["first_response_sla"]) == ("open", "ag3", "pending")
    assert c["task_id"] is not None
    task = get(aw, "ag3", f"/tasks/{c['task_id']}").json()
    assert (task["reason"], task["due_at"]) == ("complaint", c["resolution_due_at"])
    assert get(aw, "ag1", f"/complaints/{c['id']}").status_code == 404
    assert post(
        aw, "ag1", f"/complaints/{c['id']}/status", {"status": "responded"}
    ).status_code == (404)
    moved = post(aw, "ag3", f"/complaints/{c['id']}/status", {"status": "responded"})
    assert moved.status_code == 200 and moved.json()["first_response_sla"] == "met"
    assert post(aw, "ag3", f"/complaints/{c['id']}/status", {"status": "closed"}).status_code == 409
    done = post(
        aw, "ag3", f"/complaints/{c['id']}/status", {"status": "resolved", "resolution": "已补发"}
    )
    assert done.json()["resolution_sla"] == "met" and done.json()["resolution"] == "已补发"
    sla = get(aw, "ag3", "/complaints/sla").json()
    assert sla["overall"]["tickets"] == 1 and sla["open"] == 0
    assert [i["id"] for i in get(aw, "ag3", "/complaints").json()["items"]] == [c["id"]]
    assert get(aw, "ag1", "/complaints").json()["total"] == 0
    bad = post(aw, "ag3", "/complaints", {"customer_id": own, "category": "spam"})
    assert bad.status_code == 422
    other = sorted(visible_to("ag1"))[0]
    assert post(
        aw, "ag3", "/complaints", {"customer_id": other, "category": "other"}
    ).status_code == (404)
    assert post(aw, "ag3", "/complaints/import").status_code == 403


@pytest.mark.parametrize("username", ["ana", "mia", "ag1"])
def test_feedback_covers_exactly_the_viewers_customers(aw: World, username: str):
    r = get(aw, username, "/feedback", by="value_tier")
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    visible = [i for i in range(N_CUSTOMERS) if profile(i)["customer_id"] in visible_to(username)]
    assert sum(s["responses"] for s in rows) == len(visible)
    for s in rows:
        answers = [feedback_nps(i) for i in visible if profile(i)["value_tier"] == s["key"]]
        promoters = sum(a >= 9 for a in answers)
        detractors = sum(a <= 6 for a in answers)
        assert s["nps"] == pytest.approx(100 * (promoters - detractors) / len(answers))
    (month,) = get(aw, username, "/feedback", by="month").json()["rows"]
    assert (month["key"], month["responses"]) == ("2025-02-01", len(visible))


def expected_level(i: int) -> str:
    s = spend(i)
    return (
        "diamond"
        if s >= 20_000
        else "gold"
        if s >= 5_000
        else "silver"
        if s >= 1_000
        else ("regular")
    )


@pytest.mark.parametrize("username", ["root", "mia", "ag2", "nomad"])
def test_membership_levels_count_the_viewers_customers(aw: World, username: str):
    r = get(aw, username, "/membership/levels")
    assert r.status_code == 200
    counts = {x["code"]: x["customers"] for x in r.json()["levels"]}
    visible = [i for i in range(N_CUSTOMERS) if profile(i)["customer_id"] in visible_to(username)]
    for code in ("regular", "silver", "gold", "diamond"):
        assert counts[code] == sum(expected_level(i) == code for i in visible)
    assert [x["min_value"] for x in r.json()["levels"]] == [0, 1_000, 5_000, 20_000]


def test_a_customers_membership_is_404_outside_scope(aw: World):
    i = next(i for i in range(N_CUSTOMERS) if profile(i)["customer_id"] in visible_to("ag1"))
    cid = profile(i)["customer_id"]
    mine = get(aw, "ag1", f"/membership/customers/{cid}")
    assert mine.status_code == 200 and mine.json()["level"] == expected_level(i)
    assert mine.json()["history"][0]["change"] == "join"
    hidden = get(aw, "ag2", f"/membership/customers/{cid}")
    assert hidden.status_code == 404 and hidden.json() == {"detail": f"no customer {cid}"}
    evaluations = get(aw, "ag2", "/membership/evaluations").json()
    assert evaluations[0]["joined"] == N_CUSTOMERS


def test_campaigns_export_and_effect_through_the_api(aw: World):
    assert get(aw, "ag1", "/campaigns").status_code == 403
    body = {
        "name": "一月回访",
        "action": "电话回访",
        "starts_on": "2025-01-01",
        "days": 31,
        "control_share": 0.3,
        "seed": "api",
        "tier": "high",
    }
    r = post(aw, "mia", "/campaigns", body)
    assert r.status_code == 201, r.text
    c = r.json()
    targets = (
        {p["customer_id"] for p in PROFILES if p["value_tier"] == "high"}
        & visible_to("mia")
        & CONSENTING
    )
    assert c["treatment"] + c["control"] == len(targets) and c["phase"] == "ended"
    assert get(aw, "nomad", f"/campaigns/{c['id']}").status_code == 404
    assert [x["id"] for x in get(aw, "ana", "/campaigns").json()] == [c["id"]]
    assert post(aw, "mia", "/campaigns", body | {"control_share": 1.5}).status_code == 422
    assert post(aw, "mia", "/campaigns", body | {"segment": "nope"}).status_code == 409

    export = get(aw, "mia", f"/campaigns/{c['id']}/export", format="csv")
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    exported = {row["customer_id"] for row in rows}
    assert len(exported) == c["treatment"] and exported < targets

    effect = get(aw, "mia", f"/campaigns/{c['id']}/effect")
    assert effect.status_code == 200, effect.text
    report = effect.json()["report"]
    assert effect.json()["complete"] is True
    assert (report["treated"], report["control"]) == (c["treatment"], c["control"])
    by_id = {p["customer_id"]: i for i, p in enumerate(PROFILES)}
    treated_spend = [spend(by_id[cid]) for cid in exported]
    assert report["revenue"]["treated"] == pytest.approx(sum(treated_spend) / len(treated_spend))
    # every world customer placed one January order (some of amount 0): all retained
    assert report["retention"]["treated"] == report["orders"]["control"] == 1.0
    assert report["roi"] is None  # no cost per contact

    future = post(aw, "root", "/campaigns", body | {"starts_on": "2099-01-01", "seed": "f"}).json()
    assert future["ends_on"] == "2099-01-31" and future["phase"] == "planned"
    assert get(aw, "root", f"/campaigns/{future['id']}/effect").status_code == 409
    interim = get(aw, "root", f"/campaigns/{future['id']}/effect", interim="true")
    assert interim.status_code == 200 and interim.json()["complete"] is False
