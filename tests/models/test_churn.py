"""Churn early warning on simulated customers whose churn is driven by recency against their own
cadence, unresolved complaints and falling order frequency (plus noise): the model must beat
the recency-only baseline, be calibrated, and name the planted drivers in its reasons."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.base import clone
from sklearn.metrics import average_precision_score, roc_auc_score

from tierwise.core.errors import DataError
from tierwise.models._base import NotFittedError
from tierwise.models.churn import (
    ChurnModel,
    RecencyBaseline,
    describe,
    evaluate,
    expected_calibration_error,
    pr_auc,
    roc_auc,
    top_decile_lift,
)

N_TRAIN = 14_000
CHANNELS = ["app", "web", "store", "wechat"]


def simulate(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Customer features as the marts would give them, and churn labels drawn from a known
    logistic model of recency/cadence, unresolved complaints, falling frequency and channel."""
    rng = np.random.default_rng(seed)
    interval = rng.lognormal(np.log(35), 0.6, n)
    tenure = rng.uniform(60, 1500, n).round()
    recency = np.minimum(np.round(interval * rng.lognormal(0.0, 0.9, n)), tenure)
    orders = 1 + rng.poisson(tenure / interval)
    prev = rng.poisson(90 / interval)
    falling = rng.random(n) < 0.3
    last = rng.poisson(90 / interval * np.where(falling, 0.2, 1.0))
    last = np.where(recency > 90, 0, np.maximum(last, 1))
    unresolved = rng.poisson(0.15, n)
    complaints = unresolved + rng.poisson(0.3, n)
    csat = np.clip(np.round(4.2 - 0.6 * complaints + rng.normal(0, 0.8, n)), 1, 5)
    csat[rng.random(n) < 0.5] = np.nan
    channel = rng.choice(CHANNELS, n, p=[0.4, 0.3, 0.2, 0.1])
    aov = rng.lognormal(np.log(60), 0.5, n)
    logit = (
        -1.2
        + 1.5 * np.log((recency + 1) / interval)
        + 0.9 * unresolved
        - 0.9 * np.log((last + 1) / (prev + 1))
        + 0.4 * (channel == "wechat")
        + rng.normal(0, 0.5, n)
    )
    churned = (rng.random(n) < expit(logit)).astype(np.int64)
    features = pd.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in range(n)],
            "recency_days": recency,
            "tenure_days": tenure,
            "orders": orders,
            "revenue": orders * aov,
            "avg_order_value": aov,
            "median_interval_days": interval.round(1),
            "recency_ratio": recency / interval,
            "orders_last_90d": last,
            "orders_prev_90d": prev,
            "complaints": complaints,
            "unresolved_complaints": unresolved,
            "last_csat": csat,
            "views": rng.poisson(20, n),
            "discount_share": rng.beta(1, 4, n),
            "preferred_channel": channel,
        }
    )
    return features, churned


@pytest.fixture(scope="module")
def customers():
    x, y = simulate(20_000, seed=7)
    return x.iloc[:N_TRAIN], y[:N_TRAIN], x.iloc[N_TRAIN:].reset_index(drop=True), y[N_TRAIN:]


@pytest.fixture(scope="module")
def model(customers):
    x, y, _, _ = customers
    return ChurnModel(n_jobs=1).fit(x, y)


@pytest.fixture(scope="module")
def held_out_proba(model, customers):
    return model.predict_proba(customers[2])


@pytest.fixture(scope="module")
def held_out_reasons(model, customers):
    return model.reasons(customers[2])


# --- the model against the baseline ------------------------------------------------------------


