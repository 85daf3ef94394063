"""Migrations build the schema on both databases, and the models agree with it exactly."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from tierwise.store.db import alembic_config, current_revision, make_engine, schema_diff, upgrade
from tierwise.store.models import Base, PublishedRun, User


def test_migrations_reach_head_and_match_the_models(empty_url):
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None and len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1
    engine = make_engine(empty_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        assert schema_diff(engine) == []
        upgrade(engine)  # already at head: nothing to do
        assert current_revision(engine) == head
    finally:
        engine.dispose()


def test_schema_diff_sees_a_lost_partial_index_predicate(engine):
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX uq_tasks_active_customer_reason"))
        conn.execute(
            text(
                "CREATE UNIQUE INDEX uq_tasks_active_customer_reason ON tasks (customer_id, reason)"
            )
        )
    assert ("index_predicate_missing", "tasks", "uq_tasks_active_customer_reason") in schema_diff(
        engine
    )


def test_sqlite_engine_enforces_foreign_keys_and_uses_wal(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_plain_postgresql_urls_use_psycopg():
    engine = make_engine("postgresql://u@127.0.0.1:1/db")
    assert engine.dialect.driver == "psycopg"
    with pytest.raises(ValueError, match="unsupported"):
        make_engine("mysql://u@h/db")


def test_check_constraints_and_single_current_run(session):
    session.add(
        User(username="x1", display_name="x", role="boss", password_hash="h", disabled=False)
    )
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()
    for run_id in ("r1", "r2"):
        session.add(
            PublishedRun(run_id=run_id, as_of=date(2024, 1, 1), status="published", is_current=True)
        )
    with pytest.raises(IntegrityError):
        session.flush()


def test_timestamps_come_back_as_aware_utc(session):
    shanghai = timezone(timedelta(hours=8))
    at = datetime(2024, 5, 1, 20, 30, 15, 123456, tzinfo=shanghai)
    session.add(
        User(
            username="tz",
            display_name="tz",
            role="agent",
            password_hash="h",
            created_at=at,
            password_changed_at=at,
        )
    )
    session.commit()
    session.expire_all()
    stored = session.scalar(select(User.created_at).where(User.username == "tz"))
    assert stored == at and stored.tzinfo == UTC
    with pytest.raises(Exception, match="naive datetime"):
        session.add(
            User(
                username="naive",
                display_name="n",
                role="agent",
                password_hash="h",
                created_at=datetime(2024, 1, 1),
            )
        )
        session.flush()


def test_migration_0005_copies_scores_out_of_published_documents_and_downgrades(empty_url):
    engine = make_engine(empty_url)
    try:
        upgrade(engine, "0004")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO published_runs (run_id, as_of, status, created_at, customers, "
                    "is_current) VALUES ('r1', '2025-01-31', 'published', :now, 2, true)"
                ),
                {"now": datetime.now(UTC)},
            )
            for cid, doc in (("a", '{"r_score": 5, "f_score": 2}'), ("b", '{"r_score": null}')):
                conn.execute(
                    text(
                        "INSERT INTO published_profiles (run_id, customer_id, profile) "
                        "VALUES ('r1', :cid, :doc)"
                    ),
                    {"cid": cid, "doc": doc},
                )
        upgrade(engine)
        assert schema_diff(engine) == []
        with engine.connect() as conn:
            scores = conn.execute(
                text("SELECT customer_id, r_score, f_score FROM published_profiles ORDER BY 1")
            ).all()
        assert [tuple(r) for r in scores] == [("a", 5, 2), ("b", None, None)]
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
        columns = {c["name"] for c in inspect(engine).get_columns("published_profiles")}
        assert "r_score" not in columns
    finally:
        engine.dispose()


def test_migration_0006_drops_segment_summaries_and_downgrade_restores_the_table(empty_url):
    engine = make_engine(empty_url)
    try:
        upgrade(engine, "0005")
        assert "segment_summaries" in inspect(engine).get_table_names()
        upgrade(engine)
        assert "segment_summaries" not in inspect(engine).get_table_names()
        assert schema_diff(engine) == []
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005")
        inspector = inspect(engine)
        assert "segment_summaries" in inspector.get_table_names()
        assert inspector.get_pk_constraint("segment_summaries")["constrained_columns"] == [
            "run_id", "dimension", "key"
        ]  # fmt: skip
    finally:
        engine.dispose()
