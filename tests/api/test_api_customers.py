"""Customers through /api/v1 as each role sees them: scope, masking, filters, paging, segments."""

from __future__ import annotations

import logging
import re
from collections import Counter

import pytest
from tests.api.world import N_CUSTOMERS, USERS, World, profile, visible_to

from tierwise.services.access import mask_email, mask_name, mask_phone
from tierwise.store.audit import audit_entries, verify_chain
from tierwise.store.models import SubjectKind
from tierwise.store.suppression import subject_hash

API = "/api/v1"
PROFILES = {p["customer_id"]: p for p in (profile(i) for i in range(N_CUSTOMERS))}
MISSING = "C99999"


def all_ids(world: World, headers: dict[str, str] | None = None, client=None, **params) -> list:
    """Every customer id the list endpoint returns, walking all pages."""
    client = client or world.client
    ids: list[str] = []
    page = 1
    while True:
        r = client.get(
            f"{API}/customers",
            params={"page": page, "page_size": 37, **params},
            headers=headers or {},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        ids += [item["customer_id"] for item in body["items"]]
        if page * 37 >= body["total"]:
            assert len(ids) == body["total"]
            return ids
        page += 1


def own_and_other(username: str) -> tuple[str, str | None]:
    """A customer the user may read, and one of the current run it may not (None: sees all)."""
    visible = visible_to(username)
    hidden = sorted(set(PROFILES) - visible)
    return (min(visible) if visible else MISSING), (hidden[0] if hidden else None)


def expected_detail_status(username: str, target: str) -> int:
    if target == "own":
        return 200 if visible_to(username) else 404
    if target == "other":
        return 200 if own_and_other(username)[1] is None else 404
    return 404


@pytest.mark.parametrize("username", sorted(USERS))
@pytest.mark.parametrize("target", ["own", "other", "missing"])
def test_authorization_matrix_customer_detail(world: World, username: str, target: str):
    own, other = own_and_other(username)
    customer = {"own": own, "other": other or own, "missing": MISSING}[target]
    r = world.client.get(f"{API}/customers/{customer}", headers=world.bearer(username))
    assert r.status_code == expected_detail_status(username, target), r.text
    if r.status_code == 404:
        assert r.json() == {"detail": f"no customer {customer!r}"}


@pytest.mark.parametrize("username", sorted(USERS))
@pytest.mark.parametrize("path", ["/customers", "/customer-count", "/segments", "/runs", "/me"])
def test_authorization_matrix_collections(world: World, username: str, path: str):
    """Every role may call the collection endpoints; what they return is scoped (tests below)."""
    r = world.client.get(f"{API}{path}", headers=world.bearer(username))
    assert r.status_code == 200, r.text


def test_scopes_differ_as_the_roles_say():
    """Guards the fixture: each role's rule selects a distinct, non-trivial set."""
    sizes = {u: len(visible_to(u)) for u in USERS}
    assert sizes["root"] == sizes["ana"] == N_CUSTOMERS
    assert 0 < sizes["ag1"] < sizes["mia"] < N_CUSTOMERS
    assert sizes["mia"] == sizes["ag1"] + sizes["ag2"]
    assert sizes["nomad"] == 0


@pytest.mark.parametrize("username", ["ag1", "ag3", "mia", "nomad", "ana"])
def test_list_search_count_segments_and_token_paths_agree(world: World, username: str):
    expected = visible_to(username)
    cookie_client, _ = world.session_client(username)
    by_cookie = all_ids(world, client=cookie_client)
    by_token = all_ids(world, headers=world.bearer(username))
    assert len(by_cookie) == len(set(by_cookie))  # pages never overlap
    assert set(by_cookie) == set(by_token) == expected

    searched = all_ids(world, headers=world.bearer(username), q="0")
    assert set(searched) == {c for c in expected if "0" in c}

    count = world.client.get(f"{API}/customer-count", headers=world.bearer(username)).json()
    assert count["total"] == len(expected)
    filtered = world.client.get(
        f"{API}/customer-count", params={"stage": "active"}, headers=world.bearer(username)
    ).json()
    assert filtered["total"] == sum(PROFILES[c]["lifecycle_stage"] == "active" for c in expected)

    segments = world.client.get(f"{API}/segments", headers=world.bearer(username)).json()
    assert segments["customers"] == len(expected)
    for dimension, rows in segments["dimensions"].items():
        got = {row["key"]: row["customers"] for row in rows}
        assert got == dict(Counter(PROFILES[c][dimension] for c in expected)), dimension


def test_segments_sum_revenue_and_mean_clv_over_scope(world: World):
    expected = visible_to("ag2")
    body = world.client.get(f"{API}/segments", headers=world.bearer("ag2")).json()
    assert body["run_id"] == "run-2"
    for row in body["dimensions"]["value_tier"]:
        members = [PROFILES[c] for c in expected if PROFILES[c]["value_tier"] == row["key"]]
        clvs = [p["clv"] for p in members if p["clv"] is not None]
        assert row["revenue"] == pytest.approx(sum(p["revenue"] for p in members))
        assert row["mean_clv"] == pytest.approx(sum(clvs) / len(clvs))
        assert row["share"] == pytest.approx(len(members) / len(expected))
    class8 = {row["key"] for row in body["dimensions"]["rfm_class8"]}
    assert None in class8  # customers without a class are a row of their own


def test_denied_detail_is_audited_and_missing_is_not(world: World):
    _, other = own_and_other("ag3")
    assert other is not None
    before = {e.id for e in _denials(world)}
    denied = world.client.get(f"{API}/customers/{other}", headers=world.bearer("ag3"))
    missing = world.client.get(f"{API}/customers/{MISSING}", headers=world.bearer("ag3"))
    assert denied.status_code == missing.status_code == 404
    assert denied.json()["detail"].replace(other, "X") == missing.json()["detail"].replace(
        MISSING, "X"
    )
    new = [e for e in _denials(world) if e.id not in before]
    assert [(e.actor, e.target, e.detail["attempted"]) for e in new] == [
        ("ag3", f"customer:{subject_hash(SubjectKind.CUSTOMER_ID, other)}", "customer_read")
    ]
    with world.store.read() as session:
        assert verify_chain(session) is None


def _denials(world: World) -> list:
    with world.store.read() as session:
        return audit_entries(session, action="denied", limit=1000)


@pytest.mark.parametrize("username", ["ana", "mia", "ag1"])
def test_personal_data_is_masked_for_everyone_but_admins(world: World, username: str):
    r = world.client.get(
        f"{API}/customers", params={"page_size": 200}, headers=world.bearer(username)
    )
    items = r.json()["items"]
    assert items
    for item in items:
        raw = PROFILES[item["customer_id"]]
        assert item["phone"] == mask_phone(raw["phone"])
        assert item["email"] == mask_email(raw["email"])
        assert item["name"] == mask_name(raw["name"])
        for value in (raw["phone"], raw["email"], raw["name"]):
            assert value not in r.text
    customer = items[0]["customer_id"]
    detail = world.client.get(f"{API}/customers/{customer}", headers=world.bearer(username))
    doc = detail.json()["profile"]
    raw = PROFILES[customer]
    assert doc["phone"] == mask_phone(raw["phone"])
    assert doc["attributes"] == {
        "contact_mobile": mask_phone(raw["attributes"]["contact_mobile"]),
        "city": "杭州",
    }
    for value in (raw["phone"], raw["email"], raw["name"], raw["attributes"]["contact_mobile"]):
        assert value not in detail.text


def test_admins_see_personal_data(world: World):
    r = world.client.get(f"{API}/customers/C00007", headers=world.bearer("root"))
    doc = r.json()["profile"]
    raw = PROFILES["C00007"]
    assert (doc["name"], doc["phone"], doc["email"]) == (raw["name"], raw["phone"], raw["email"])
    assert doc["attributes"] == raw["attributes"]


def test_masks_look_like_the_chinese_convention():
    assert mask_phone("13800000042") == "138****0042"
    assert mask_name("张三") == "张*"
    assert mask_email("zhang@example.com") == "z***@example.com"


def test_name_search_needs_pii_read(world: World):
    """Searching masked names would reveal them, so only admins search by name."""
    target = PROFILES["C00004"]["name"]  # 李娜4
    as_admin = all_ids(world, headers=world.bearer("root"), q=target)
    as_analyst = all_ids(world, headers=world.bearer("ana"), q=target)
    assert "C00004" in as_admin
    assert set(as_admin) == {c for c, p in PROFILES.items() if target in p["name"]}
    assert as_analyst == []


def test_filters_combine_with_scope(world: World):
    expected = {
        c
        for c in visible_to("mia")
        if PROFILES[c]["rfm_segment"] == "champions" and PROFILES[c]["abc_class"] == "A"
    }
    got = all_ids(world, headers=world.bearer("mia"), segment="champions", abc="A")
    assert expected and set(got) == expected


@pytest.mark.parametrize("key", ["revenue", "orders", "recency_days", "clv", "churn_probability"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sorting_puts_missing_values_last_and_breaks_ties_by_id(world: World, key, order):
    got = all_ids(world, headers=world.bearer("ana"), sort=key, order=order)
    present = [c for c in PROFILES if PROFILES[c][key] is not None]
    absent = sorted(c for c in PROFILES if PROFILES[c][key] is None)
    sign = -1 if order == "desc" else 1
    ordered = sorted(present, key=lambda c: (sign * PROFILES[c][key], c))
    assert got == ordered + absent


def test_customer_id_sort_and_paging(world: World):
    first = world.client.get(
        f"{API}/customers",
        params={"sort": "customer_id", "order": "desc", "page": 2, "page_size": 10},
        headers=world.bearer("ana"),
    ).json()
    assert first["page"] == 2 and first["page_size"] == 10 and first["total"] == N_CUSTOMERS
    assert [i["customer_id"] for i in first["items"]] == sorted(PROFILES, reverse=True)[10:20]


@pytest.mark.parametrize(
    "params",
    [
        {"page_size": 201},
        {"page_size": 0},
        {"page": 0},
        {"sort": "name"},
        {"order": "up"},
        {"tier": "platinum"},
        {"account_manager": "ag1"},  # not a filter: unknown query parameters are refused
        {"q": "a\x00b"},
    ],
)
def test_bad_list_parameters_are_422(world: World, params):
    r = world.client.get(f"{API}/customers", params=params, headers=world.bearer("ana"))
    assert r.status_code == 422, r.text


def test_runs_lists_current_and_previous(world: World):
    runs = world.client.get(f"{API}/runs", headers=world.bearer("ag1")).json()
    assert [(r["run_id"], r["is_current"], r["customers"]) for r in runs] == [
        ("run-2", True, N_CUSTOMERS),
        ("run-1", False, 200),
    ]


def test_access_log_names_path_status_and_user_but_never_the_query(
    world: World, caplog: pytest.LogCaptureFixture
):
    name = PROFILES["C00004"]["name"]
    with caplog.at_level(logging.INFO, logger="tierwise.api.access"):
        world.client.get(f"{API}/customers", params={"q": name}, headers=world.bearer("root"))
        world.client.get(f"{API}/customers/{MISSING}", headers=world.bearer("ag1"))
    lines = [r.getMessage() for r in caplog.records if r.name == "tierwise.api.access"]
    assert len(lines) == 2
    assert re.fullmatch(r"GET /api/v1/customers 200 \d+ms root", lines[0])
    assert re.fullmatch(rf"GET /api/v1/customers/{MISSING} 404 \d+ms ag1", lines[1])
    assert name not in caplog.text
