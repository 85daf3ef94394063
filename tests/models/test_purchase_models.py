"""BG/NBD, MBG/NBD and Pareto/NBD: predictions against the papers' closed forms and independent
numerical integration, weighted fitting, edge cases, input errors and pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import betaln, gammaln, hyp2f1

from tierwise.core.errors import DataError
from tierwise.models._base import NotFittedError
from tierwise.models._optim import central_gradient
from tierwise.models.betageo import BetaGeoModel, ModifiedBetaGeoModel, expected_while_alive
from tierwise.models.paretonbd import ParetoNBDModel, log_hyp2f1_a1
from tierwise.models.simulate import simulate_beta_geo, simulate_pareto_nbd

MODELS = [BetaGeoModel, ModifiedBetaGeoModel, ParetoNBDModel]

# customers spanning the awkward corners: no repeats, brand new (T = 0), last purchase today,
# very many purchases, very long ages
X = np.array([0, 0, 1, 2, 7, 30, 500, 5000])
TX = np.array([0.0, 0.0, 0.0, 30.43, 38.86, 10.0, 300.0, 4000.0])
T = np.array([0.0, 38.86, 38.86, 38.86, 38.86, 38.86, 300.0, 50000.0])


@pytest.fixture(scope="module")
def fitted(cdnow_unique):
    rows = cdnow_unique
    return {
        cls: cls().fit(rows["frequency"], rows["recency"], rows["T"], weights=rows["weight"])
        for cls in MODELS
    }


def with_params(cls, **params):
    model = cls()
    model.params_ = params
    return model


@pytest.mark.parametrize("cls", MODELS)
def test_weighted_unique_rows_fit_equals_per_customer_fit(cls, fitted, cdnow_calibration):
    full = cls().fit(
        cdnow_calibration["frequency"], cdnow_calibration["recency"], cdnow_calibration["T"]
    )
    weighted = fitted[cls]
    for name, value in full.params_.items():
        assert weighted.params_[name] == pytest.approx(value, rel=1e-6), name
    assert weighted.log_likelihood_ == pytest.approx(full.log_likelihood_, abs=1e-6)


def test_bgnbd_conditional_expectation_matches_closed_form(fitted):
    """FHL (2005) eq. 10, evaluated with hyp2f1 where it is well-conditioned (x small)."""
    model = fitted[BetaGeoModel]
    r, alpha, a, b = (model.params_[k] for k in ("r", "alpha", "a", "b"))
    x, tx, age, t = X[:6], TX[:6], T[:6], 39.0
    z = t / (alpha + age + t)
    hyper = hyp2f1(r + x, b + x, a + b + x - 1, z)
    ratio = (alpha + age) / (alpha + age + t)
    numer = (a + b + x - 1) / (a - 1) * (1 - ratio ** (r + x) * hyper)
    denom = 1 + (x > 0) * a / (b + x - 1) * ((alpha + age) / (alpha + tx)) ** (r + x)
    np.testing.assert_allclose(model.expected_purchases(t, x, tx, age), numer / denom, rtol=1e-9)
    # and the unconditional expectation (eq. 9) is the x = t_x = T = 0 case
    times = np.array([1.0, 39.0, 78.0])
    closed = (
        (a + b - 1)
        / (a - 1)
        * (1 - (alpha / (alpha + times)) ** r * hyp2f1(r, b, a + b - 1, times / (alpha + times)))
    )
    np.testing.assert_allclose(model.expected_purchases_new(times), closed, rtol=1e-9)


def test_mbgnbd_expectations_match_closed_form(fitted):
    """Batislam et al. (2007): E[X(t)] and the conditional expectation."""
    model = fitted[ModifiedBetaGeoModel]
    r, alpha, a, b = (model.params_[k] for k in ("r", "alpha", "a", "b"))
    times = np.array([1.0, 39.0, 78.0])
    closed = (
        b
        / (a - 1)
        * (1 - (alpha / (alpha + times)) ** r * hyp2f1(r, b + 1, a + b, times / (alpha + times)))
    )
    np.testing.assert_allclose(model.expected_purchases_new(times), closed, rtol=1e-9)
    x, tx, age, t = X[:6], TX[:6], T[:6], 39.0
    ratio = (alpha + age) / (alpha + age + t)
    hyper = hyp2f1(r + x, b + x + 1, a + b + x, t / (alpha + age + t))
    numer = (a + b + x) / (a - 1) * (1 - ratio ** (r + x) * hyper)
    denom = 1 + a / (b + x) * ((alpha + age) / (alpha + tx)) ** (r + x)
    np.testing.assert_allclose(model.expected_purchases(t, x, tx, age), numer / denom, rtol=1e-9)


def test_paretonbd_unconditional_expectation_matches_closed_form(fitted):
    model = fitted[ParetoNBDModel]
    r, alpha, s, beta = (model.params_[k] for k in ("r", "alpha", "s", "beta"))
    times = np.array([1.0, 39.0, 78.0])
    closed = r * beta / (alpha * (s - 1)) * (1 - (beta / (beta + times)) ** (s - 1))
    np.testing.assert_allclose(model.expected_purchases_new(times), closed, rtol=1e-12)


def pareto_bracket_by_quadrature(params, x, tx, age):
    """log of (alpha+T)^-(r+x) (beta+T)^-s + s * int_tx^T (alpha+u)^-(r+x) (beta+u)^-(s+1) du,
    integrated numerically after scaling by the integrand's value at t_x."""
    r, alpha, s, beta = params
    shape = r + x
    alive = -shape * np.log(alpha + age) - s * np.log(beta + age)
    top = -shape * np.log(alpha + tx) - (s + 1) * np.log(beta + tx)

    def scaled(u):
        return np.exp(-shape * np.log(alpha + u) - (s + 1) * np.log(beta + u) - top)

    integral, _ = quad(scaled, tx, age, limit=500, epsabs=0, epsrel=1e-12) if age > tx else (0, 0)
    return np.logaddexp(alive, np.log(s) + top + np.log(integral) if integral > 0 else -np.inf)


