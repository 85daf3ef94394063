"""cohort_retention and migration_matrix on DuckDB and Spark against pandas."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest
from engine_data import AS_OF, dataset
from profile_oracle import assert_frames_match

from tierwise.engine import cohort_retention, migration_matrix


def _retention_oracle(orders: pd.DataFrame) -> pd.DataFrame:
    o = orders[orders.ordered_at < datetime.combine(AS_OF + timedelta(days=1), datetime.min.time())]
    month = o.ordered_at.dt.year * 12 + o.ordered_at.dt.month - 1
    by_customer = pd.DataFrame({"c": o.customer_id, "m": month})
    first = by_customer.groupby("c").m.min()
    last = AS_OF.year * 12 + AS_OF.month - 1
    rows = []
    for cohort in sorted(set(first)):
        members = set(first[first == cohort].index)
        for offset in range(last - cohort + 1):
            in_month = set(by_customer[by_customer.m == cohort + offset].c) & members
            rows.append(
                {
                    "cohort_month": pd.Timestamp(cohort // 12, cohort % 12 + 1, 1),
                    "month_offset": offset,
                    "active_customers": len(in_month),
                    "cohort_size": len(members),
                    "retention": len(in_month) / len(members),
                }
            )
    return pd.DataFrame(rows)


def test_cohort_retention_matches_pandas(load):
    orders = dataset()["orders"]
    got = cohort_retention(load({"orders": orders})["orders"], as_of=AS_OF).to_pandas()
    expected = _retention_oracle(orders)
    for df in (got, expected):
        df["key"] = pd.to_datetime(df.cohort_month).dt.strftime("%Y-%m") + df.month_offset.map(
            "/{:02d}".format
        )
        df["cohort_month"] = pd.to_datetime(df.cohort_month)
    assert_frames_match(got, expected, key="key")
    # 2023-03 (c02) is the earliest cohort: every month up to as_of's is there, offsets 0..15.
    assert got[got.cohort_month == "2023-03-01"].month_offset.tolist() == list(range(16))


BEFORE = pd.DataFrame(
    {
        "customer_id": ["a", "b", "c", "d", "e", "g"],
        "lifecycle_stage": ["new", "active", "active", None, "churned", "new"],
        "r_score": pd.array([5, 4, 4, None, 1, 5], dtype="Int64"),
    }
)
AFTER = pd.DataFrame(
    {
        "customer_id": ["a", "b", "c", "d", "f", "g"],
        "lifecycle_stage": ["active", "active", "churned", "new", "new", "active"],
        "r_score": pd.array([4, 4, 1, 5, 5, 4], dtype="Int64"),
    }
)


def _migration_oracle(column: str) -> pd.DataFrame:
    j = BEFORE.merge(AFTER, on="customer_id", how="outer", indicator=True)

    def text(values: pd.Series, present: pd.Series) -> list:
        return [
            "(none)" if not p else None if pd.isna(v) else str(v)
            for v, p in zip(values, present, strict=True)
        ]

    j["from_value"] = text(j[f"{column}_x"], j._merge != "right_only")
    j["to_value"] = text(j[f"{column}_y"], j._merge != "left_only")
    rows = []
    for (f, t), group in j.groupby(["from_value", "to_value"], dropna=False):
        size = (j.from_value.fillna("\0") == ("\0" if pd.isna(f) else f)).sum()
        rows.append(
            {"from_value": f, "to_value": t, "customers": len(group), "rate": len(group) / size}
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("column", ["lifecycle_stage", "r_score"])
def test_migration_matrix_matches_pandas(load, column):
    t = load({"before": BEFORE, "after": AFTER})
    got = migration_matrix(t["before"], t["after"], column=column).to_pandas()
    expected = _migration_oracle(column)
    for df in (got, expected):
        df["key"] = df.from_value.fillna("null") + "→" + df.to_value.fillna("null")
    assert_frames_match(got, expected, key="key")
    # f is new in `after`, e left it, d had no value before.
    edges = {"lifecycle_stage": {"(none)→new", "churned→(none)", "null→new"}}
    edges["r_score"] = {"(none)→5", "1→(none)", "null→5"}
    assert edges[column] <= set(got.key)
