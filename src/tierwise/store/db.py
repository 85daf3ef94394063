"""Engines, sessions and migrations of the operational store (SQLite file or PostgreSQL).

SQLite transactions are begun by SQLAlchemy rather than the sqlite3 module, so reads are
transactional and SAVEPOINTs nest correctly. Write sessions start with BEGIN IMMEDIATE: they take
the database write lock up front and wait for it (busy timeout), instead of failing with
"database is locked" when a concurrent writer commits between their first read and first write.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tierwise.store.models import Base

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for the write lock before giving up."""

_MIGRATION_LOCK = 727_101
"""PostgreSQL advisory lock key held while migrating, so two starting servers migrate once."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `sqlite:///path` or `postgresql://…` (always through psycopg 3)."""
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        engine = create_engine(u.set(drivername="postgresql+psycopg"), **kwargs)
    elif u.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
        engine = create_engine(u, **kwargs)
        _tune_sqlite(engine)
    else:
        raise ValueError(
            f"unsupported store database {u.get_backend_name()!r}: use sqlite or postgresql"
        )
    return engine


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA page_size = 8192")  # new files only: a profile row fits a page
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA secure_delete = ON")  # erased personal data is overwritten
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def session_factory(engine: Engine, *, readonly: bool = False) -> sessionmaker[Session]:
    """Sessions on `engine`; `readonly` ones on SQLite begin DEFERRED and never block writers.

    A read-only session sees one consistent snapshot per transaction on SQLite; it may still
    write, but then risks "database is locked" under concurrent writers.
    """
    bind = engine.execution_options(sqlite_begin="DEFERRED") if readonly else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


def alembic_config() -> Config:
    """Alembic configured in code: the scripts ship inside the package, no alembic.ini."""
    cfg = Config()
    cfg.set_main_option("script_location", str(files("tierwise.store") / "migrations"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the schema to `revision` (head by default); the only way tables are created."""
    cfg = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (None for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def schema_diff(engine: Engine) -> list[Any]:
    """Differences between the models and the migrated schema; empty when they agree.

    Alembic does not compare the WHERE of partial indexes, which carry the one-current-run and
    one-active-task rules, so a partial index migrated without its predicate is reported too.
    """
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs: list[Any] = list(compare_metadata(ctx, Base.metadata))
        where = f"{conn.dialect.name}_where"
        reflected = inspect(conn)
        for table in Base.metadata.sorted_tables:
            partial = {i.name for i in table.indexes if i.dialect_kwargs.get(where) is not None}
            for index in reflected.get_indexes(table.name) if partial else []:
                options = index.get("dialect_options", {})
                if index["name"] in partial and options.get(where) is None:
                    diffs.append(("index_predicate_missing", table.name, index["name"]))
    return diffs
