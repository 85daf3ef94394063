"""engine.summary against a pandas oracle, on every warehouse backend."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from tierwise.engine.summary import purchase_summary, unique_rows

AS_OF = date(2024, 1, 15)


def orders_frame() -> pd.DataFrame:
    rows = [
        ("007", "1", "2024-01-01 10:00:00", 10.0),  # same day: merged into one purchase
        ("007", "2", "2024-01-01 15:00:00", 5.0),
        ("007", "3", "2024-01-08 09:00:00", 20.0),
        ("007", "4", "2024-01-15 23:59:59", 30.0),  # as_of is inclusive
        ("007", "5", "2024-01-16 00:00:00", 100.0),  # after as_of: ignored
        ("b", "6", "2024-01-10 12:00:00", 8.0),  # one purchase day only
        ("c", "7", "2024-01-15 08:00:00", 4.0),  # first purchase on as_of: T = 0
        ("d", "8", "2024-02-01 08:00:00", 4.0),  # only after as_of: absent
        ("e", "9", "2023-12-01 08:00:00", 50.0),
        ("e", "10", "2023-12-09 08:00:00", 30.0),
        ("e", "11", "2023-12-09 18:00:00", -30.0),  # a return nets the repeat day to 0
    ]
    rng = np.random.default_rng(4)
    start = pd.Timestamp("2023-10-01")
    for i in range(300):
        stamp = start + pd.Timedelta(seconds=int(rng.integers(0, 120 * 86400)))
        rows.append((f"r{rng.integers(0, 40)}", f"x{i}", str(stamp), float(rng.integers(1, 99))))
    frame = pd.DataFrame(rows, columns=["customer_id", "order_id", "ordered_at", "amount"])
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"])
    return frame


def oracle(orders: pd.DataFrame, as_of: date, unit_days: float) -> pd.DataFrame:
    kept = orders[orders["ordered_at"].dt.date <= as_of]
    daily = (
        kept.assign(day=kept["ordered_at"].dt.normalize())
        .groupby(["customer_id", "day"], as_index=False)["amount"]
        .sum()
        .sort_values(["customer_id", "day"])
    )
    out = []
    for customer, days in daily.groupby("customer_id"):
        first, last = days["day"].iloc[0], days["day"].iloc[-1]
        repeats = len(days) - 1
        out.append(
            {
                "customer_id": customer,
                "frequency": repeats,
                "recency": (last - first).days / unit_days,
                "T": (pd.Timestamp(as_of) - first).days / unit_days,
                "monetary_value": days["amount"].iloc[1:].mean() if repeats else 0.0,
            }
        )
    return pd.DataFrame(out)


@pytest.mark.parametrize("unit_days", [1.0, 7.0])
def test_purchase_summary_matches_pandas(con, unit_days):
    orders = orders_frame()
    table = con.create_table("summary_orders", orders, overwrite=True)
    got = con.execute(purchase_summary(table, as_of=AS_OF, unit_days=unit_days))
    got = got.sort_values("customer_id").reset_index(drop=True)
    expected = oracle(orders, AS_OF, unit_days).sort_values("customer_id").reset_index(drop=True)
    assert list(got.columns) == ["customer_id", "frequency", "recency", "T", "monetary_value"]
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, atol=1e-12)
    by_id = got.set_index("customer_id")
    assert by_id.loc["007"].tolist() == pytest.approx([2, 14 / unit_days, 14 / unit_days, 25.0])
    assert by_id.loc["c", "T"] == 0
    assert by_id.loc["e", "monetary_value"] == 0
    assert "d" not in by_id.index


def test_unique_rows_counts_customers(con):
    orders = orders_frame()
    table = con.create_table("unique_orders", orders, overwrite=True)
    got = con.execute(unique_rows(purchase_summary(table, as_of=AS_OF, unit_days=7.0)))
    expected = (
        oracle(orders, AS_OF, 7.0)
        .groupby(["frequency", "recency", "T"], as_index=False)
        .size()
        .rename(columns={"size": "weight"})
    )
    keys = ["frequency", "recency", "T"]
    got = got.sort_values(keys).reset_index(drop=True)
    expected = expected.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert (
        got["weight"].sum()
        == orders.loc[orders["ordered_at"].dt.date <= AS_OF, "customer_id"].nunique()
    )