def test_model_beats_recency_baseline_on_held_out_customers(customers, held_out_proba):
    x, y, x_test, y_test = customers
    baseline = RecencyBaseline().fit(x, y)
    table = evaluate(
        y_test,
        {
            "lightgbm": held_out_proba,
            "recency only": baseline.predict_proba(x_test),
            "recency days": x_test["recency_days"].to_numpy(),
        },
    )
    assert table.loc["lightgbm", "roc_auc"] > table.loc["recency only", "roc_auc"] + 0.05
    assert table.loc["lightgbm", "pr_auc"] > table.loc["recency only", "pr_auc"]
    assert table.loc["lightgbm", "top_decile_lift"] > table.loc["recency only", "top_decile_lift"]
    # a logistic curve on one feature is monotone: it ranks exactly like raw recency
    assert table.loc["recency only", "roc_auc"] == pytest.approx(
        table.loc["recency days", "roc_auc"]
    )


def test_calibrated_probabilities_match_observed_churn_rates(model, customers, held_out_proba):
    _, _, x_test, y_test = customers
    assert model.calibration_ == "sigmoid"
    assert expected_calibration_error(y_test, held_out_proba) < 0.03
    # calibration is monotone: it must not cost ranking quality
    raw = model.decision_function(x_test)
    assert roc_auc(y_test, held_out_proba) == pytest.approx(roc_auc(y_test, raw))


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibration_repairs_an_overconfident_booster(customers, method):
    x, y, x_test, y_test = customers
    greedy = ChurnModel(
        n_estimators=150,
        learning_rate=0.5,
        num_leaves=63,
        max_depth=-1,
        min_child_samples=5,
        subsample=1.0,
        colsample_bytree=1.0,
        reg_lambda=0.0,
        calibration=method,
        n_jobs=1,
    ).fit(x, y)
    raw_ece = expected_calibration_error(y_test, expit(greedy.decision_function(x_test)))
    calibrated_ece = expected_calibration_error(y_test, greedy.predict_proba(x_test))
    assert raw_ece > 0.1
    assert calibrated_ece < 0.03
    assert greedy.calibration_ == method


def test_platt_scaling_keeps_the_ranking_on_small_data(customers):
    x, y, x_test, y_test = customers
    small = ChurnModel(n_estimators=50, min_child_samples=20, n_jobs=1).fit(x[:800], y[:800])
    assert small.calibration_ == "sigmoid"
    margin = small.decision_function(x_test)
    proba = small.predict_proba(x_test)
    assert np.all((proba > 0) & (proba < 1))
    assert np.all(np.diff(proba[np.argsort(margin)]) >= 0)
    assert roc_auc(y_test, proba) == pytest.approx(roc_auc(y_test, margin))


def test_isotonic_is_chosen_once_enough_rows_are_held_out():
    x, y = simulate(41_000, seed=9)
    fitted = ChurnModel(n_estimators=10, n_jobs=1).fit(x, y)
    assert fitted.calibration_ == "isotonic"
    assert clone(fitted).set_params(calibration="sigmoid").fit(x, y).calibration_ == "sigmoid"


def test_fit_is_deterministic_for_a_random_state(customers):
    x, y, x_test, _ = customers
    first = ChurnModel(n_estimators=40, random_state=3, n_jobs=1).fit(x[:4000], y[:4000])
    second = ChurnModel(n_estimators=40, random_state=3, n_jobs=1).fit(x[:4000], y[:4000])
    other = ChurnModel(n_estimators=40, random_state=4, n_jobs=1).fit(x[:4000], y[:4000])
    np.testing.assert_array_equal(first.predict_proba(x_test), second.predict_proba(x_test))
    assert not np.array_equal(first.decision_function(x_test), other.decision_function(x_test))


# --- reasons ------------------------------------------------------------------------------------


def test_reasons_name_unresolved_complaints_for_complaining_high_risk_customers(
    customers, held_out_proba, held_out_reasons
):
    x_test = customers[2]
    risky = held_out_proba >= np.quantile(held_out_proba, 0.8)
    complaining = np.flatnonzero(risky & (x_test["unresolved_complaints"] >= 1).to_numpy())
    assert complaining.size >= 100
    named = [any("unresolved complaint" in r for r in held_out_reasons[i]) for i in complaining]
    assert np.mean(named) >= 0.9
    i = next(i for i in complaining if x_test.loc[i, "unresolved_complaints"] >= 2)
    count = int(x_test.loc[i, "unresolved_complaints"])
    assert f"{count} unresolved complaints" in held_out_reasons[i]


