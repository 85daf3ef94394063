"""Load every configured source into the warehouse's canonical tables, losing no row.

Per file: rows_in == accepted + rejected + duplicates_merged. Rejects go to `_quarantine` with
file, line, column, reason and raw text; exact duplicate rows (same content hash, within the
file or against what is stored) are merged and counted. A file whose SHA-256 was loaded before
is skipped as unchanged. Each file is staged, then committed in one transaction with its
ledger row, so a failure leaves what was stored before untouched.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
from ibis.backends import BaseBackend

from tierwise.core.contracts import ATTRIBUTES, TABLES, TableContract
from tierwise.core.errors import SourceError
from tierwise.core.settings import Settings, SourceSettings
from tierwise.services import warehouse as wh
from tierwise.services.erase import ERASED_SUBJECT, ErasedSubjects, erased_subjects
from tierwise.services.locking import warehouse_lock
from tierwise.services.meta import (
    LEDGER,
    LEDGER_SCHEMA,
    QUARANTINE,
    ensure_meta_tables,
)
from tierwise.services.parse import ARROW_TYPES, load_cutoff, parse_batch
from tierwise.services.quality import quality_report, save_report
from tierwise.services.readers import OpenedSource, expand, open_file, open_table

Progress = Callable[[str, int], None]
"""Called with (source name, rows read so far) as a file is read."""


@dataclass
class FileReport:
    table_name: str
    source: str
    status: str  # loaded | unchanged | failed
    sha256: str = ""
    encoding: str | None = None
    rows_in: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates_merged: int = 0
    seconds: float = 0.0
    message: str = ""
    ingest_id: str = ""
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def reconciles(self) -> bool:
        return self.rows_in == self.accepted + self.rejected + self.duplicates_merged


@dataclass
class IngestReport:
    batch_id: str
    files: list[FileReport]

    @property
    def failed(self) -> list[FileReport]:
        return [f for f in self.files if f.status == "failed"]

    def as_dict(self) -> dict[str, object]:
        return {"batch_id": self.batch_id, "files": [asdict(f) for f in self.files]}


def table_schema(contract: TableContract) -> ibis.Schema:
    """The stored schema of a canonical table: its columns, attributes and lineage."""
    types = {c.name: ARROW_TYPES[c.kind] for c in contract.columns}
    cols: dict[str, object] = {name: ibis.dtype(t) for name, t in types.items()}
    cols[ATTRIBUTES] = "string"
    cols |= {"_source": "string", "_line": "int64", "_ingest_id": "string", "_row_hash": "string"}
    return ibis.schema(cols)


def new_id() -> str:
    """Sortable by time, unique across processes."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f") + secrets.token_hex(3)


def ingest(
    settings: Settings, *, tables: list[str] | None = None, progress: Progress | None = None
) -> IngestReport:
    """Ingest the configured sources (or only `tables`); one lock for the whole batch."""
    wanted = tables or list(settings.sources)
    unknown = [t for t in wanted if t not in settings.sources]
    if unknown:
        raise SourceError(f"no source configured for {', '.join(unknown)} in {settings.root}")
    batch_id = new_id()
    files: list[FileReport] = []
    path = settings.resolve(settings.warehouse.path)
    with warehouse_lock(path, "ingest"):
        erased = erased_subjects(settings)
        con = wh.connect(settings)
        ensure_meta_tables(con)
        for name in wanted:
            src = settings.sources[name]
            try:
                opened = _open_all(settings, src)
            except SourceError as e:
                files.append(FileReport(name, str(src.path or src.table), "failed", message=str(e)))
                continue
            for opener in opened:
                files.append(
                    _ingest_one(con, settings, name, src, opener, batch_id, erased, progress)
                )
        save_report(con, batch_id, quality_report(con))
    return IngestReport(batch_id, files)


def _open_all(settings: Settings, src: SourceSettings) -> list[Callable[[], OpenedSource]]:
    if src.connection:
        return [partial(open_table, src)]
    assert src.path is not None
    return [partial(open_file, p, src) for p in expand(settings.root, src.path)]


