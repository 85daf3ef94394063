"""Erasure (right to be forgotten): remove a person from the store and the warehouse for good.

The person's rows are deleted from every warehouse table that has a customer_id (raw tables and
every retained run snapshot), reject lines mentioning them lose their raw text, and the DuckDB
file is rewritten so the deleted bytes do not linger in free blocks. Their id, phones and e-mails
go on the suppression list as hashes, so a later ingest rejects them (`erased_subject`) without
storing the line again. The audit log keeps counts and the hash of the id, never the person.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from ibis.backends import BaseBackend
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tierwise.core.errors import (
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    TierwiseError,
)
from tierwise.core.settings import Settings
from tierwise.services import warehouse as wh
from tierwise.services.access import ERASE, Viewer, can
from tierwise.services.locking import warehouse_lock
from tierwise.services.meta import QUARANTINE
from tierwise.services.serving import Store, store_url
from tierwise.store.audit import audit
from tierwise.store.models import PublishedRun, RunStatus, SubjectKind, SuppressionReason
from tierwise.store.publish import store_dashboard
from tierwise.store.suppression import erase_customer, subject_hash, suppress, suppressed_hashes

ERASED_SUBJECT = "erased_subject"
"""Reject reason of an ingested line that belongs to an erased person."""

CONTACT_COLUMNS = {"phone": SubjectKind.PHONE, "email": SubjectKind.EMAIL}
"""Columns of the customers table that identify a person besides the id."""


@dataclass(frozen=True)
class ErasedSubjects:
    """Hashes of erased ids, phones and e-mails, loaded once per ingest."""

    hashes: dict[SubjectKind, frozenset[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.hashes.values())

    def matches(self, table: pa.Table) -> tuple[pa.Array, list[str | None]]:
        """A mask of rows belonging to an erased subject, and the column that matched per row."""
        mask = pa.array([False] * len(table))
        columns: list[str | None] = [None] * len(table)
        checks = [("customer_id", SubjectKind.CUSTOMER_ID), *CONTACT_COLUMNS.items()]
        for column, kind in checks:
            wanted = self.hashes.get(kind)
            if not wanted or column not in table.column_names:
                continue
            values = table[column]
            hits = [v for v in pc.unique(values).to_pylist() if v and _hash(kind, v) in wanted]
            if not hits:
                continue
            found = pc.fill_null(pc.is_in(values, value_set=pa.array(hits)), False)
            for i in pc.indices_nonzero(pc.and_not(found, mask)).to_pylist():
                columns[i] = column
            mask = pc.or_(mask, found)
        return mask, columns


def _hash(kind: SubjectKind, value: str) -> str | None:
    try:
        return subject_hash(kind, value)
    except InvalidInputError:
        return None  # not a usable phone or e-mail: nobody can be reached through it


def erased_subjects(settings: Settings) -> ErasedSubjects:
    """The erasure list of the configured store; empty when no store was created yet."""
    url = make_url(store_url(settings))
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return ErasedSubjects()
    from tierwise.services.serving import opened_store  # the store is optional for ingest

    with opened_store(settings) as store, store.read() as session:
        return ErasedSubjects(
            {
                kind: frozenset(suppressed_hashes(session, kind, reason=SuppressionReason.ERASED))
                for kind in SubjectKind
            }
        )


@dataclass(frozen=True)
class ErasureReceipt:
    """What was removed; holds the id the caller asked about, never the person's contacts."""

    customer_id: str
    subject: str
    """sha256 of the id: how the audit log and the suppression list refer to the person."""
    erased_at: datetime
    store_rows: dict[str, int]
    warehouse_rows: dict[str, int]
    redacted_rejects: int
    suppressed_contacts: int


def forget(settings: Settings, store: Store, customer_id: str, *, actor: str) -> ErasureReceipt:
    """Erase one customer everywhere; NotFoundError when no table knows the id."""
    customer_id = customer_id.strip()
    if not customer_id:
        raise InvalidInputError("empty customer id")
    path = settings.resolve(settings.warehouse.path)
    with warehouse_lock(path, "erase"):
        con = wh.connect(settings) if path.exists() else None
        try:
            contacts = _warehouse_contacts(con, customer_id) if con is not None else []
            with store.write.begin() as session:
                suppressed = 0
                for kind, value in contacts:
                    if _hash(kind, value) is not None:
                        suppress(session, kind, value, SuppressionReason.ERASED)
                        suppressed += 1
                store_rows = erase_customer(session, customer_id, actor=actor)
                warehouse_rows, redacted = (
                    _erase_warehouse(con, customer_id, [v for _, v in contacts])
                    if con is not None
                    else ({}, 0)
                )
                if not (contacts or any(store_rows.values()) or any(warehouse_rows.values())):
                    raise NotFoundError(f"no customer {customer_id!r}")  # rolls the store back
                if con is not None:
                    _recount_dashboards(session, con)
        finally:
            if con is not None:
                con.disconnect()
        if con is not None:
            compact_duckdb(path, memory_limit=settings.warehouse.memory_limit)
    _checkpoint_store(store)
    return ErasureReceipt(
        customer_id=customer_id,
        subject=subject_hash(SubjectKind.CUSTOMER_ID, customer_id),
        erased_at=datetime.now(UTC),
        store_rows=store_rows,
        warehouse_rows=warehouse_rows,
        redacted_rejects=redacted,
        suppressed_contacts=suppressed,
    )