def test_reasons_name_long_silence_against_cadence(customers, held_out_proba, held_out_reasons):
    x_test = customers[2]
    silent = np.flatnonzero((held_out_proba >= 0.8) & (x_test["recency_ratio"] >= 4).to_numpy())
    assert silent.size >= 50
    named = [
        any("usual gap" in r or r.startswith("no order for") for r in held_out_reasons[i])
        for i in silent
    ]
    assert np.mean(named) >= 0.95


def test_reasons_name_falling_frequency(customers, held_out_proba, held_out_reasons):
    x_test = customers[2]
    drop = (x_test["orders_prev_90d"] >= 3) & (x_test["orders_last_90d"] <= 1)
    falling = np.flatnonzero(drop.to_numpy() & (held_out_proba >= 0.5))
    assert falling.size >= 20
    named = [
        any(r.startswith("order frequency falling") for r in held_out_reasons[i]) for i in falling
    ]
    assert np.mean(named) >= 0.8


def test_reasons_follow_the_risk_a_planted_driver_adds(model, customers):
    x_test = customers[2]
    calm = x_test[
        (x_test["unresolved_complaints"] == 0)
        & (x_test["complaints"] == 0)
        & (x_test["recency_ratio"] < 1)
    ].head(50)
    angry = calm.assign(unresolved_complaints=4, complaints=4)
    assert np.all(model.predict_proba(angry) >= model.predict_proba(calm))
    before, after = model.reasons(calm), model.reasons(angry)
    assert not any("4 unresolved complaints" in r for r in before)
    assert np.mean(["4 unresolved complaints" in r for r in after]) >= 0.9


def test_reasons_are_limited_and_ranked(model, customers, held_out_reasons):
    x_test = customers[2].head(200)
    top1 = model.reasons(x_test, top=1)
    top5 = model.reasons(x_test, top=5)
    assert all(len(r) <= 3 for r in held_out_reasons)
    for one, three, five in zip(top1, held_out_reasons[:200], top5, strict=True):
        assert one == three[:1]
        assert three == five[:3]
        assert len(set(five)) == len(five)


def test_describe_renders_features_in_words():
    row = {
        "recency_days": 143.0,
        "unresolved_complaints": 1,
        "complaints": 2,
        "orders_last_90d": 0,
        "orders_prev_90d": 3,
        "revenue_trend": -0.35,
        "last_csat": float("nan"),
        "preferred_channel": "wechat",
        "discount_share": 0.25,
        "loyalty_points": 12.5,
        "vip": True,
    }
    assert describe("recency_days", row) == "no order for 143 days"
    assert describe("unresolved_complaints", row) == "1 unresolved complaint"
    assert describe("complaints", row) == "2 complaints"
    expected = "order frequency falling (3 → 0 orders per 90 days)"
    assert describe("orders_last_90d", row) == expected
    assert describe("orders_prev_90d", row) == expected
    assert describe("orders_last_90d", {**row, "orders_prev_90d": 0}) == (
        "0 orders in the last 90 days"
    )
    assert describe("revenue_trend", row) == "revenue falling (trend -0.35)"
    assert describe("revenue_trend", {"revenue_trend": 0.1}) == "revenue trend +0.10"
    assert describe("last_csat", row) == "last satisfaction score unknown"
    assert describe("preferred_channel", row) == "prefers the wechat channel"
    assert describe("discount_share", row) == "25% of order lines discounted"
    assert describe("loyalty_points", row) == "loyalty_points = 12.5"
    assert describe("vip", row) == "vip = True"
    assert describe("vip", {"vip": None}) == "vip unknown"


# --- inputs: categories, missing values, pickling, errors ---------------------------------------