def _ingest_one(
    con: BaseBackend,
    settings: Settings,
    name: str,
    src: SourceSettings,
    opener: Callable[[], OpenedSource],
    batch_id: str,
    erased: ErasedSubjects,
    progress: Progress | None,
) -> FileReport:
    started = datetime.now(UTC).replace(tzinfo=None)
    t0 = time.perf_counter()
    ingest_id = new_id()
    try:
        opened = opener()
    except SourceError as e:
        return FileReport(name, str(src.path), "failed", message=str(e), ingest_id=ingest_id)
    report = FileReport(
        name, opened.name, "loaded", opened.sha256, opened.encoding, ingest_id=ingest_id
    )
    previous = _loaded_before(con, name, opened.sha256)
    if previous:
        report.status = "unchanged"
        report.message = f"unchanged since ingest {previous}: 0 rows added"
    else:
        stage = f"_stage_{ingest_id}"
        try:
            mapping = _mapping(opened, TABLES[name], src)
            rejects = _stage(
                con, stage, opened, TABLES[name], mapping, settings, erased, report, progress
            )
            ledger = lambda: _write_ledger(con, report, batch_id, started, t0)  # noqa: E731
            _commit(con, stage, TABLES[name], report, rejects, ledger)
            return report
        except SourceError as e:
            report.status, report.message = "failed", str(e)
        finally:
            con.drop_table(stage, force=True)
    _write_ledger(con, report, batch_id, started, t0)
    return report


def _loaded_before(con: BaseBackend, name: str, sha256: str) -> str | None:
    ledger = con.table(LEDGER)
    hits = (
        ledger.filter(
            (ledger.table_name == name) & (ledger.sha256 == sha256) & (ledger.status == "loaded")
        )
        .order_by("ingest_id")
        .select("ingest_id")
        .limit(1)
    )
    found = hits.to_pyarrow().column(0).to_pylist()
    return found[0] if found else None


def _mapping(opened: OpenedSource, contract: TableContract, src: SourceSettings) -> dict[str, str]:
    """canonical -> source column; a configured or required column missing is an error."""
    header = set(opened.columns)
    mapping: dict[str, str] = {}
    for col in contract.columns:
        source = src.columns.get(col.name, col.name)
        if source in header:
            mapping[col.name] = source
        elif col.name in src.columns or col.required:
            raise SourceError(
                f"{opened.name}: line 1: no column {source!r} for {contract.name}.{col.name}; "
                f"the header has: {', '.join(opened.columns)}"
            )
    return mapping


@dataclass
class _Rejects:
    lines: list[int] = field(default_factory=list)
    columns: list[str | None] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    values: list[str | None] = field(default_factory=list)
    raw: list[str | None] = field(default_factory=list)


def _stage(
    con: BaseBackend,
    stage: str,
    opened: OpenedSource,
    contract: TableContract,
    mapping: dict[str, str],
    settings: Settings,
    erased: ErasedSubjects,
    report: FileReport,
    progress: Progress | None,
) -> _Rejects:
    cutoff = load_cutoff(settings.business_timezone)
    rejects = _Rejects()
    created = False
    for batch in opened.batches:
        report.rows_in += len(batch.table) + len(batch.rejects)
        for r in batch.rejects:
            rejects.lines.append(r.line)
            rejects.columns.append(None)
            code, _, detail = r.reason.partition(": ")
            rejects.reasons.append(code)
            rejects.values.append(detail or None)
            rejects.raw.append(r.raw)
        parsed = parse_batch(
            batch.table,
            batch.lines,
            contract,
            mapping,
            timezone=settings.business_timezone,
            load_date=cutoff,
        )
        rejects.lines += parsed.rejected_lines
        rejects.columns += parsed.rejected_columns
        rejects.reasons += parsed.rejected_reasons
        rejects.values += parsed.rejected_values
        rejects.raw += parsed.rejected_raw
        accepted, lines = parsed.accepted, parsed.accepted_lines
        if erased:
            accepted, lines = _reject_erased(accepted, lines, erased, rejects)
        n = len(accepted)
        accepted = accepted.append_column("_source", pa.array([opened.name] * n, pa.string()))
        accepted = accepted.append_column("_line", lines)
        accepted = accepted.append_column(
            "_ingest_id", pa.array([report.ingest_id] * n, pa.string())
        )
        if not created:
            con.create_table(stage, schema=ibis.Schema.from_pyarrow(accepted.schema))
            created = True
        if n:
            wh.append(con, stage, accepted)
        if progress:
            progress(opened.name, report.rows_in)
    if not created:
        raise SourceError(f"{opened.name}: no data rows after the header")
    return rejects


