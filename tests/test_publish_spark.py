"""Publishing a run whose snapshot lives in the Spark warehouse (Spark writes its Parquet spool
as a directory of parts, which the store load must read as one data set)."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from tierwise.core.settings import Settings, StoreSettings
from tierwise.services.dashboard import snapshot_from_document
from tierwise.services.publish import publish
from tierwise.services.run import snapshot_table
from tierwise.services.serving import opened_store
from tierwise.store.models import PublishedProfile, PublishedRun

RUN = "sparkpublish1"
N = 120


def _profiles() -> pa.Table:
    rows = [
        {
            "customer_id": f"S{i:04d}",
            "rfm_segment": ("champions", "at_risk", None)[i % 3],
            "rfm_class8": "important_value",
            "abc_class": ("A", "B", "C", None)[i % 4],
            "value_tier": "mid",
            "lifecycle_stage": ("active", "churned")[i % 2],
            "churn_risk": ("high", "low")[i % 2],
            "revenue": float(i),
            "orders": i % 5,
            "recency_days": i,
            "clv": i / 2,
            "churn_probability": (i % 10) / 10,
            "profit": float(i - 30),
            "r_score": 1 + i % 5,
            "f_score": 1 + i % 3,
            "mean_nps": float(i % 11),
            "last_order_at": date(2025, 1, 1 + i % 28),
        }
        for i in range(N)
    ]
    return pa.Table.from_pylist(rows)


@pytest.mark.spark
def test_a_spark_snapshot_publishes_with_its_dashboard_summary(spark_con, tmp_path):
    spark_con.create_table(snapshot_table("profiles", RUN), _profiles(), overwrite=True)
    migration = pa.table(
        {"dimension": ["rfm_segment"], "from_value": ["(none)"], "to_value": ["champions"],
         "customers": [40], "rate": [1.0]}
    )  # fmt: skip
    cohorts = pa.table(
        {"cohort_month": [date(2025, 1, 1)], "month_offset": [0], "cohort_size": [60],
         "active_customers": [60], "retention": [1.0]}
    )  # fmt: skip
    spark_con.create_table(snapshot_table("migration", RUN), migration, overwrite=True)
    spark_con.create_table(snapshot_table("cohorts", RUN), cohorts, overwrite=True)
    settings = Settings(root=tmp_path, store=StoreSettings(url=f"sqlite:///{tmp_path / 's.db'}"))

    result = publish(settings, spark_con, RUN, date(2025, 3, 31))

    assert result.customers == N
    with opened_store(settings) as store, store.read() as session:
        assert session.scalar(select(func.count()).select_from(PublishedProfile)) == N
        profile = session.get(PublishedProfile, (RUN, "S0007"))
        assert profile is not None and profile.revenue == 7.0
        assert profile.profile["last_order_at"] == "2025-01-08"
        document = session.scalar(select(PublishedRun.dashboard))
    snap = snapshot_from_document(document)
    assert snap.totals.customers == N
    assert snap.totals.revenue == sum(range(N))
    assert {b.key: b.customers for b in snap.dimensions["lifecycle_stage"]} == {
        "active": N // 2,
        "churned": N // 2,
    }
