"""Sign-in, sessions, CSRF and tokens through /api/v1, and 401 on every protected route."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from tests.api.world import CHEAP_HASHER, PASSWORD, World

from tierwise.api.auth import CSRF_HEADER, SESSION_COOKIE
from tierwise.store.audit import audit_entries
from tierwise.store.users import create_user

API = "/api/v1"
OPEN = {f"{API}/health", f"{API}/auth/login", f"{API}/openapi.json"}


def protected_routes(world: World) -> list[tuple[str, str]]:
    """(method, path) of every route but the open ones, as the app describes itself.

    Read from the app's OpenAPI description: recent FastAPI versions include routers lazily, so
    `app.routes` no longer lists every route; no route here is hidden from the schema.
    """
    return [
        (method.upper(), path)
        for path, operations in world.app.openapi()["paths"].items()
        if path not in OPEN
        for method in operations
    ]


def test_every_protected_route_answers_401_without_credentials(world: World):
    routes = protected_routes(world)
    assert {p for _, p in routes} >= {
        f"{API}/customers",
        f"{API}/customers/{{customer_id}}",
        f"{API}/customer-count",
        f"{API}/segments",
        f"{API}/runs",
        f"{API}/me",
        f"{API}/auth/logout",
        f"{API}/auth/tokens",
    }
    anonymous = TestClient(world.app)
    for method, path in routes:
        url = re.sub(r"\{[^}]+\}", "C00001", path)
        for headers in (
            {},
            {"Authorization": "Bearer tw_not-a-token"},
            {"Authorization": "Basic eDp5"},
        ):
            r = anonymous.request(method, url, headers=headers, json={"name": "x"})
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["WWW-Authenticate"] == "Bearer"
        anonymous.cookies.set(SESSION_COOKIE, "forged")
        assert anonymous.request(method, url, json={"name": "x"}).status_code == 401
        anonymous.cookies.clear()


def test_open_routes_need_no_credentials(world: World):
    anonymous = TestClient(world.app)
    assert anonymous.get(f"{API}/health").json() == {"status": "ok"}
    spec = anonymous.get(f"{API}/openapi.json").json()
    assert f"{API}/customers/{{customer_id}}" in spec["paths"]
    assert anonymous.get("/docs").status_code == 404  # Swagger UI would load JS from a CDN


def test_login_sets_a_strict_session_cookie_and_returns_csrf(world: World):
    client = TestClient(world.app)
    r = client.post(f"{API}/auth/login", json={"username": "MIA", "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"] == {
        "username": "mia",
        "display_name": "mia",
        "role": "manager",
        "team": "north",
        "permissions": [],
    }
    assert len(body["csrf_token"]) >= 32
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert body["csrf_token"] not in cookie
    assert client.get(f"{API}/me").json()["username"] == "mia"
    assert r.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ag1", "password": "wrong password!"},
        {"username": "nobody", "password": PASSWORD},
    ],
)
def test_wrong_credentials_are_401_alike(world: World, body):
    client = TestClient(world.app, client=("198.51.100.1", 1000))
    r = client.post(f"{API}/auth/login", json=body)
    assert r.status_code == 401
    assert r.json() == {"detail": "wrong username or password"}
    assert SESSION_COOKIE not in r.cookies


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ag1", "password": PASSWORD, "role": "admin"},
        {"username": "ag1"},
        {"username": "ag1\x00", "password": PASSWORD},
        {"username": "ag1", "password": 12345678901},
    ],
)
def test_malformed_login_bodies_are_422_without_echoing_input(world: World, body):
    r = TestClient(world.app).post(f"{API}/auth/login", json=body)
    assert r.status_code == 422, r.text
    assert PASSWORD not in r.text and "12345678901" not in r.text
    assert all(set(e) == {"loc", "msg", "type"} for e in r.json()["detail"])


def test_login_is_throttled_after_repeated_failures(world: World):
    """On a user and an address of its own: the block lasts beyond this test."""
    with world.store.write.begin() as session:
        create_user(session, "locked-out", "agent", PASSWORD, hasher=CHEAP_HASHER)
    client = TestClient(world.app, client=("203.0.113.9", 4000))
    for _ in range(5):
        r = client.post(
            f"{API}/auth/login", json={"username": "locked-out", "password": "no!!!!!!!!"}
        )
        assert r.status_code == 401
    r = client.post(f"{API}/auth/login", json={"username": "locked-out", "password": PASSWORD})
    assert r.status_code == 429
    assert "try again" in r.json()["detail"]
    assert 0 < int(r.headers["Retry-After"]) <= 15 * 60
    # the address is blocked, for other users too; the user is blocked from other addresses
    assert (
        client.post(f"{API}/auth/login", json={"username": "ag3", "password": PASSWORD}).status_code
        == 429
    )
    elsewhere = TestClient(world.app, client=("203.0.113.10", 4000))
    assert (
        elsewhere.post(
            f"{API}/auth/login", json={"username": "locked-out", "password": PASSWORD}
        ).status_code
        == 429
    )


def test_cookie_posts_need_the_csrf_token_bearer_posts_do_not(world: World):
    client, csrf = world.session_client("ana")
    url = f"{API}/auth/tokens"
    assert client.post(url, json={"name": "a"}).status_code == 403
    assert client.post(url, json={"name": "a"}, headers={CSRF_HEADER: "x" * 43}).status_code == 403
    created = client.post(url, json={"name": "a"}, headers={CSRF_HEADER: csrf})
    assert created.status_code == 201, created.text
    bearer = TestClient(world.app)
    again = bearer.post(url, json={"name": "b"}, headers=world.bearer("ana"))
    assert again.status_code == 201, again.text
    # reads never need it
    assert client.get(f"{API}/me").status_code == 200


def test_created_token_authenticates_once_shown(world: World):
    client = TestClient(world.app)
    r = client.post(
        f"{API}/auth/tokens", json={"name": "script", "ttl_days": 7}, headers=world.bearer("ag1")
    )
    assert r.status_code == 201
    token = r.json()
    assert token["token"].startswith(token["prefix"]) and token["name"] == "script"
    me = client.get(f"{API}/me", headers={"Authorization": f"Bearer {token['token']}"})
    assert me.json()["username"] == "ag1"


def test_tokens_are_listed_without_secrets_and_revoked_by_their_owner_only(world: World):
    client = TestClient(world.app)
    made = client.post(f"{API}/auth/tokens", json={"name": "cron"}, headers=world.bearer("ag2"))
    token = made.json()
    bearer = {"Authorization": f"Bearer {token['token']}"}
    listed = client.get(f"{API}/auth/tokens", headers=world.bearer("ag2")).json()
    mine = [t for t in listed if t["id"] == token["id"]]
    assert mine and mine[0]["revoked_at"] is None and "token" not in mine[0]
    assert all(
        t["id"] != token["id"]
        for t in client.get(f"{API}/auth/tokens", headers=world.bearer("ag3")).json()
    )
    url = f"{API}/auth/tokens/{token['id']}"
    assert client.delete(url, headers=world.bearer("ag3")).status_code == 404  # not theirs
    assert client.delete(url, headers=world.bearer("root")).status_code == 404
    assert client.get(f"{API}/me", headers=bearer).status_code == 200
    revoked = client.delete(url, headers=world.bearer("ag2"))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert client.get(f"{API}/me", headers=bearer).status_code == 401
    assert (
        client.delete(f"{API}/auth/tokens/999999", headers=world.bearer("ag2")).status_code == 404
    )


@pytest.mark.parametrize(
    "body", [{"name": "x", "user_id": 1}, {"name": "x", "ttl_days": 0}, {"name": ""}, {}]
)
def test_bad_token_requests_are_422(world: World, body):
    r = TestClient(world.app).post(f"{API}/auth/tokens", json=body, headers=world.bearer("ag1"))
    assert r.status_code == 422, r.text


def test_logout_needs_csrf_then_ends_the_session(world: World):
    client, csrf = world.session_client("ag3")
    assert client.post(f"{API}/auth/logout").status_code == 403
    assert client.get(f"{API}/me").status_code == 200
    secret = client.cookies[SESSION_COOKIE]
    r = client.post(f"{API}/auth/logout", headers={CSRF_HEADER: csrf})
    assert r.status_code == 204
    assert client.get(f"{API}/me").status_code == 401
    replay = TestClient(world.app)
    replay.cookies.set(SESSION_COOKIE, secret)
    assert replay.get(f"{API}/me").status_code == 401
    with world.store.read() as session:
        assert audit_entries(session, action="logout", actor="ag3", limit=1)
