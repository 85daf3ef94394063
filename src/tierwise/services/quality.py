"""Data-quality report over the warehouse: what an analyst checks before trusting any score.

Per canonical table: rows, completeness of each column, date range, merged duplicates and
top reject reasons (from the ledger and quarantine); for orders also amount outliers
(Tukey fences, k = 3), returns and orphan orders (customer not in `customers`).
Saved with each ingest in `_quality_reports` as JSON for the dashboard.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import ibis
from ibis.backends import BaseBackend

from tierwise.core.contracts import TABLES
from tierwise.services.meta import LEDGER, QUARANTINE, REPORTS, REPORTS_SCHEMA

OUTLIER_K = 3.0
QUARTILE_LINES = 10_000_000
"""Amount quartiles are exact up to this many order lines, and above it come from a hash sample
of about as many: an exact quantile holds every value in memory (100M lines exceed the
warehouse's 2 GB memory limit)."""


def quality_report(con: BaseBackend) -> dict[str, Any]:
    present = set(con.list_tables())
    tables: dict[str, Any] = {}
    for name, contract in TABLES.items():
        if name not in present:
            continue
        t = con.table(name)
        aggs = {"rows": t.count()}
        aggs |= {f"filled__{c}": t[c].count() for c in contract.names}
        if contract.time_column:
            aggs |= {
                "min_time": t[contract.time_column].min(),
                "max_time": t[contract.time_column].max(),
            }
        row = t.aggregate(**aggs).to_pyarrow().to_pylist()[0]
        rows = row["rows"]
        info: dict[str, Any] = {
            "rows": rows,
            "completeness": {
                c: (row[f"filled__{c}"] / rows if rows else None) for c in contract.names
            },
        }
        if contract.time_column:
            info["date_range"] = [_iso(row["min_time"]), _iso(row["max_time"])]
        tables[name] = info
    if "orders" in tables:
        tables["orders"] |= _order_checks(con, "customers" in present)
    if LEDGER in present:
        _add_ledger(con, tables)
    return {"generated_at": datetime.now(UTC).isoformat("T", "seconds"), "tables": tables}


def _iso(v: Any) -> str | None:
    return v.isoformat(sep=" ") if v is not None else None


def _order_checks(con: BaseBackend, has_customers: bool) -> dict[str, Any]:
    o = con.table("orders")
    lines = int(o.count().execute())
    sample = o
    if lines > QUARTILE_LINES:  # whole orders, chosen by a hash of the id: the same every time
        sample = o.filter(o.order_id.hash() % (lines // QUARTILE_LINES + 1) == 0)
    q = sample.aggregate(
        q1=sample.amount.quantile(0.25), q3=sample.amount.quantile(0.75)
    ).to_pyarrow()
    q1, q3 = q.column("q1")[0].as_py(), q.column("q3")[0].as_py()
    iqr = (q3 or 0) - (q1 or 0)
    lo, hi = (q1 or 0) - OUTLIER_K * iqr, (q3 or 0) + OUTLIER_K * iqr
    out = (
        o.aggregate(
            outliers=((o.amount < lo) | (o.amount > hi)).sum(),
            returns=(o.amount < 0).sum(),
            customers=o.customer_id.nunique(),
            orders=o.order_id.nunique(),
        )
        .to_pyarrow()
        .to_pylist()[0]
    )
    result: dict[str, Any] = {
        "amount_outliers": {"count": out["outliers"] or 0, "fences": [lo, hi]},
        "return_lines": out["returns"] or 0,
        "customers": out["customers"],
        "orders": out["orders"],
    }
    if has_customers:
        c = con.table("customers")
        orphans = o.anti_join(c, o.customer_id == c.customer_id)
        agg = orphans.aggregate(lines=orphans.count(), customers=orphans.customer_id.nunique())
        result["orphan_orders"] = agg.to_pyarrow().to_pylist()[0]
    return result


def _add_ledger(con: BaseBackend, tables: dict[str, Any]) -> None:
    ledger = con.table(LEDGER)
    loaded = ledger.filter(ledger.status == "loaded")
    per_table = loaded.group_by("table_name").aggregate(
        files=loaded.count(),
        rows_in=loaded.rows_in.sum(),
        accepted=loaded.accepted.sum(),
        rejected=loaded.rejected.sum(),
        duplicates_merged=loaded.duplicates_merged.sum(),
    )
    for row in per_table.to_pyarrow().to_pylist():
        tables.setdefault(row.pop("table_name"), {"rows": 0})["ingest"] = row
    q = con.table(QUARANTINE)
    reasons = q.group_by(["table_name", "reason"]).aggregate(n=q.count()).order_by(ibis.desc("n"))
    for row in reasons.to_pyarrow().to_pylist():
        entry = tables.setdefault(row["table_name"], {"rows": 0})
        top = entry.setdefault("reject_reasons", {})
        if len(top) < 5:
            top[row["reason"]] = row["n"]


def latest_report(con: BaseBackend) -> dict[str, Any] | None:
    """The report saved by the last ingest, as the dashboard shows it."""
    if REPORTS not in con.list_tables():
        return None
    r = con.table(REPORTS)
    rows = r.order_by(ibis.desc("created_at")).select("report").limit(1).to_pyarrow()
    return json.loads(rows.column(0)[0].as_py()) if len(rows) else None


def save_report(con: BaseBackend, batch_id: str, report: dict[str, Any]) -> None:
    row = {
        "batch_id": [batch_id],
        "created_at": [datetime.now(UTC).replace(tzinfo=None)],
        "report": [json.dumps(report, ensure_ascii=False, default=str)],
    }
    con.insert(REPORTS, ibis.memtable(row, schema=REPORTS_SCHEMA))
