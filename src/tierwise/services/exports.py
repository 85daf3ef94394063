"""Customer exports from the operational store, for people: the one path the API and the CLI share.

Unlike `services.export` (the warehouse's full snapshot, for pipelines), these files hold only the
customers the viewer may read (`scope`), masked like the screens, with spreadsheet formulas
neutralised. A marketing export further drops everyone who did not consent to marketing, opted
out or was erased; erased subjects are dropped from every export. Each export is audited with its
filters, fields, row count and sha256, never with personal data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from tierwise.core.errors import InvalidInputError, TierwiseError
from tierwise.services.access import PII_READ, Principal, Viewer, can, for_viewer
from tierwise.services.export import XLSX_MAX_ROWS, neutralise
from tierwise.services.serving import SUMMARY_FIELDS, CustomerFilter, Store, filtered
from tierwise.store.audit import audit
from tierwise.store.models import (
    ConsentEvent,
    PublishedProfile,
    Role,
    SubjectKind,
    Suppression,
    SuppressionReason,
)
from tierwise.store.publish import current_run
from tierwise.store.suppression import subject_hash

Purpose = Literal["analysis", "marketing"]
FORMATS = (".csv", ".xlsx")
MARKETING = "marketing"
"""The consent purpose a marketing export needs."""

LOCAL_OPERATOR = Principal(0, "cli", "local operator", Role.ADMIN.value, None)
"""The CLI's viewer: whoever runs it can read the store's database anyway (see serving)."""

_TYPES = {
    "revenue": pa.float64(),
    "clv": pa.float64(),
    "churn_probability": pa.float64(),
    "profit": pa.float64(),
    "orders": pa.int64(),
    "recency_days": pa.int64(),
    "consent_marketing": pa.bool_(),
}
SCHEMA = pa.schema([(f, _TYPES.get(f, pa.string())) for f in SUMMARY_FIELDS])
"""Columns of an export: the list's fields, numbers kept as numbers."""

_BATCH = 5_000
_CONTACTS = (
    (SubjectKind.CUSTOMER_ID, "customer_id"),
    (SubjectKind.PHONE, "phone"),
    (SubjectKind.EMAIL, "email"),
)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    run_id: str | None
    rows: int
    sha256: str


def _hash_or_none(kind: str, value: str | None) -> str | None:
    if not value:
        return None
    try:
        return subject_hash(kind, value)
    except InvalidInputError:
        return None  # a malformed phone or e-mail matches no suppressed subject


class _Gate:
    """Who may appear in an export of a purpose: suppression and consent, read once."""

    def __init__(self, session: Session, purpose: Purpose) -> None:
        query = select(Suppression.kind, Suppression.subject_hash)
        if purpose != MARKETING:
            query = query.where(Suppression.reason == SuppressionReason.ERASED.value)
        self.blocked = {(k, h) for k, h in session.execute(query)}
        self.marketing = purpose == MARKETING
        self.consent: dict[str, bool] = {}
        if self.marketing:
            events = session.execute(
                select(ConsentEvent.customer_id, ConsentEvent.granted)
                .where(ConsentEvent.purpose == MARKETING)
                .order_by(ConsentEvent.at, ConsentEvent.id)
            )
            self.consent = dict(events.all())  # the latest event per customer wins

    def admits(self, row: PublishedProfile) -> bool:
        """A recorded consent event overrides the source's `consent_marketing` flag."""
        if self.marketing and not self.consent.get(row.customer_id, row.consent_marketing is True):
            return False
        for kind, field in _CONTACTS:
            digest = _hash_or_none(kind, getattr(row, field))
            if digest is not None and (kind.value, digest) in self.blocked:
                return False
        return True


def _batches(
    session: Session, viewer: Viewer, run_id: str | None, where: CustomerFilter, purpose: Purpose
) -> Iterator[pa.Table]:
    if run_id is None:
        return
    gate = _Gate(session, purpose)
    query = (
        filtered(viewer, run_id, where)
        .options(defer(PublishedProfile.profile))
        .order_by(PublishedProfile.customer_id)
        .execution_options(yield_per=_BATCH)
    )
    rows: list[dict[str, Any]] = []
    for profile in session.scalars(query):
        if gate.admits(profile):
            rows.append(for_viewer(viewer, {f: getattr(profile, f) for f in SUMMARY_FIELDS}))
        if len(rows) >= _BATCH:
            yield neutralise(pa.Table.from_pylist(rows, schema=SCHEMA))
            rows = []
    if rows:
        yield neutralise(pa.Table.from_pylist(rows, schema=SCHEMA))


def _write(batches: Iterator[pa.Table], path: Path) -> int:
    rows = 0
    if path.suffix == ".csv":
        with pacsv.CSVWriter(path, SCHEMA) as writer:
            for table in batches:
                writer.write_table(table)
                rows += len(table)
        return rows
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("customers")
    sheet.append(list(SCHEMA.names))
    for table in batches:
        rows += len(table)
        if rows > XLSX_MAX_ROWS:
            raise TierwiseError(
                f"more than {XLSX_MAX_ROWS:,} rows do not fit one Excel sheet; export .csv instead"
            )
        for row in zip(*(c.to_pylist() for c in table.columns), strict=True):
            sheet.append(list(row))
    book.save(path)
    return rows


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_customers(
    store: Store, viewer: Viewer, where: CustomerFilter, *, purpose: Purpose, out: Path
) -> ExportResult:
    """Write the viewer's customers matching `where` to `out` (.csv or .xlsx), then audit it.

    The file appears only when complete (written beside it, then renamed).
    """
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInputError(f"{out.name}: export customers as .csv or .xlsx")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial" + suffix)
    try:
        with store.read() as session:
            run = current_run(session)
            run_id = run.run_id if run else None
            rows = _write(_batches(session, viewer, run_id, where, purpose), partial)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    result = ExportResult(out, run_id, rows, _sha256(out))
    filters = {k: v for k, v in asdict(where).items() if v is not None and k != "q"}
    with store.write.begin() as session:
        audit(
            session,
            viewer.username,
            "export",
            "customers",
            run_id=run_id,
            purpose=purpose,
            format=suffix[1:],
            filters=filters,
            searched=where.q is not None,  # the search text may be a name: never logged
            fields=list(SCHEMA.names),
            masked=not can(viewer, PII_READ),
            rows=rows,
            sha256=result.sha256,
        )
    return result
