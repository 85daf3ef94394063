"""Discounted CLV: month bucketing, discounting, margins, unit handling and undefined corners."""

from __future__ import annotations

import numpy as np
import pytest

from tierwise.core.errors import DataError
from tierwise.engine.summary import purchase_summary
from tierwise.models.betageo import BetaGeoModel
from tierwise.models.clv import discounted_clv
from tierwise.models.gammagamma import GammaGammaModel
from tierwise.models.paretonbd import ParetoNBDModel
from tierwise.models.units import days_to_units

from .conftest import CALIBRATION_END, WEEK


def fit_models(summary, purchase_cls=BetaGeoModel):
    x, tx, age, m = (summary[c] for c in ("frequency", "recency", "T", "monetary_value"))
    return purchase_cls().fit(x, tx, age), GammaGammaModel().fit(x, m)


@pytest.fixture(scope="module")
def weekly(cdnow_calibration):
    return cdnow_calibration, *fit_models(cdnow_calibration)


def columns(summary):
    return tuple(summary[c].to_numpy() for c in ("frequency", "recency", "T", "monetary_value"))


def test_undiscounted_clv_is_horizon_purchases_times_spend(weekly):
    summary, purchases, spend = weekly
    x, tx, age, m = columns(summary)
    clv = discounted_clv(
        purchases, spend, x, tx, age, m, unit_days=WEEK, discount_rate_monthly=0.0, margin=0.3
    )
    # 365 days is 12 full months and 5 days; the last bucket ends at the horizon
    expected = purchases.expected_purchases(365 / WEEK, x, tx, age)
    expected *= spend.conditional_expected_spend(x, m) * 0.3
    np.testing.assert_allclose(clv, expected, rtol=1e-9)


def test_months_are_discounted(weekly):
    summary, purchases, spend = weekly
    x, tx, age, m = (v[:50] for v in columns(summary))
    clv = discounted_clv(
        purchases,
        spend,
        x,
        tx,
        age,
        m,
        horizon_days=75,
        unit_days=WEEK,
        discount_rate_monthly=0.05,
    )
    by = [purchases.expected_purchases(d / WEEK, x, tx, age) for d in (30, 60, 75)]
    months = [by[0], by[1] - by[0], by[2] - by[1]]
    expected = sum(p / 1.05 ** (i + 1) for i, p in enumerate(months))
    expected *= spend.conditional_expected_spend(x, m)
    np.testing.assert_allclose(clv, expected, rtol=1e-9)
    undiscounted = discounted_clv(
        purchases,
        spend,
        x,
        tx,
        age,
        m,
        horizon_days=75,
        unit_days=WEEK,
        discount_rate_monthly=0.0,
    )
    assert np.all(clv < undiscounted)


def test_per_customer_margin(weekly):
    summary, purchases, spend = weekly
    x, tx, age, m = (v[:3] for v in columns(summary))
    one = discounted_clv(purchases, spend, x, tx, age, m, unit_days=WEEK)
    scaled = discounted_clv(
        purchases, spend, x, tx, age, m, unit_days=WEEK, margin=np.array([0.0, 0.5, 2.0])
    )
    np.testing.assert_allclose(scaled, one * [0.0, 0.5, 2.0])


def test_clv_does_not_depend_on_the_time_unit(weekly, cdnow_warehouse):
    """A model fitted in days gives the same CLV as one fitted in weeks: alpha scales by 7."""
    summary_w, purchases_w, spend = weekly
    con, orders = cdnow_warehouse
    summary_d = con.execute(
        purchase_summary(orders, as_of=CALIBRATION_END, unit_days=1).order_by("customer_id")
    )
    purchases_d, _ = fit_models(summary_d)
    assert purchases_d.params_["alpha"] == pytest.approx(
        WEEK * purchases_w.params_["alpha"], rel=1e-5
    )
    assert purchases_d.params_["b"] == pytest.approx(purchases_w.params_["b"], rel=1e-5)
    clv_w = discounted_clv(purchases_w, spend, *columns(summary_w), unit_days=WEEK)
    clv_d = discounted_clv(purchases_d, spend, *columns(summary_d), unit_days=1)
    np.testing.assert_allclose(clv_d, clv_w, rtol=1e-4)


@pytest.mark.parametrize("purchase_cls", [BetaGeoModel, ParetoNBDModel])
def test_clv_is_defined_for_new_and_zero_spend_customers(cdnow_calibration, purchase_cls):
    purchases, spend = fit_models(cdnow_calibration, purchase_cls)
    x = np.array([0, 0, 3, 2])
    tx = np.array([0.0, 0.0, 10.0, 0.0])
    age = np.array([0.0, 30.0, 10.0, 0.0])
    m = np.array([0.0, 0.0, 0.0, 50.0])
    clv = discounted_clv(purchases, spend, x, tx, age, m, unit_days=WEEK)
    assert np.all(np.isfinite(clv)) and np.all(clv > 0)
    # a brand-new customer is worth more than one silent for 30 weeks
    assert clv[0] > clv[1]


def test_bad_arguments_are_data_errors(weekly):
    summary, purchases, spend = weekly
    args = (purchases, spend, *columns(summary))
    with pytest.raises(DataError, match="horizon_days"):
        discounted_clv(*args, horizon_days=0, unit_days=WEEK)
    with pytest.raises(DataError, match="discount_rate_monthly"):
        discounted_clv(*args, unit_days=WEEK, discount_rate_monthly=-1.0)
    with pytest.raises(DataError, match="unit_days"):
        discounted_clv(*args, unit_days=0)


def test_days_to_units():
    np.testing.assert_allclose(days_to_units([7, 14, 3.5], 7), [1.0, 2.0, 0.5])
    with pytest.raises(DataError, match="unit_days"):
        days_to_units(1, float("nan"))
