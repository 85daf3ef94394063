"""The warehouse connection: DuckDB file by default, PySpark at scale, through Ibis.

Backend differences live in the `BACKENDS` dispatch table and nowhere else.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from ibis.backends import BaseBackend

from tierwise.core.errors import BusyError, ConfigError
from tierwise.core.settings import Settings


def spark_session(master: str = "local[2]", warehouse_dir: Path | None = None) -> Any:
    """One Spark session per process, in UTC so naive timestamps are never shifted.

    Arrow transfer is on: without it a null number arrives in Spark as NaN and a null string
    as the text "NaN". Python workers run this interpreter, not whatever `python3` is first
    on PATH (which may lack pandas)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
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
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if warehouse_dir is not None:
        builder = builder.config("spark.sql.warehouse.dir", str(warehouse_dir))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


class _DuckDB2Connection:
    """Ibis 12 still calls the connection methods DuckDB 2 renamed (fetch_arrow_table ->
    to_arrow_table, fetch_record_batch -> to_arrow_reader); this adapter answers to both."""

    __slots__ = ("_con",)

    def __init__(self, con: Any) -> None:
        self._con = con

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def __enter__(self) -> _DuckDB2Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self._con.__exit__(*exc)

    def execute(self, *args: Any, **kwargs: Any) -> _DuckDB2Connection:
        self._con.execute(*args, **kwargs)
        return self

    def cursor(self) -> _DuckDB2Connection:
        return _DuckDB2Connection(self._con.cursor())

    def fetch_arrow_table(self) -> Any:
        with warnings.catch_warnings():
            # DuckDB warns that this path copies rows; that copy is Ibis's way of reading
            warnings.simplefilter("ignore", UserWarning)
            return self._con.to_arrow_table()

    def fetch_record_batch(self, rows_per_batch: int = 1_000_000) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # see fetch_arrow_table
            return self._con.to_arrow_reader(rows_per_batch)


def duckdb_connect(
    path: Path | str = ":memory:", *, read_only: bool = False, memory_limit: str | None = None
) -> BaseBackend:
    """An Ibis DuckDB backend that works on DuckDB 2.x."""
    import duckdb

    # Results without ORDER BY may come in any order: with insertion order kept, writing a
    # 5M-customer snapshot (CREATE TABLE AS) ran out of the 2 GB memory limit instead of spilling.
    config: dict[str, str | bool | int | float | list[str]] = {"preserve_insertion_order": False}
    if memory_limit:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(str(path), read_only=read_only, config=config)
    return ibis.duckdb.from_connection(_DuckDB2Connection(con))


def _duckdb_connect(settings: Settings) -> BaseBackend:
    """The DuckDB file; BusyError while another process (an ingest or a run) has it open."""
    import duckdb

    path = settings.resolve(settings.warehouse.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb_connect(path, memory_limit=settings.warehouse.memory_limit)
    except duckdb.IOException as e:
        if "lock" not in str(e).lower():
            raise
        raise BusyError(
            f"{path} is in use by another process (an ingest or a run); try again when it ends"
        ) from e


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


def _duckdb_append(con: BaseBackend, name: str, data: pa.Table) -> None:
    """Register, insert, unregister: Ibis 12 keeps every in-memory table it registers in DuckDB
    until the process exits, so `con.insert` of Arrow batches would hold all of them (an ingest
    of 100M lines was killed at 23 GB)."""
    raw = con.con
    view = f"_append_{secrets.token_hex(6)}"
    raw.register(view, data)
    try:
        raw.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM "{view}"')
    finally:
        raw.unregister(view)


def _ibis_append(con: BaseBackend, name: str, data: pa.Table) -> None:
    con.insert(name, data)


def _duckdb_write(con: BaseBackend, name: str, expr: ir.Table) -> None:
    """CREATE TABLE AS through a Parquet file. Written straight into a table, the 5M-customer
    profiles query ran out of the 2 GB memory limit; COPY of the same query spills and passes."""
    with tempfile.TemporaryDirectory(prefix="tierwise-write-") as tmp:
        path = str(Path(tmp) / f"{name}.parquet").replace("'", "''")
        expr.to_parquet(path)
        con.raw_sql(f"CREATE TABLE \"{name}\" AS SELECT * FROM read_parquet('{path}')")


def _ibis_write(con: BaseBackend, name: str, expr: ir.Table) -> None:
    con.create_table(name, expr)


@dataclass(frozen=True)
class Backend:
    connect: Callable[[Settings], BaseBackend]
    transaction: Callable[[BaseBackend], contextlib.AbstractContextManager[None]]
    append: Callable[[BaseBackend, str, pa.Table], None]
    write: Callable[[BaseBackend, str, ir.Table], None]


BACKENDS: dict[str, Backend] = {
    "duckdb": Backend(_duckdb_connect, _duckdb_transaction, _duckdb_append, _duckdb_write),
    "pyspark": Backend(_spark_connect, _no_transaction, _ibis_append, _ibis_write),
}


def backend_of(con: BaseBackend) -> Backend:
    return BACKENDS[con.name]


def connect(settings: Settings) -> BaseBackend:
    return BACKENDS[settings.warehouse.engine].connect(settings)


def transaction(con: BaseBackend) -> contextlib.AbstractContextManager[None]:
    """All-or-nothing writes where the backend has transactions."""
    return backend_of(con).transaction(con)


def write(con: BaseBackend, name: str, expr: ir.Table) -> None:
    """Create table `name` holding the result of `expr` (a new snapshot table of a run)."""
    backend_of(con).write(con, name, expr)


def append(con: BaseBackend, name: str, data: pa.Table) -> None:
    """Append Arrow rows to an existing table, keeping no reference to them afterwards."""
    backend_of(con).append(con, name, data)
