"""The playbook and budget endpoints under every role, on SQLite and PostgreSQL.

Reads and dry runs use the shared seeded world; applying for real changes profiles and opens
tasks, so it runs on a seeded app of its own."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from importlib import resources

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import BACKENDS, store_settings
from tests.api.world import N_CUSTOMERS, USERS, World, profile, seed, visible_to

from tierwise.api.app import create_app
from tierwise.strategy.budget import Candidate, allocate
from tierwise.strategy.playbook import parse_playbook

API = "/api/v1"
PROFILES = {p["customer_id"]: p for p in (profile(i) for i in range(N_CUSTOMERS))}
PLAYBOOK = parse_playbook(
    resources.files("tierwise.strategy").joinpath("default_playbook.yaml").read_text("utf-8")
)


def expected_rule(customer_id: str) -> str | None:
    rule = PLAYBOOK.first_match(PROFILES[customer_id])
    return rule.name if rule else None


@pytest.mark.parametrize("username", list(USERS))
def test_everyone_sees_the_playbook_with_their_own_customers_per_rule(world: World, username: str):
    r = world.client.get(f"{API}/playbook", headers=world.bearer(username))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run_id"] == "run-2" and body["source"] == "default_playbook.yaml"
    assert [rule["name"] for rule in body["rules"]] == [rule.name for rule in PLAYBOOK.rules]
    mine = visible_to(username)
    want = Counter(expected_rule(c) for c in mine)
    assert {rule["name"]: rule["customers"] for rule in body["rules"]} == {
        rule.name: want.get(rule.name, 0) for rule in PLAYBOOK.rules
    }
    assert body["unmatched"] == want.get(None, 0)
    vip = body["rules"][0]
    assert vip["service_level"] == "vip" and vip["sla_hours"] == 4
    assert vip["task"] == {"reason": "vip_winback_call", "queue": "vip_desk", "due_hours": 4}
    assert body["churn_warning"]["task"]["reason"] == "churn_risk"  # as the tasks module's


def test_customers_of_a_rule_are_scoped_and_masked(world: World):
    name = Counter(expected_rule(c) for c in visible_to("ag1")).most_common(1)[0][0]
    r = world.client.get(
        f"{API}/playbook/rules/{name}/customers",
        params={"page_size": 200},
        headers=world.bearer("ag1"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    ids = {item["customer_id"] for item in body["items"]}
    assert ids == {c for c in visible_to("ag1") if expected_rule(c) == name}
    assert body["total"] == len(ids)
    for item in body["items"]:
        assert item["phone"] != PROFILES[item["customer_id"]]["phone"]  # masked for agents
    missing = world.client.get(
        f"{API}/playbook/rules/no_such_rule/customers", headers=world.bearer("ag1")
    )
    assert missing.status_code == 404
    bad = world.client.get(
        f"{API}/playbook/rules/DROP%20TABLE/customers", headers=world.bearer("root")
    )
    assert bad.status_code == 422


@pytest.mark.parametrize("username", ["mia", "nomad", "ag1", "ag3"])
@pytest.mark.parametrize("dry_run", [True, False])
def test_only_admins_and_analysts_may_apply(world: World, username: str, dry_run: bool):
    r = world.client.post(
        f"{API}/playbook/apply", json={"dry_run": dry_run}, headers=world.bearer(username)
    )
    assert r.status_code == 403, r.text


def test_applying_needs_sign_in_and_a_well_formed_body(world: World):
    assert world.client.post(f"{API}/playbook/apply", json={}).status_code == 401
    r = world.client.post(
        f"{API}/playbook/apply", json={"dry_run": True, "rules": []}, headers=world.bearer("root")
    )
    assert r.status_code == 422


@pytest.mark.parametrize("username", ["root", "ana"])
def test_a_dry_run_counts_every_customer(world: World, username: str):
    r = world.client.post(
        f"{API}/playbook/apply", json={"dry_run": True}, headers=world.bearer(username)
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dry_run"] and body["tasks_created"] == 0 and body["profiles_updated"] == 0
    want = Counter(expected_rule(c) for c in PROFILES)
    assert {rule["name"]: rule["customers"] for rule in body["rules"]} == {
        rule.name: want.get(rule.name, 0) for rule in PLAYBOOK.rules
    }


def expected_plan(username: str, budget: float, cost: float, effect: float) -> float:
    """The plan's value by the strategy alone, over the user's customers (independent read)."""
    candidates = [
        Candidate(c, PROFILES[c]["churn_probability"], PROFILES[c]["clv"], cost)
        for c in visible_to(username)
        if PROFILES[c]["clv"] is not None and PROFILES[c]["churn_probability"] is not None
    ]
    return allocate(candidates, budget, effect).plan.expected_value


@pytest.mark.parametrize("username", ["root", "ana", "mia"])
def test_planners_get_a_plan_over_their_own_customers(world: World, username: str):
    body = {"budget": 100, "cost": 2, "effect": 0.5, "capacity": 5, "top": 200}
    r = world.client.post(f"{API}/budget/plan", json=body, headers=world.bearer(username))
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["plan"]["expected_value"] == pytest.approx(expected_plan(username, 100, 2, 0.5))
    assert plan["plan"]["spent"] <= 100
    assert {b["strategy"] for b in plan["baselines"]} == {"top churn risk", "top CLV"}
    assert all(plan["plan"]["expected_value"] >= b["expected_value"] for b in plan["baselines"])
    assert plan["lp_bound"] >= plan["plan"]["expected_value"]
    assert {c["customer_id"] for c in plan["top"]} <= visible_to(username)
    assert all(m["assigned"] <= 5 for m in plan["managers"])


@pytest.mark.parametrize("username", ["ag1", "ag3"])
def test_agents_may_not_plan_budgets(world: World, username: str):
    body = {"budget": 100, "cost": 2, "effect": 0.5}
    r = world.client.post(f"{API}/budget/plan", json=body, headers=world.bearer(username))
    assert r.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"budget": 100, "cost": 0, "effect": 0.5},
        {"budget": 100, "cost": 2, "effect": 1.5},
        {"budget": -1, "cost": 2, "effect": 0.5},
        {"budget": 100, "cost": 2, "effect": 0.5, "capacity": -1},
        {"budget": 100, "cost": 2, "effect": 0.5, "viewer": "root"},
    ],
)
def test_plans_refuse_malformed_bodies(world: World, body: dict):
    r = world.client.post(f"{API}/budget/plan", json=body, headers=world.bearer("root"))
    assert r.status_code == 422


@pytest.fixture(scope="module", params=BACKENDS)
def own_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    app = create_app(store_settings(request, tmp_path_factory.mktemp("playbook")))
    with TestClient(app) as client:
        w = World(app, client)
        w.tokens = seed(w.store)
        yield w


def test_applying_keeps_rules_and_opens_tasks_once(own_world: World):
    w = own_world
    first = w.client.post(f"{API}/playbook/apply", json={}, headers=w.bearer("ana"))
    assert first.status_code == 200, first.text
    created = first.json()["tasks_created"]
    assert created > 0 and first.json()["profiles_updated"] == N_CUSTOMERS
    again = w.client.post(f"{API}/playbook/apply", json={}, headers=w.bearer("root")).json()
    assert again["tasks_created"] == 0 and again["profiles_updated"] == 0
    customer = next(iter(sorted(visible_to("ag1"))))
    detail = w.client.get(f"{API}/customers/{customer}", headers=w.bearer("ag1")).json()
    assert detail["profile"]["playbook"]["rule"] == expected_rule(customer)