@pytest.mark.parametrize(
    "params",
    [
        (0.553, 10.578, 0.606, 11.669),  # CDNOW: alpha < beta
        (0.553, 11.669, 0.606, 10.578),  # alpha > beta
        (2.0, 100.0, 0.3, 0.01),  # alpha >> beta: hypergeometric argument near 1
        (0.2, 0.5, 2.5, 300.0),  # beta >> alpha
    ],
)
def test_paretonbd_likelihood_matches_numerical_integration(params):
    model = with_params(
        ParetoNBDModel, **dict(zip(ParetoNBDModel.param_names, params, strict=True))
    )
    r, alpha, s, beta = params
    ll = model.log_likelihood_rows(X, TX, T)
    expected = np.array(
        [
            gammaln(r + x)
            - gammaln(r)
            + r * np.log(alpha)
            + s * np.log(beta)
            + pareto_bracket_by_quadrature(params, x, tx, age)
            for x, tx, age in zip(X, TX, T, strict=True)
        ]
    )
    np.testing.assert_allclose(ll, expected, rtol=1e-9, atol=1e-9)


def test_hypergeometric_guard_covers_scipy_failures():
    """scipy's hyp2f1(1, b; c; z) is NaN for large b near z = 1; the fallback is exact there."""
    b, c, z = 1000.5, 1002.1, 0.999
    assert np.isnan(hyp2f1(1.0, b, c, z))
    n = np.arange(400_000)
    log_terms = np.concatenate([[0.0], np.cumsum(np.log((b + n[:-1]) / (c + n[:-1]) * z))])
    series = np.log(np.exp(log_terms - log_terms.max()).sum()) + log_terms.max()
    got = log_hyp2f1_a1(np.array([b]), np.array([c]), np.array([z]))
    assert got[0] == pytest.approx(series, rel=1e-10)


def test_bg_family_no_purchase_probability_matches_closed_form(fitted):
    """P(dead) + P(alive) ((alpha+T)/(alpha+T+t))^(r+x): alive customers only die at purchases."""
    for cls in (BetaGeoModel, ModifiedBetaGeoModel):
        model = fitted[cls]
        r, alpha = model.params_["r"], model.params_["alpha"]
        alive = model.p_alive(X, TX, T)
        t = 13.0
        expected = 1 - alive + alive * ((alpha + T) / (alpha + T + t)) ** (r + X)
        np.testing.assert_allclose(model.p_no_purchase(t, X, TX, T), expected, rtol=1e-9)


