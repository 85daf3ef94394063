"""Holdout evaluation on real DuckDB files: CDNOW against the published figures, and a small
synthetic warehouse whose per-customer answers are known by hand and by a pandas oracle."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from tests.models.conftest import CALIBRATION_END, HOLDOUT_END, WEEK, cdnow_orders

from tierwise.core.errors import DataError, InvalidInputError
from tierwise.models.betageo import BetaGeoModel
from tierwise.services.evaluate import (
    MODELS,
    TOP_BUCKET,
    evaluate_holdout,
    format_report,
    holdout_summary,
)
from tierwise.services.warehouse import duckdb_connect


def warehouse(path, orders: pd.DataFrame):
    con = duckdb_connect(path)
    con.create_table("orders", orders)
    return con


def oracle(orders: pd.DataFrame, calibration_end: date, holdout_end: date) -> pd.DataFrame:
    """Per calibration customer in pandas: x, t_x, T in days and distinct holdout purchase days."""
    day = orders["ordered_at"].dt.normalize()
    cal_end, hold_end = pd.Timestamp(calibration_end), pd.Timestamp(holdout_end)
    cal = orders.assign(day=day)[day <= cal_end].groupby("customer_id")["day"]
    out = pd.DataFrame(
        {
            "frequency": cal.nunique() - 1,
            "recency": (cal.max() - cal.min()).dt.days.astype(float),
            "T": (cal_end - cal.min()).dt.days.astype(float),
        }
    )
    holdout = orders.assign(day=day)[(day > cal_end) & (day <= hold_end)]
    out["actual"] = holdout.groupby("customer_id")["day"].nunique().reindex(out.index).fillna(0)
    return out.astype({"actual": "int64"}).sort_index()


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory):
    orders = cdnow_orders()
    con = warehouse(tmp_path_factory.mktemp("cdnow") / "warehouse.duckdb", orders)
    yield con, orders
    con.disconnect()


@pytest.fixture(scope="module")
def cdnow_report(cdnow):
    con, _ = cdnow
    return evaluate_holdout(con, calibration_end=CALIBRATION_END, holdout_end=HOLDOUT_END)


def test_cdnow_matches_published_figures(cdnow_report):
    """FHL 2005: 1,882 actual repeat transactions in weeks 40-78; the published parameters'
    conditional expectation sums to 1,653 (the engine's figure; see tests/models/test_cdnow)."""
    r = cdnow_report
    assert r.customers == 2357
    assert r.horizon == pytest.approx(39.0)
    assert r.actual == 1882
    assert r.model_metrics.predicted == pytest.approx(1653.4, rel=0.01)
    assert r.model_metrics.relative_error == pytest.approx(1653.4 / 1882 - 1, abs=0.01)
    for name, value in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert r.params[name] == pytest.approx(value, rel=0.01), name
    assert r.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert r.model_metrics.mae < r.baseline_metrics.mae
    assert r.model_metrics.correlation > r.baseline_metrics.correlation
    assert [b.label for b in r.buckets] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert sum(b.customers for b in r.buckets) == 2357
    assert r.buckets[0].customers == 2357 - 946  # no repeat purchase in calibration
    assert r.buckets[0].baseline == 0.0


def test_cdnow_metrics_equal_a_pandas_computation(cdnow, cdnow_report):
    """Streaming in small batches gives the metrics a whole in-memory frame gives."""
    con, orders = cdnow
    streamed = evaluate_holdout(
        con, calibration_end=CALIBRATION_END, holdout_end=HOLDOUT_END, batch_rows=500
    )
    truth = oracle(orders, CALIBRATION_END, HOLDOUT_END)
    x, tx, age = truth["frequency"], truth["recency"] / WEEK, truth["T"] / WEEK
    model = BetaGeoModel()
    model.params_ = cdnow_report.params
    horizon = (HOLDOUT_END - CALIBRATION_END).days / WEEK
    predicted = pd.Series(model.expected_purchases(horizon, x, tx, age), index=truth.index)
    baseline = x / age * horizon
    actual = truth["actual"]
    assert truth["actual"].sum() == streamed.actual == 1882
    for report in (cdnow_report, streamed):
        for metrics, pred in (
            (report.model_metrics, predicted),
            (report.baseline_metrics, baseline),
        ):
            assert metrics.predicted == pytest.approx(pred.sum(), rel=1e-9)
            assert metrics.mae == pytest.approx((pred - actual).abs().mean(), rel=1e-9)
            assert metrics.correlation == pytest.approx(np.corrcoef(pred, actual)[0, 1], rel=1e-9)
        bucket = x.clip(upper=TOP_BUCKET)
        for k, b in enumerate(report.buckets):
            rows = bucket == k
            assert b.customers == rows.sum()
            assert b.actual == pytest.approx(actual[rows].mean(), rel=1e-9)
            assert b.model == pytest.approx(predicted[rows].mean(), rel=1e-9)
            assert b.baseline == pytest.approx(baseline[rows].mean(), rel=1e-9)


def test_report_as_dict_and_table(cdnow_report):
    data = json.loads(json.dumps(cdnow_report.as_dict()))
    assert data["calibration_end"] == "1997-09-30"
    assert data["holdout_end"] == "1998-06-30"
    assert data["actual"] == 1882
    assert data["model_metrics"]["mae"] == cdnow_report.model_metrics.mae
    assert [b["label"] for b in data["buckets"]] == [b.label for b in cdnow_report.buckets]
    assert data["params"] == cdnow_report.params

    rows = format_report(cdnow_report)
    assert rows[0] == ("measure", "actual", "BG/NBD", "naive baseline")
    assert {len(row) for row in rows} == {4}
    assert ("repeat purchases", "1,882", "1,653.4", rows[2][3]) == rows[2]


def test_cdnow_default_holdout_end_is_the_latest_order(cdnow, cdnow_report):
    con, _ = cdnow
    report = evaluate_holdout(con, calibration_end=CALIBRATION_END)
    assert report.holdout_end == HOLDOUT_END
    assert report.actual == cdnow_report.actual


# A hand-made warehouse: January is the calibration period, February-March the holdout.
CAL_END, HOLD_END = date(2024, 1, 31), date(2024, 3, 31)
HAND_MADE = [
    # same-day orders merge, in calibration (x = 1) and in the holdout (2 days); the holdout
    # end is inclusive up to the last minute of its day
    ("0042", "2024-01-02 09:00"),
    ("0042", "2024-01-02 17:00"),
    ("0042", "2024-01-20 10:00"),
    ("0042", "2024-02-10 08:00"),
    ("0042", "2024-02-10 20:00"),
    ("0042", "2024-03-31 23:30"),
    # first purchase in the last minute of calibration_end (T = 0), back the next midnight
    ("once", "2024-01-31 23:59"),
    ("once", "2024-02-01 00:00"),
    # two repeats in calibration, then silence
    ("quiet", "2024-01-05 12:00"),
    ("quiet", "2024-01-12 12:00"),
    ("quiet", "2024-01-31 12:00"),
    # returns only after the holdout
    ("late", "2024-01-10 12:00"),
    ("late", "2024-04-01 00:00"),
    # first seen in the holdout: not in the calibration cohort
    ("newcomer", "2024-02-15 12:00"),
]
EXPECTED = {  # customer: (frequency, recency days, T days, actual)
    "0042": (1, 18, 29, 2),
    "once": (0, 0, 0, 1),
    "quiet": (2, 26, 26, 0),
    "late": (0, 0, 21, 0),
}


def synthetic_orders(customers: int = 300, seed: int = 7) -> pd.DataFrame:
    """The hand-made customers plus a population with Gamma purchase rates and exponential
    lifetimes, so that every model has repeat buyers to fit."""
    rng = np.random.default_rng(seed)
    rows = list(HAND_MADE)
    start = pd.Timestamp("2024-01-01")
    for c in range(customers):
        first = rng.uniform(0, 25)
        rate, life = rng.gamma(1.5, 1 / 15), rng.exponential(1 / rng.gamma(0.8, 1 / 40))
        gaps = rng.exponential(1 / rate, size=40).cumsum()
        times = [first, *(first + g for g in gaps if g < min(life, 90 - first))]
        rows += [(f"c{c:04d}", str((start + pd.Timedelta(days=t)).floor("min"))) for t in times]
    frame = pd.DataFrame(rows, columns=["customer_id", "ordered_at"])
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "order_id": [f"o{i}" for i in range(len(frame))],
            "ordered_at": pd.to_datetime(frame["ordered_at"], format="mixed"),
            "amount": 10.0,
        }
    )


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    orders = synthetic_orders()
    con = warehouse(tmp_path_factory.mktemp("synthetic") / "warehouse.duckdb", orders)
    yield con, orders
    con.disconnect()


