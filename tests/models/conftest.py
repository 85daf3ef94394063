"""CDNOW fixtures: the sample is loaded into a DuckDB file and summarised by the engine, so
the published-value tests verify the engine path (purchase_summary, unique_rows) too."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import ibis
import pandas as pd
import pytest

from tierwise.engine.summary import purchase_summary, unique_rows

CDNOW = Path(__file__).parents[1] / "data" / "cdnow" / "CDNOW_sample.txt"
CALIBRATION_END = date(1997, 9, 30)
HOLDOUT_END = date(1998, 6, 30)
WEEK = 7.0


def cdnow_orders() -> pd.DataFrame:
    """The sample as canonical orders: one row per line, sample id as customer_id."""
    raw = pd.read_csv(
        CDNOW,
        sep=r"\s+",
        header=None,
        names=["master_id", "sample_id", "date", "cds", "dollars"],
        dtype={"master_id": str, "sample_id": str, "date": str},
    )
    return pd.DataFrame(
        {
            "customer_id": raw["sample_id"],
            "order_id": raw.index.astype(str),
            "ordered_at": pd.to_datetime(raw["date"], format="%Y%m%d"),
            "amount": raw["dollars"].astype("float64"),
        }
    )


@pytest.fixture(scope="session")
def cdnow_warehouse(tmp_path_factory):
    con = ibis.duckdb.connect(str(tmp_path_factory.mktemp("cdnow") / "w.duckdb"))
    orders = con.create_table("orders", cdnow_orders())
    yield con, orders
    con.disconnect()


@pytest.fixture(scope="session")
def cdnow_calibration(cdnow_warehouse) -> pd.DataFrame:
    """Per-customer calibration summary in weeks, sorted by customer_id."""
    con, orders = cdnow_warehouse
    summary = purchase_summary(orders, as_of=CALIBRATION_END, unit_days=WEEK)
    return con.execute(summary.order_by("customer_id"))


@pytest.fixture(scope="session")
def cdnow_unique(cdnow_warehouse) -> pd.DataFrame:
    """Unique (frequency, recency, T) rows with counts, grouped in the engine."""
    con, orders = cdnow_warehouse
    rows = unique_rows(purchase_summary(orders, as_of=CALIBRATION_END, unit_days=WEEK))
    return con.execute(rows.order_by("frequency", "recency", "T"))
