"""Profile export contract: one row per customer of a snapshot, as CSV, Parquet or XLSX.

Spreadsheet formats neutralise text cells that a spreadsheet would run as a formula
(starting with = + - @ tab or CR) by prefixing a single quote. Numbers stay numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from ibis.backends import BaseBackend

from tierwise.core.errors import DataError, TierwiseError
from tierwise.services.run import RUNS, current_run, snapshot_table

PROFILE_COLUMNS = (
    "customer_id",
    "first_order_at",
    "last_order_at",
    "orders",
    "revenue",
    "avg_order_value",
    "recency_days",
    "tenure_days",
    "r_score",
    "f_score",
    "m_score",
    "rfm_code",
    "rfm_segment",
    "rfm_class8",
    "abc_class",
    "value_tier",
    "lifecycle_stage",
    "profit",
    "is_unprofitable",
)
"""The contract's columns first, in this order; every other snapshot column follows."""

XLSX_MAX_ROWS = 1_048_575
_FORMULA = r"^[=+\-@\t\r]"


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    run_id: str


def resolve_run(con: BaseBackend, *, run_id: str | None, as_of: date | None) -> str:
    """The current snapshot, or the one of a given run id or as_of date (latest such run)."""
    if run_id is None and as_of is None:
        found = current_run(con)
        if not found:
            raise DataError("no snapshot yet: run `tierwise run` first")
        return found[0]
    if RUNS not in con.list_tables():
        raise DataError("no runs recorded yet: run `tierwise run` first")
    runs = con.table(RUNS)
    ok = runs.filter(runs.status == "succeeded")
    ok = ok.filter(ok.run_id == run_id) if run_id else ok.filter(ok.as_of == as_of)
    ids = ok.order_by(ok.run_id.desc()).select("run_id").limit(1).to_pyarrow().column(0)
    if not len(ids):
        raise DataError(f"no successful run for {'run ' + run_id if run_id else f'as_of {as_of}'}")
    return ids[0].as_py()


def neutralise(table: pa.Table) -> pa.Table:
    """Prefix text cells that would start a spreadsheet formula with a quote."""
    cols = []
    for col in table.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            risky = pc.match_substring_regex(col, _FORMULA)
            col = pc.if_else(risky, pc.binary_join_element_wise("'", col, ""), col)
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def export_profiles(
    con: BaseBackend, out: Path, *, run_id: str | None = None, as_of: date | None = None
) -> ExportResult:
    run_id = resolve_run(con, run_id=run_id, as_of=as_of)
    profiles = con.table(snapshot_table("profiles", run_id))
    # Nested columns (the recommendation lists) fit no spreadsheet cell: left out, their top
    # product ids travel as `recommended_product_ids` ("P1;P2;…", repeat and new interleaved).
    rest = [
        c
        for c in profiles.columns
        if c not in PROFILE_COLUMNS and not profiles[c].type().is_nested()
    ]
    ordered = profiles.select(*PROFILE_COLUMNS, *rest).order_by("customer_id")
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".xlsx"):
        raise TierwiseError(f"{out}: export as .csv, .parquet or .xlsx")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    rows = 0
    if suffix == ".xlsx":
        rows = _write_xlsx(ordered.to_pyarrow(), tmp)
    else:
        reader = ordered.to_pyarrow_batches(chunk_size=100_000)
        writer: pq.ParquetWriter | pacsv.CSVWriter
        if suffix == ".parquet":
            writer = pq.ParquetWriter(tmp, reader.schema)
        else:
            writer = pacsv.CSVWriter(tmp, reader.schema)
        with writer:
            for batch in reader:
                table = pa.Table.from_batches([batch])
                writer.write_table(neutralise(table) if suffix == ".csv" else table)
                rows += len(table)
    tmp.replace(out)
    return ExportResult(out, rows, run_id)


def _write_xlsx(table: pa.Table, path: Path) -> int:
    import openpyxl

    if len(table) > XLSX_MAX_ROWS:
        raise TierwiseError(
            f"{len(table):,} rows do not fit one Excel sheet ({XLSX_MAX_ROWS:,}); "
            "export .csv or .parquet instead"
        )
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("profiles")
    sheet.append(table.column_names)
    for batch in neutralise(table).to_batches(50_000):
        for row in zip(*(c.to_pylist() for c in batch.columns), strict=True):
            sheet.append(list(row))
    book.save(path)
    return len(table)