def forget_as(settings: Settings, store: Store, viewer: Viewer, customer_id: str) -> ErasureReceipt:
    """`forget` for a signed-in user: only roles with the erase permission; refusals audited."""
    if not can(viewer, ERASE):
        with store.write.begin() as session:
            audit(session, viewer.username, "denied", None, attempted="customer_erase")
        raise PermissionDeniedError(f"role {viewer.role!r} may not erase customers")
    return forget(settings, store, customer_id, actor=viewer.username)


def _duck(con: BaseBackend) -> duckdb.DuckDBPyConnection:
    if con.name != "duckdb":
        raise TierwiseError(
            f"erasure is implemented for the DuckDB warehouse only, not {con.name}: "
            "delete the person's rows from the Spark tables by hand"
        )
    raw: duckdb.DuckDBPyConnection = con.con
    return raw


def _warehouse_contacts(con: BaseBackend, customer_id: str) -> list[tuple[SubjectKind, str]]:
    if "customers" not in con.list_tables():
        return []
    rows = (
        _duck(con)
        .execute("SELECT DISTINCT phone, email FROM customers WHERE customer_id = ?", [customer_id])
        .fetchall()
    )
    found = {(SubjectKind.PHONE, p) for p, _ in rows if p} | {
        (SubjectKind.EMAIL, e) for _, e in rows if e
    }
    return sorted(found)


def _tables_with_customers(raw: duckdb.DuckDBPyConnection) -> list[str]:
    rows = raw.execute(
        "SELECT table_name FROM information_schema.columns "
        "WHERE column_name = 'customer_id' AND table_schema = 'main' ORDER BY table_name"
    ).fetchall()
    return [name for (name,) in rows]


def _erase_warehouse(
    con: BaseBackend, customer_id: str, contacts: Iterable[str]
) -> tuple[dict[str, int], int]:
    """Delete the person's rows everywhere and blank the raw text of rejects naming them."""
    raw = _duck(con)
    names: set[str] = set()
    if "customers" in con.list_tables():
        query = "SELECT DISTINCT name FROM customers WHERE customer_id = ? AND name IS NOT NULL"
        names = {v for (v,) in raw.execute(query, [customer_id]).fetchall()}
    deleted: dict[str, int] = {}
    with wh.transaction(con):
        for table in _tables_with_customers(raw):
            count = raw.execute(
                f'DELETE FROM "{table}" WHERE customer_id = ?', [customer_id]
            ).fetchall()[0][0]
            if count:
                deleted[table] = int(count)
        if QUARANTINE not in con.list_tables():
            return deleted, 0
        patterns = [rf"(^|[^0-9A-Za-z_]){re.escape(customer_id)}([^0-9A-Za-z_]|$)"]
        patterns += [re.escape(v) for v in {*contacts, *names} if v]
        pattern = "|".join(patterns)
        redacted = raw.execute(
            f"UPDATE {QUARANTINE} SET raw = NULL, value = NULL "
            "WHERE regexp_matches(coalesce(raw, '') || chr(10) || coalesce(value, ''), ?)",
            [pattern],
        ).fetchall()[0][0]
    return deleted, int(redacted)


def _recount_dashboards(session: Session, con: BaseBackend) -> None:
    """Published runs' dashboard summaries without the erased person: every server process
    reads them from the store, so none keeps showing the old totals."""
    from tierwise.services.dashboard import RunRef, run_dashboard  # it imports ingest, and so us

    runs = session.execute(
        select(PublishedRun.run_id, PublishedRun.as_of).where(
            PublishedRun.status == RunStatus.PUBLISHED.value
        )
    ).all()
    for run_id, as_of in runs:
        document = run_dashboard(con, RunRef(run_id, as_of))
        if document is not None:
            store_dashboard(session, run_id, document)


def compact_duckdb(path: Path, *, memory_limit: str | None = None) -> None:
    """Rewrite the DuckDB file with live data only: deleted values leave no bytes behind.

    Opened with the warehouse's own configuration: DuckDB refuses a second connection to a file
    with another one in the same process (the dashboard may be reading it).
    """
    fresh = path.with_name(path.name + ".compact")
    fresh.unlink(missing_ok=True)
    con = duckdb.connect(str(path), config={"memory_limit": memory_limit} if memory_limit else {})
    try:
        con.execute("CHECKPOINT")
        con.execute(f"ATTACH '{_sql_path(fresh)}' AS compacted")
        db = con.execute("SELECT current_database()").fetchall()[0][0]
        con.execute(f'COPY FROM DATABASE "{db}" TO compacted')
        con.execute("DETACH compacted")
    finally:
        con.close()
    fresh.replace(path)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _checkpoint_store(store: Store) -> None:
    """SQLite keeps changed pages in its write-ahead log until a checkpoint; fold and empty it."""
    if store.engine.dialect.name == "sqlite":
        raw = store.engine.raw_connection()  # outside a transaction, which would block it
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            cursor.close()
        finally:
            raw.close()