def test_unseen_category_is_treated_as_missing(model, customers):
    x_test = customers[2].head(300)
    unseen = model.predict_proba(x_test.assign(preferred_channel="tiktok"))
    missing = model.predict_proba(x_test.assign(preferred_channel=None))
    first_known = model.predict_proba(x_test.assign(preferred_channel="app"))
    assert np.all(np.isfinite(unseen))
    np.testing.assert_array_equal(unseen, missing)
    assert not np.array_equal(unseen, first_known)
    reasons = model.reasons(x_test.assign(preferred_channel="tiktok"))
    assert len(reasons) == len(x_test)


def test_channel_is_learned_as_a_category(model, customers):
    x_test = customers[2].head(500)
    wechat = model.decision_function(x_test.assign(preferred_channel="wechat"))
    app = model.decision_function(x_test.assign(preferred_channel="app"))
    assert model.categories_ == {"preferred_channel": sorted(CHANNELS)}
    assert np.mean(wechat - app) > 0.1


def test_missing_values_are_allowed_in_fit_and_predict(customers):
    x, y, x_test, _ = customers
    rng = np.random.default_rng(1)
    holes = x.head(3000).copy()
    for column in ["recency_ratio", "median_interval_days", "preferred_channel"]:
        holes.loc[rng.random(len(holes)) < 0.2, column] = None
    holes["orders_prev_90d"] = holes["orders_prev_90d"].astype("Int64")
    holes.loc[holes.index[:100], "orders_prev_90d"] = pd.NA
    holes["vip"] = pd.array(rng.random(len(holes)) < 0.1, dtype="boolean")
    holes.loc[holes.index[:50], "vip"] = pd.NA
    holes["member"] = pd.Series(rng.random(len(holes)) < 0.5, dtype=object).where(
        rng.random(len(holes)) < 0.9, None
    )
    fitted = ChurnModel(n_estimators=50, n_jobs=1).fit(holes, y[:3000])
    assert "member" not in fitted.categories_
    blank = x_test.head(20).assign(vip=pd.NA, member=None).astype({"vip": "boolean"})
    text = ("customer_id", "preferred_channel", "vip", "member")
    numeric = [c for c in blank.columns if c not in text]
    blank[numeric] = np.nan
    proba = fitted.predict_proba(blank)
    assert np.all((proba >= 0) & (proba <= 1))


def test_pickle_round_trip_gives_identical_predictions(model, customers):
    x_test = customers[2].head(500)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(x_test), model.predict_proba(x_test))
    assert restored.reasons(x_test) == model.reasons(x_test)


def test_columns_are_matched_by_name_and_ids_ignored(model, customers):
    x_test = customers[2].head(300)
    assert "customer_id" not in model.feature_names_in_
    shuffled = x_test[x_test.columns[::-1]].assign(extra=1.0)
    np.testing.assert_array_equal(model.predict_proba(shuffled), model.predict_proba(x_test))
    with pytest.raises(DataError, match="feature columns missing: unresolved_complaints"):
        model.predict_proba(x_test.drop(columns="unresolved_complaints"))
    with pytest.raises(DataError, match="'orders' must be numeric"):
        model.predict_proba(x_test.assign(orders="many"))


def test_one_class_labels_raise_a_clear_data_error(customers):
    x = customers[0]
    with pytest.raises(DataError, match="only one class"):
        ChurnModel(n_jobs=1).fit(x.head(100), np.zeros(100))
    with pytest.raises(DataError, match="only one class"):
        RecencyBaseline().fit(x.head(100), np.ones(100))
    with pytest.raises(DataError, match="one class"):
        roc_auc(np.ones(4), [0.1, 0.2, 0.3, 0.4])