def test_paretonbd_no_purchase_probability_matches_posterior_simulation(fitted):
    """Alive at T: no purchase in t is death first (mu/(lambda+mu)) or no event at all."""
    model = fitted[ParetoNBDModel]
    r, alpha, s, beta = (model.params_[k] for k in ("r", "alpha", "s", "beta"))
    rng = np.random.default_rng(7)
    t = 13.0
    for x, tx, age in [(0, 0.0, 38.86), (2, 30.43, 38.86), (7, 10.0, 38.86)]:
        lam = rng.gamma(r + x, 1 / (alpha + age), 1_000_000)
        mu = rng.gamma(s, 1 / (beta + age), 1_000_000)
        none_if_alive = (mu + lam * np.exp(-(lam + mu) * t)) / (lam + mu)
        alive = model.p_alive(x, tx, age)[0]
        expected = 1 - alive + alive * none_if_alive.mean()
        assert model.p_no_purchase(t, x, tx, age)[0] == pytest.approx(expected, abs=2e-3)


@pytest.mark.parametrize("cls", MODELS)
def test_new_customer_expectation_matches_simulation(cls, fitted):
    """The simulator and the model agree on E[X(t)] (200k simulated new customers)."""
    params = fitted[cls].params_
    t = 39.0
    if cls is ParetoNBDModel:
        sim = simulate_pareto_nbd(200_000, **params, T=t, seed=11)
    else:
        sim = simulate_beta_geo(
            200_000, **params, T=t, modified=cls is ModifiedBetaGeoModel, seed=11
        )
    mean, se = sim.frequency.mean(), sim.frequency.std() / np.sqrt(sim.frequency.size)
    assert fitted[cls].expected_purchases_new(t)[0] == pytest.approx(mean, abs=4 * se)


@pytest.mark.parametrize("cls", MODELS)
def test_predictions_are_defined_everywhere(cls, fitted):
    model = fitted[cls]
    for t in (0.0, 1.0, 52.0, 1e5):
        expected = model.expected_purchases(t, X, TX, T)
        no_purchase = model.p_no_purchase(t, X, TX, T)
        assert np.all(np.isfinite(expected)) and np.all(expected >= 0)
        assert np.all((no_purchase >= 0) & (no_purchase <= 1))
    alive = model.p_alive(X, TX, T)
    assert np.all((alive >= 0) & (alive <= 1))
    assert np.all(model.expected_purchases(0.0, X, TX, T) == 0)
    assert np.all(model.p_no_purchase(0.0, X, TX, T) == 1)
    assert np.all(np.diff(model.expected_purchases_new([0.0, 1.0, 10.0, 100.0])) > 0)
    # the later the last purchase, the likelier the customer is still around
    assert np.all(np.diff(model.p_alive(2, [0.0, 10.0, 20.0, 38.86], 38.86)) > 0)


def test_alive_probability_at_known_points(fitted):
    """A brand-new customer is alive (BG/NBD, Pareto/NBD) or alive with probability b/(a+b)
    (MBG/NBD). Buying today proves a Pareto/NBD customer alive, but a BG/NBD customer may have
    dropped out at that very purchase: P = 1 / (1 + a/(b+x-1))."""
    assert fitted[ParetoNBDModel].p_alive(3, 20.0, 20.0)[0] == pytest.approx(1.0)
    bg = fitted[BetaGeoModel].params_
    expected = 1 / (1 + bg["a"] / (bg["b"] + 3 - 1))
    assert fitted[BetaGeoModel].p_alive(3, 20.0, 20.0)[0] == pytest.approx(expected)
    assert fitted[BetaGeoModel].p_alive(0, 0, 0)[0] == 1.0
    assert fitted[ParetoNBDModel].p_alive(0, 0, 0)[0] == pytest.approx(1.0)
    mbg = fitted[ModifiedBetaGeoModel].params_
    expected = mbg["b"] / (mbg["a"] + mbg["b"])
    assert fitted[ModifiedBetaGeoModel].p_alive(0, 0, 0)[0] == pytest.approx(expected)


@pytest.mark.parametrize("cls", MODELS)
def test_one_time_buyers_only_is_a_data_error(cls):
    with pytest.raises(DataError, match="no customer has a repeat purchase"):
        cls().fit([0, 0, 0], [0, 0, 0], [10.0, 20.0, 30.0])