def _reject_erased(
    accepted: pa.Table, lines: pa.Array, erased: ErasedSubjects, rejects: _Rejects
) -> tuple[pa.Table, pa.Array]:
    """Rows of erased people are rejected without keeping their text (that is the point)."""
    mask, columns = erased.matches(accepted)
    hit_lines = lines.filter(mask).to_pylist()
    if not hit_lines:
        return accepted, lines
    rejects.lines += hit_lines
    rejects.columns += [c for c, hit in zip(columns, mask.to_pylist(), strict=True) if hit]
    rejects.reasons += [ERASED_SUBJECT] * len(hit_lines)
    rejects.values += [None] * len(hit_lines)
    rejects.raw += [None] * len(hit_lines)
    keep = pc.invert(mask)
    return accepted.filter(keep), lines.filter(keep)


def _row_key(t: ir.Table, contract: TableContract) -> ir.StringValue:
    """Content hash over every canonical column and the attributes: equal rows, equal key."""
    parts = [t[c].cast("string").fill_null("\x00") for c in (*contract.names, ATTRIBUTES)]
    return ibis.literal("\x1f").join(parts).hexdigest("md5")


def _commit(
    con: BaseBackend,
    stage: str,
    contract: TableContract,
    report: FileReport,
    rejects: _Rejects,
    write_ledger: Callable[[], None],
) -> None:
    staged = con.table(stage)
    staged = staged.mutate(_row_hash=_row_key(staged, contract))
    ranked = staged.mutate(_rn=ibis.row_number().over(group_by="_row_hash", order_by="_line"))
    fresh = ranked.filter(ranked._rn == 0).drop("_rn")
    schema = table_schema(contract)
    if contract.name not in con.list_tables():
        con.create_table(contract.name, schema=schema)
    target = con.table(contract.name)
    fresh = fresh.anti_join(target, fresh._row_hash == target._row_hash)
    fresh = fresh.select([fresh[c].cast(schema[c]).name(c) for c in schema.names])
    staged_rows = int(staged.count().execute())
    with wh.transaction(con):
        before = int(con.table(contract.name).count().execute())
        con.insert(contract.name, fresh)
        report.accepted = int(con.table(contract.name).count().execute()) - before
        report.rejected = len(rejects.lines)
        report.duplicates_merged = staged_rows - report.accepted
        if not report.reconciles:  # a bug, never a data problem: refuse to store it
            raise AssertionError(f"ingest does not reconcile: {report}")
        report.reasons = dict(Counter(rejects.reasons).most_common())
        if rejects.lines:
            con.insert(QUARANTINE, _quarantine_rows(report, rejects))
        write_ledger()


def _quarantine_rows(report: FileReport, rejects: _Rejects) -> ir.Table:
    n = len(rejects.lines)
    return ibis.memtable(
        pa.table(
            {
                "ingest_id": [report.ingest_id] * n,
                "table_name": [report.table_name] * n,
                "source": [report.source] * n,
                "line": pa.array(rejects.lines, pa.int64()),
                "column_name": pa.array(rejects.columns, pa.string()),
                "reason": rejects.reasons,
                "value": pa.array(rejects.values, pa.string()),
                "raw": rejects.raw,
            }
        )
    )


def _write_ledger(
    con: BaseBackend, report: FileReport, batch_id: str, started: datetime, t0: float
) -> None:
    report.seconds = time.perf_counter() - t0
    row = {
        "ingest_id": report.ingest_id,
        "batch_id": batch_id,
        "table_name": report.table_name,
        "source": report.source,
        "sha256": report.sha256,
        "encoding": report.encoding,
        "status": report.status,
        "rows_in": report.rows_in,
        "accepted": report.accepted,
        "rejected": report.rejected,
        "duplicates_merged": report.duplicates_merged,
        "started_at": started,
        "seconds": report.seconds,
        "message": report.message,
    }
    con.insert(LEDGER, ibis.memtable({k: [v] for k, v in row.items()}, schema=LEDGER_SCHEMA))
