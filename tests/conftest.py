"""Shared fixtures: real backends only. A backend named in TIERWISE_REQUIRE_BACKENDS
(CI sets spark,postgres,browser) makes its tests fail instead of skip when unavailable."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import ibis
import pytest

DATA = Path(__file__).parent / "data"


def required(backend: str) -> bool:
    names = os.environ.get("TIERWISE_REQUIRE_BACKENDS", "")
    return backend in {n.strip() for n in names.split(",")}


def unavailable(backend: str, why: str) -> None:
    """Skip, or fail when CI requires this backend."""
    if required(backend):
        pytest.fail(f"{backend} is required (TIERWISE_REQUIRE_BACKENDS) but unavailable: {why}")
    pytest.skip(f"{backend} unavailable: {why}")


@pytest.fixture(scope="session")
def spark_con(tmp_path_factory):
    try:
        import pyspark  # noqa: F401
    except ImportError:
        unavailable("spark", "pyspark is not installed")
    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        unavailable("spark", "no Java runtime")
    from tierwise.services.warehouse import spark_session

    session = spark_session("local[2]", tmp_path_factory.mktemp("spark-warehouse"))
    yield ibis.pyspark.connect(session)


@pytest.fixture(params=["duckdb", pytest.param("pyspark", marks=pytest.mark.spark)])
def con(request, tmp_path):
    """A warehouse connection on each backend: a real DuckDB file, Spark local[2]."""
    if request.param == "duckdb":
        from tierwise.services.warehouse import duckdb_connect

        c = duckdb_connect(tmp_path / "warehouse.duckdb")
        yield c
        c.disconnect()
    else:
        yield request.getfixturevalue("spark_con")


class PostgresDatabases:
    """Creates uniquely named databases through one AUTOCOMMIT admin engine; every database it
    created is dropped when the session ends."""

    def __init__(self, url: str) -> None:
        from tierwise.store.db import make_engine

        self.url = url
        self.admin = make_engine(url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def create(self, *, template: str | None = None) -> str:
        from sqlalchemy import text

        name = f"tw_test_{uuid.uuid4().hex[:12]}"
        suffix = f' TEMPLATE "{template}"' if template else ""
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
        self.created.append(name)
        return name

    def url_of(self, name: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.created:
            self.created.remove(name)


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    """The PostgreSQL server of TIERWISE_TEST_POSTGRES_URL (CI starts one), or unavailable."""
    url = os.environ.get("TIERWISE_TEST_POSTGRES_URL")
    if not url:
        unavailable("postgres", "TIERWISE_TEST_POSTGRES_URL not set")
    try:
        databases = PostgresDatabases(url)
        with databases.admin.connect():
            pass
    except Exception as exc:  # a server that is down is "unavailable", not a test failure
        unavailable("postgres", f"cannot connect to the test server: {exc}")
    yield databases
    for name in list(databases.created):
        databases.drop(name)
    databases.admin.dispose()