@pytest.mark.parametrize("cls", MODELS)
def test_single_customer_is_a_data_error(cls):
    with pytest.raises(DataError, match="too few or too degenerate"):
        cls().fit([2], [10.0], [20.0])


@pytest.mark.parametrize(
    ("frequency", "recency", "age", "message"),
    [
        ([1, -1], [1.0, 0.0], [2.0, 2.0], "non-negative whole number"),
        ([1.5], [1.0], [2.0], "non-negative whole number"),
        ([1], [3.0], [2.0], "between 0 and T"),
        ([0], [1.0], [2.0], "recency must be 0"),
        ([1], [np.nan], [2.0], "missing or infinite"),
        ([1, 2], [1.0, 1.0, 1.0], [2.0, 2.0], "same length"),
    ],
)
def test_invalid_summaries_are_data_errors(frequency, recency, age, message):
    with pytest.raises(DataError, match=message):
        BetaGeoModel().fit(frequency, recency, age)


def test_invalid_weights_and_horizon_are_data_errors(fitted):
    with pytest.raises(DataError, match="non-negative counts"):
        BetaGeoModel().fit([1, 2], [1.0, 1.0], [2.0, 2.0], weights=[1, -1])
    with pytest.raises(DataError, match="one value per row"):
        BetaGeoModel().fit([1, 2], [1.0, 1.0], [2.0, 2.0], weights=[1])
    with pytest.raises(DataError, match="horizon"):
        fitted[BetaGeoModel].expected_purchases(-1.0, 1, 1.0, 2.0)


def test_unfitted_model_refuses_to_predict():
    with pytest.raises(NotFittedError):
        ParetoNBDModel().p_alive(1, 1.0, 2.0)


@pytest.mark.parametrize("cls", MODELS)
def test_pickle_round_trip(cls, fitted):
    model = fitted[cls]
    restored = pickle.loads(pickle.dumps(model))
    assert restored.params_ == model.params_
    assert restored.log_likelihood_ == model.log_likelihood_
    np.testing.assert_array_equal(
        restored.expected_purchases(39.0, X, TX, T), model.expected_purchases(39.0, X, TX, T)
    )


@pytest.mark.parametrize("cls", MODELS)
def test_standard_errors_are_reported(cls, fitted):
    errors = fitted[cls].standard_errors_
    assert set(errors) == set(cls.param_names)
    assert all(0 < errors[n] < fitted[cls].params_[n] for n in cls.param_names)


@pytest.mark.parametrize("a", [0.3, 1.0, 3.0])
@pytest.mark.parametrize("b_post", [0.5, 2.5, 1000.0])
def test_expectation_while_alive_matches_adaptive_quadrature(a, b_post):
    """The Gauss-Jacobi expectation over the drop-out probability, against scipy's quad, out to
    horizons 1e5 times the rate scale (a brand-new daily customer over centuries)."""
    ratios = np.array([0.1, 10.0, 1e3, 1e5])
    shape = 1.3
    got = expected_while_alive(ratios, np.full(4, shape), np.ones(4), a, np.full(4, b_post))
    for ratio, value in zip(ratios, got, strict=True):

        def integrand(p, ratio=ratio):
            density = np.exp((a - 1) * np.log(p) + (b_post - 1) * np.log1p(-p) - betaln(a, b_post))
            return -np.expm1(-shape * np.log1p(p * ratio)) / p * density

        points = sorted({min(c, 0.5) for c in (1 / ratio, 10 / ratio, a / (a + b_post))})
        expected, _ = quad(integrand, 0, 1, points=points, limit=1000, epsabs=0, epsrel=1e-11)
        assert value == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("cls", [BetaGeoModel, ModifiedBetaGeoModel])
def test_analytic_gradient_matches_finite_differences(cls, cdnow_unique):
    rows = cdnow_unique
    x, tx, age = (rows[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    w = rows["weight"].to_numpy(dtype=float) / rows["weight"].sum()
    model = cls()
    theta = np.log([0.4, 5.0, 0.7, 2.0])
    _, grad = model._objective(theta, x, tx, age, w)
    numeric = central_gradient(lambda th: model._objective(th, x, tx, age, w)[0], theta)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-10)
