"""Gamma-Gamma spend model: which rows it uses, the correlation warning, predictions, pickling."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

from tierwise.core.errors import DataError
from tierwise.models.gammagamma import GammaGammaModel, SpendFrequencyCorrelationWarning
from tierwise.models.simulate import simulate_spend


@pytest.fixture(scope="module")
def spend(cdnow_calibration) -> pd.DataFrame:
    return cdnow_calibration[["frequency", "monetary_value"]]


@pytest.fixture(scope="module")
def fitted(spend) -> GammaGammaModel:
    return GammaGammaModel().fit(spend["frequency"], spend["monetary_value"])


def test_non_repeaters_and_zero_spend_are_ignored_and_counted(spend, fitted):
    extra = pd.DataFrame({"frequency": [3, 5, 0], "monetary_value": [0.0, -4.0, 12.0]})
    both = pd.concat([spend, extra])
    model = GammaGammaModel().fit(both["frequency"], both["monetary_value"])
    assert model.n_ignored_ == fitted.n_ignored_ + 3
    assert model.params_ == pytest.approx(fitted.params_, rel=1e-9)


def test_weighted_fit_equals_full_fit(spend, fitted):
    rows = spend.groupby(["frequency", "monetary_value"]).size().reset_index(name="weight")
    assert len(rows) < len(spend)
    weighted = GammaGammaModel().fit(
        rows["frequency"], rows["monetary_value"], weights=rows["weight"]
    )
    for name, value in fitted.params_.items():
        assert weighted.params_[name] == pytest.approx(value, rel=1e-6)
    assert weighted.log_likelihood_ == pytest.approx(fitted.log_likelihood_, abs=1e-6)


def test_cdnow_spend_is_uncorrelated_with_frequency(spend):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpendFrequencyCorrelationWarning)
        model = GammaGammaModel().fit(spend["frequency"], spend["monetary_value"])
    assert abs(model.correlation_) < 0.3


def test_correlated_spend_warns():
    rng = np.random.default_rng(3)
    x = rng.integers(1, 20, 500)
    m = 5.0 * x + rng.gamma(2.0, 3.0, 500)  # big spenders buy more often
    with pytest.warns(SpendFrequencyCorrelationWarning, match="correlate"):
        model = GammaGammaModel().fit(x, m)
    assert model.correlation_ > 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpendFrequencyCorrelationWarning)
        GammaGammaModel(correlation_threshold=0.99).fit(x, m)


def test_conditional_expected_spend(fitted):
    p, q, v = fitted.params_["p"], fitted.params_["q"], fitted.params_["v"]
    population = p * v / (q - 1)
    x = np.array([0, 1, 1, 10, 1000, 3, 3])
    m = np.array([0.0, 20.0, 200.0, 200.0, 200.0, 0.0, -5.0])
    got = fitted.conditional_expected_spend(x, m)
    assert got[0] == pytest.approx(population)
    assert got[1] == pytest.approx((p * v + p * 20.0) / (p + q - 1))
    # shrinkage: the more transactions, the closer to the customer's own mean
    assert population < got[2] < got[3] < got[4] < 200.0
    assert got[4] == pytest.approx(200.0, rel=0.01)
    # zero-spend and net-return repeaters: defined, below the population mean, equal
    assert 0 < got[5] < population
    assert got[6] == got[5]


def test_too_few_repeat_buyers_is_a_data_error():
    with pytest.raises(DataError, match="at least two repeat buyers"):
        GammaGammaModel().fit([0, 0, 2], [0.0, 0.0, 10.0])


def test_heavy_tailed_spend_is_a_data_error():
    """q <= 1 has no finite mean spend."""
    x = np.random.default_rng(5).integers(1, 6, 20_000)
    m = simulate_spend(x, p=2.0, q=0.6, v=10.0, seed=6)
    with pytest.raises(DataError, match="heavy-tailed"):
        GammaGammaModel().fit(x, m)


def test_pickle_round_trip(fitted):
    restored = pickle.loads(pickle.dumps(fitted))
    assert restored.params_ == fitted.params_
    assert restored.correlation_threshold == fitted.correlation_threshold
    np.testing.assert_array_equal(
        restored.conditional_expected_spend([0, 2], [0.0, 30.0]),
        fitted.conditional_expected_spend([0, 2], [0.0, 30.0]),
    )
