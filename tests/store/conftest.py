"""Store fixtures: every test gets a migrated database of its own, a SQLite file and a fresh
PostgreSQL database (copied from a template migrated once per session, so the copy is cheap)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from tests.conftest import unavailable

from tierwise.store.db import make_engine, session_factory, upgrade

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _admin_url() -> str:
    url = os.environ.get("TIERWISE_TEST_POSTGRES_URL")
    if not url:
        unavailable("postgres", "TIERWISE_TEST_POSTGRES_URL not set")
    assert url is not None
    return url


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


class PostgresDatabases:
    """Creates and drops uniquely named databases through one AUTOCOMMIT admin engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = make_engine(url, isolation_level="AUTOCOMMIT")

    def create(self, *, template: str | None = None) -> str:
        name = f"tw_test_{uuid.uuid4().hex[:12]}"
        suffix = f' TEMPLATE "{template}"' if template else ""
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
        return name

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    url = _admin_url()
    try:
        databases = PostgresDatabases(url)
        with databases.admin.connect():
            pass
    except Exception as exc:  # a server that is down is "unavailable", not a test failure
        unavailable("postgres", f"cannot connect to {make_url(url)!r}: {exc}")
    yield databases
    databases.admin.dispose()


@pytest.fixture(scope="session")
def postgres_template(postgres_databases: PostgresDatabases) -> Iterator[str]:
    """A database migrated to head, copied by each test (CREATE DATABASE … TEMPLATE)."""
    name = postgres_databases.create()
    engine = make_engine(_with_database(postgres_databases.url, name))
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
    yield _with_database(databases.url, name)
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
    eng = make_engine(_with_database(databases.url, name))
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
