"""Stores for the playbook service tests: a migrated SQLite file and a PostgreSQL database of each
test's own (copied from a template migrated once), and synthetic published profiles."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import PostgresDatabases

from tierwise.core.settings import Settings, StoreSettings
from tierwise.core.vocab import AbcClass, ChurnRisk, Class8, Segment, Stage, ValueTier
from tierwise.services.serving import Store, open_store
from tierwise.store.db import make_engine, upgrade

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
HOSTILE = "'; DROP TABLE users; --"
MANAGERS = ("ag1", "ag2", None, HOSTILE)


@pytest.fixture(scope="session")
def playbook_pg_template(postgres_databases: PostgresDatabases) -> Iterator[str]:
    name = postgres_databases.create()
    engine = make_engine(postgres_databases.url_of(name))
    upgrade(engine)
    engine.dispose()
    yield name
    postgres_databases.drop(name)


def settings_for(request: pytest.FixtureRequest, backend: str, directory: Path) -> Settings:
    if backend == "sqlite":
        url = f"sqlite:///{directory / 'store.db'}"
    else:
        databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
        url = databases.url_of(
            databases.create(template=request.getfixturevalue("playbook_pg_template"))
        )
    return Settings(root=directory, store=StoreSettings(url=url))


@pytest.fixture(params=BACKENDS)
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return settings_for(request, request.param, tmp_path)


@pytest.fixture
def store(store_settings: Settings) -> Iterator[Store]:
    s = open_store(store_settings)
    yield s
    s.close()


def _pick(rng: random.Random, values: list[Any], none_share: float = 0.1) -> Any:
    return None if rng.random() < none_share else rng.choice(values)


def profile(i: int, rng: random.Random) -> dict[str, Any]:
    """A published profile: every classification, numbers on both sides of the default
    playbook's thresholds, some missing values, and the hostile string where text goes."""
    return {
        "customer_id": f"C{i:05d}",
        "account_manager": MANAGERS[i % len(MANAGERS)],
        "rfm_segment": _pick(rng, [s.value for s in Segment]),
        "rfm_class8": _pick(rng, [c.value for c in Class8]),
        "abc_class": _pick(rng, [a.value for a in AbcClass]),
        "value_tier": _pick(rng, [t.value for t in ValueTier]),
        "lifecycle_stage": _pick(rng, [s.value for s in Stage]),
        "churn_risk": _pick(rng, [r.value for r in ChurnRisk]),
        "revenue": _pick(rng, [0.0, 99.5, 1000.0, 25_000.0]),
        "orders": _pick(rng, [0, 1, 2, 7]),
        "recency_days": _pick(rng, [0, 30, 400]),
        "clv": _pick(rng, [-5.0, 0.0, 120.5, 999.99, 5000.0]),
        "churn_probability": _pick(rng, [0.0, 0.3, 0.6, 0.95]),
        "profit": _pick(rng, [-10.0, 0.0, 250.0]),
        "consent_marketing": _pick(rng, [True, False]),
        "unresolved_complaints": _pick(rng, [0, 1, 3]),
        "is_unprofitable": _pick(rng, [True, False]),
        "mean_nps": _pick(rng, [-100.0, 0.0, 42.5]),
        "city": _pick(rng, ["杭州", "上海", HOSTILE, "O'Brien", ""]),
        "region": _pick(rng, ["east", "west"]),
    }


def profiles(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [profile(i, rng) for i in range(n)]
