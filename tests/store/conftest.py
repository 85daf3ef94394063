"""Store fixtures: every test gets a migrated database of its own, a SQLite file and a fresh
PostgreSQL database (copied from a template migrated once per session, so the copy is cheap)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from tests.conftest import PostgresDatabases

from tierwise.store.db import make_engine, session_factory, upgrade

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_template(postgres_databases: PostgresDatabases) -> Iterator[str]:
    """A database migrated to head, copied by each test (CREATE DATABASE … TEMPLATE)."""
    name = postgres_databases.create()
    engine = make_engine(postgres_databases.url_of(name))
    upgrade(engine)
    engine.dispose()
    yield name
    postgres_databases.drop(name)


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of its own on each backend (for migration tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    name = databases.create()
    yield databases.url_of(name)
    databases.drop(name)


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated database of this test's own on each backend."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
        upgrade(eng)
        yield eng
        eng.dispose()
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    name = databases.create(template=request.getfixturevalue("postgres_template"))
    eng = make_engine(databases.url_of(name))
    yield eng
    eng.dispose()
    databases.drop(name)


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as s:
        yield s


@pytest.fixture
def hasher() -> PasswordHasher:
    """Cheap argon2id parameters: the tests are about behaviour, not hashing cost."""
    return PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
