"""The warehouse connection: DuckDB file by default, PySpark at scale, through Ibis.

Backend differences live in the `BACKENDS` dispatch table and nowhere else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
from ibis.backends import BaseBackend

from tierwise.core.errors import ConfigError
from tierwise.core.settings import Settings


def spark_session(master: str = "local[2]", warehouse_dir: Path | None = None) -> Any:
    """One Spark session per process, in UTC so naive timestamps are never shifted."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "warehouse.engine = 'pyspark' needs the spark extra: pip install 'tierwise[spark]'"
        ) from None
    builder = (
        SparkSession.builder.master(master)
        .appName("tierwise")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.ansi.enabled", "false")
    )
    if warehouse_dir is not None:
        builder = builder.config("spark.sql.warehouse.dir", str(warehouse_dir))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _duckdb_connect(settings: Settings) -> BaseBackend:
    path = settings.resolve(settings.warehouse.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return ibis.duckdb.connect(str(path))


def _spark_connect(settings: Settings) -> BaseBackend:
    wdir = settings.resolve(settings.warehouse.path)
    wdir.mkdir(parents=True, exist_ok=True)
    return ibis.pyspark.connect(spark_session(settings.warehouse.spark_master, wdir))


@contextlib.contextmanager
def _duckdb_transaction(con: BaseBackend) -> Iterator[None]:
    con.raw_sql("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.raw_sql("ROLLBACK")
        raise
    con.raw_sql("COMMIT")


@contextlib.contextmanager
def _no_transaction(con: BaseBackend) -> Iterator[None]:
    """Spark tables have no multi-statement transactions; callers write new tables, then swap."""
    yield


@dataclass(frozen=True)
class Backend:
    connect: Callable[[Settings], BaseBackend]
    transaction: Callable[[BaseBackend], contextlib.AbstractContextManager[None]]


BACKENDS: dict[str, Backend] = {
    "duckdb": Backend(_duckdb_connect, _duckdb_transaction),
    "pyspark": Backend(_spark_connect, _no_transaction),
}


def backend_of(con: BaseBackend) -> Backend:
    return BACKENDS[con.name]


def connect(settings: Settings) -> BaseBackend:
    return BACKENDS[settings.warehouse.engine].connect(settings)


def transaction(con: BaseBackend) -> contextlib.AbstractContextManager[None]:
    """All-or-nothing writes where the backend has transactions."""
    return backend_of(con).transaction(con)
