"""Warehouse bookkeeping tables: the ingest ledger, quarantine and saved quality reports."""

from __future__ import annotations

import ibis
from ibis.backends import BaseBackend

LEDGER = "_ingest_ledger"
QUARANTINE = "_quarantine"

LEDGER_SCHEMA = ibis.schema(
    {
        "ingest_id": "string",
        "batch_id": "string",
        "table_name": "string",
        "source": "string",
        "sha256": "string",
        "encoding": "string",
        "status": "string",
        "rows_in": "int64",
        "accepted": "int64",
        "rejected": "int64",
        "duplicates_merged": "int64",
        "started_at": "timestamp",
        "seconds": "float64",
        "message": "string",
    }
)
QUARANTINE_SCHEMA = ibis.schema(
    {
        "ingest_id": "string",
        "table_name": "string",
        "source": "string",
        "line": "int64",
        "column_name": "string",
        "reason": "string",
        "value": "string",
        "raw": "string",
    }
)
REPORTS = "_quality_reports"
REPORTS_SCHEMA = ibis.schema({"batch_id": "string", "created_at": "timestamp", "report": "string"})


def ensure_meta_tables(con: BaseBackend) -> None:
    existing = set(con.list_tables())
    for name, schema in (
        (LEDGER, LEDGER_SCHEMA),
        (QUARANTINE, QUARANTINE_SCHEMA),
        (REPORTS, REPORTS_SCHEMA),
    ):
        if name not in existing:
            con.create_table(name, schema=schema)