def test_holdout_counts_equal_pandas_and_hand_made_answers(synthetic):
    con, orders = synthetic
    got = (
        holdout_summary(
            con.table("orders"), calibration_end=CAL_END, holdout_end=HOLD_END, unit_days=1
        )
        .to_pandas()
        .set_index("customer_id")
        .sort_index()
    )
    truth = oracle(orders, CAL_END, HOLD_END)
    assert "newcomer" not in got.index
    pd.testing.assert_frame_equal(got, truth, check_dtype=False, check_names=False)
    for customer, values in EXPECTED.items():
        assert tuple(got.loc[customer]) == values, customer
    assert truth["actual"].sum() > 100  # the population does come back in the holdout


@pytest.mark.parametrize("model", list(MODELS))
def test_synthetic_report_counts(synthetic, model):
    con, orders = synthetic
    truth = oracle(orders, CAL_END, HOLD_END)
    report = evaluate_holdout(
        con, calibration_end=CAL_END, holdout_end=HOLD_END, model=model, unit_days=1, batch_rows=64
    )
    assert report.model == model
    assert set(report.params) == set(MODELS[model][1].param_names)
    assert report.customers == len(truth)
    assert report.actual == truth["actual"].sum()
    assert report.horizon == (HOLD_END - CAL_END).days
    counts = np.bincount(truth["frequency"].clip(upper=TOP_BUCKET), minlength=TOP_BUCKET + 1)
    assert [b.customers for b in report.buckets] == counts.tolist()
    assert report.model_metrics.mae < report.baseline_metrics.mae


