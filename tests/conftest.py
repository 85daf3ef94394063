"""Shared fixtures: real backends only. A backend named in TIERWISE_REQUIRE_BACKENDS
(CI sets spark,postgres,browser) makes its tests fail instead of skip when unavailable."""

from __future__ import annotations

import os
import shutil
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