def test_bad_inputs_raise_data_errors(customers):
    x, y, _, _ = customers
    with pytest.raises(DataError, match="0 \\(kept\\) or 1 \\(churned\\)"):
        ChurnModel().fit(x.head(4), [0, 1, 2, 1])
    with pytest.raises(DataError, match="one value per customer"):
        ChurnModel().fit(x.head(4), [0, 1])
    with pytest.raises(DataError, match="at least 10 churned"):
        ChurnModel().fit(x.head(30), np.r_[np.ones(3), np.zeros(27)])
    with pytest.raises(DataError, match="'signed_up' has type"):
        ChurnModel().fit(x.head(100).assign(signed_up=pd.Timestamp("2024-01-01")), y[:100])
    with pytest.raises(DataError, match="non-negative"):
        RecencyBaseline().fit(x.head(100).assign(recency_days=np.nan), y[:100])


def test_prediction_before_fit_is_a_programming_error(customers):
    with pytest.raises(NotFittedError):
        ChurnModel().predict_proba(customers[2])
    with pytest.raises(NotFittedError):
        RecencyBaseline().predict_proba(customers[2])


def test_recency_baseline_is_a_calibrated_increasing_curve(customers):
    x, y, x_test, y_test = customers
    baseline = RecencyBaseline().fit(x, y)
    assert baseline.coef_ > 0
    days = pd.DataFrame({"recency_days": [0, 30, 90, 365]})
    assert np.all(np.diff(baseline.predict_proba(days)) > 0)
    assert expected_calibration_error(y_test, baseline.predict_proba(x_test)) < 0.05


# --- metrics --------------------------------------------------------------------------------------


def test_roc_auc_by_hand_and_against_sklearn():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([1, 0], [0.9, 0.1]) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500) + 0.3 * y, 1)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))


def test_pr_auc_by_hand_and_against_sklearn():
    # ranked 1, 0, 1, 0: precision 1 at recall 0.5, then 2/3 at recall 1
    assert pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert pr_auc([0, 1, 1, 0], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500) + 0.3 * y, 1)
    assert pr_auc(y, s) == pytest.approx(average_precision_score(y, s))


def test_top_decile_lift_by_hand():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 1, 0, 0] + [0] * 10)
    score = np.arange(20, 0, -1.0)
    # top 2 of 20 are both churners: rate 1 against 4/20
    assert top_decile_lift(y, score) == pytest.approx(5.0)
    assert top_decile_lift(y, -score) == pytest.approx(0.0)
    # a tie across the cut counts at its average rate: everyone tied gives lift 1
    assert top_decile_lift(y, np.ones(20)) == pytest.approx(1.0)
    assert top_decile_lift(y, score, fraction=0.25) == pytest.approx((3 / 5) / 0.2)


def test_expected_calibration_error_by_hand():
    # bin 0: 0.05 vs 0; bin 1: 0.15 vs 0.5 (two customers); bin 9: 0.95 vs 1
    ece = expected_calibration_error([0, 0, 1, 1], [0.05, 0.15, 0.15, 0.95])
    assert ece == pytest.approx(0.25 * 0.05 + 0.5 * 0.35 + 0.25 * 0.05)
    assert expected_calibration_error([1, 0], [1.0, 0.0]) == pytest.approx(0.0)
    with pytest.raises(DataError, match="between 0 and 1"):
        expected_calibration_error([1, 0], [1.5, 0.0])


def test_evaluate_puts_scorers_side_by_side():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 0, 0, 1])
    p = np.array([0.1, 0.2, 0.7, 0.9, 0.3, 0.6, 0.2, 0.1, 0.4, 0.8])
    days = np.array([5, 10, 80, 200, 30, 60, 12, 3, 40, 150])
    table = evaluate(y, {"model": p, "recency days": days})
    assert list(table.index) == ["model", "recency days"]
    assert list(table.columns) == ["roc_auc", "pr_auc", "top_decile_lift", "ece"]
    assert table.loc["model", "roc_auc"] == pytest.approx(roc_auc(y, p))
    assert table.loc["model", "pr_auc"] == pytest.approx(pr_auc(y, p))
    assert table.loc["model", "top_decile_lift"] == pytest.approx(top_decile_lift(y, p))
    assert table.loc["model", "ece"] == pytest.approx(expected_calibration_error(y, p))
    assert np.isnan(table.loc["recency days", "ece"])
