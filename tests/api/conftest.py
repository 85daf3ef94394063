"""API fixtures: the real app in-process (TestClient) on a SQLite file and on a fresh PostgreSQL
database, seeded once per backend (see world.py).

The seeded world is shared by the read-mostly tests of a backend; a test that needs sign-in
throttling or other lasting state uses a user or client address of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api.world import World, seed

from tierwise.api.app import create_app
from tierwise.core.settings import Settings, StoreSettings

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def store_settings(request: pytest.FixtureRequest, directory: Path) -> Settings:
    """Settings for a new, empty store of the backend the fixture is parametrised with."""
    if request.param == "sqlite":
        url = "sqlite:///store.db"  # relative: resolved against the settings' root
    else:
        databases = request.getfixturevalue("postgres_databases")
        url = databases.url_of(databases.create())
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