def test_default_holdout_end_reaches_the_latest_order(synthetic):
    con, orders = synthetic
    report = evaluate_holdout(con, calibration_end=CAL_END, unit_days=1)
    assert report.holdout_end == orders["ordered_at"].max().date() == date(2024, 4, 1)
    assert report.actual == oracle(orders, CAL_END, report.holdout_end)["actual"].sum()


@pytest.mark.parametrize(
    ("calibration_end", "holdout_end", "message"),
    [
        (date(2023, 12, 31), None, "before the first order"),
        (date(2024, 4, 1), None, "no orders after calibration_end"),
        (date(2024, 5, 1), None, "no orders after calibration_end"),
        (CAL_END, CAL_END, "must be after calibration_end"),
        (CAL_END, CAL_END - timedelta(days=1), "must be after calibration_end"),
    ],
)
def test_periods_without_orders_are_data_errors(synthetic, calibration_end, holdout_end, message):
    con, _ = synthetic
    with pytest.raises(DataError, match=message):
        evaluate_holdout(con, calibration_end=calibration_end, holdout_end=holdout_end)


def test_empty_holdout_window_is_a_data_error(tmp_path):
    con = warehouse(tmp_path / "w.duckdb", synthetic_orders(customers=0))
    with pytest.raises(DataError, match="no orders between"):
        evaluate_holdout(con, calibration_end=date(2024, 2, 15), holdout_end=date(2024, 2, 20))


def test_missing_or_empty_orders_and_unknown_model(tmp_path):
    con = duckdb_connect(tmp_path / "w.duckdb")
    with pytest.raises(DataError, match="no orders in the warehouse"):
        evaluate_holdout(con, calibration_end=CAL_END)
    con.create_table("orders", synthetic_orders(customers=0).iloc[:0])
    with pytest.raises(DataError, match="empty"):
        evaluate_holdout(con, calibration_end=CAL_END)
    with pytest.raises(InvalidInputError, match="unknown purchase model"):
        evaluate_holdout(con, calibration_end=CAL_END, model="bgbnd")
