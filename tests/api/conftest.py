"""API fixtures: the real app in-process (TestClient) on a SQLite file and on a fresh PostgreSQL
database, seeded once per backend (see world.py).

The seeded world is shared by the read-mostly tests of a backend; a test that needs sign-in
throttling or other lasting state uses a user or client address of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from tests.api.world import World, seed
from tests.conftest import unavailable

from tierwise.api.app import create_app
from tierwise.core.settings import Settings, StoreSettings
from tierwise.store.db import make_engine

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _admin_url() -> str:
    url = os.environ.get("TIERWISE_TEST_POSTGRES_URL")
    if not url:
        unavailable("postgres", "TIERWISE_TEST_POSTGRES_URL not set")
    assert url is not None
    return url


class PostgresServer:
    """Creates empty databases (the app migrates them) and drops them all at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = make_engine(url, isolation_level="AUTOCOMMIT")
        self.names: list[str] = []

    def database(self) -> str:
        name = f"tw_api_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        with self.admin.connect() as conn:
            for name in self.names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    url = _admin_url()
    try:
        server = PostgresServer(url)
        with server.admin.connect():
            pass
    except Exception as exc:  # a server that is down is "unavailable", not a test failure
        unavailable("postgres", f"cannot connect to {make_url(url)!r}: {exc}")
    yield server
    server.close()


def store_settings(request: pytest.FixtureRequest, directory: Path) -> Settings:
    """Settings for a new, empty store of the backend the fixture is parametrised with."""
    if request.param == "sqlite":
        url = "sqlite:///store.db"  # relative: resolved against the settings' root
    else:
        url = request.getfixturevalue("postgres_server").database()
    return Settings(root=directory, store=StoreSettings(url=url))


@pytest.fixture(params=BACKENDS)
def empty_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """A store of this test's own, not yet created."""
    return store_settings(request, tmp_path)


@pytest.fixture(scope="session", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The seeded app of one backend, shared by the tests of the session."""
    settings = store_settings(request, tmp_path_factory.mktemp("api"))
    app = create_app(settings)
    with TestClient(app) as client:
        w = World(app, client)
        w.tokens = seed(w.store)
        yield w
