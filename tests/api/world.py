"""The seeded world of the API tests: users of every role, a published run with personal data,
and, independently of the code under test, which customers each user may see."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tierwise.core.vocab import AbcClass, ChurnRisk, Class8, Segment, Stage, ValueTier
from tierwise.services.serving import Store
from tierwise.store.publish import publish_run
from tierwise.store.tokens import create_token
from tierwise.store.users import create_user

PASSWORD = "correct horse battery"
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
"""The tests are about access, not hashing cost."""
N_CUSTOMERS = 300

USERS = {
    # username: (role, team)
    "root": ("admin", None),
    "ana": ("analyst", None),
    "mia": ("manager", "north"),
    "nomad": ("manager", None),
    "ag1": ("agent", "north"),
    "ag2": ("agent", "north"),
    "ag3": ("agent", "south"),
}
MANAGERS = ("ag1", "ag2", "ag3", None, "Ag1", "ghost")
"""account_manager values cycled over customers: `Ag1` is nobody (usernames are case-folded)."""


def profile(i: int) -> dict:
    """A synthetic published profile with personal data, also nested in an unmapped attribute."""
    segments = list(Segment)
    return {
        "customer_id": f"C{i:05d}",
        "name": ("王小明", "李娜", "Alice Smith")[i % 3] + str(i),
        "phone": f"138{i:08d}",
        "email": f"user{i}@example.com",
        "account_manager": MANAGERS[i % len(MANAGERS)],
        "rfm_segment": segments[i % len(segments)].value,
        "rfm_class8": list(Class8)[i % 8].value if i % 11 else None,
        "abc_class": list(AbcClass)[i % 3].value,
        "value_tier": list(ValueTier)[i % 3].value,
        "lifecycle_stage": list(Stage)[i % 7].value,
        "churn_risk": list(ChurnRisk)[i % 3].value,
        "revenue": round(1000.0 / (1 + i % 17) * (i % 5), 2),
        "orders": i % 9,
        "recency_days": None if i % 13 == 0 else (i * 7) % 400,
        "clv": None if i % 10 == 0 else float(i % 23) * 12.5,
        "churn_probability": (i % 100) / 100,
        "profit": float(i % 7),
        "consent_marketing": i % 2 == 0,
        "attributes": {"contact_mobile": f"139{i:08d}", "city": "杭州"},
    }


def visible_to(username: str) -> set[str]:
    """The customer ids a seeded user may read, derived from the role rules independently."""
    role, team = USERS[username]
    rows = [profile(i) for i in range(N_CUSTOMERS)]
    if role in ("admin", "analyst"):
        return {r["customer_id"] for r in rows}
    if role == "manager":
        members = {u for u, (_, t) in USERS.items() if team is not None and t == team}
        return {r["customer_id"] for r in rows if r["account_manager"] in members}
    return {r["customer_id"] for r in rows if r["account_manager"] == username}


@dataclass
class World:
    """A running app over a seeded store, and a bearer token per seeded user."""

    app: FastAPI
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        store: Store = self.app.state.store
        return store

    def bearer(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    def session_client(self, username: str) -> tuple[TestClient, str]:
        """A client of its own signed in through the API; returns it and its CSRF token."""
        client = TestClient(self.app)
        response = client.post(
            "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return client, response.json()["csrf_token"]


def seed(store: Store) -> dict[str, str]:
    """Users of every role (cheap argon2 parameters) and one published run; returns tokens."""
    tokens = {}
    with store.write.begin() as session:
        for username, (role, team) in USERS.items():
            user, _ = create_user(session, username, role, PASSWORD, team, hasher=CHEAP_HASHER)
            tokens[username] = create_token(session, user, "tests")
    publish_run(store.write, "run-1", date(2024, 6, 30), [profile(i) for i in range(200)])
    publish_run(store.write, "run-2", date(2024, 12, 31), [profile(i) for i in range(N_CUSTOMERS)])
    return tokens
