"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005; Colombo & Jiang 1999).

Each transaction value is Gamma(p, nu) with a customer-specific nu ~ Gamma(q, v), so a repeat
buyer's mean of x transactions m has a closed-form marginal density. Spend is assumed independent
of purchase frequency; a clear correlation in the data is reported with a warning.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln

from tierwise.core.errors import DataError
from tierwise.models._base import Array, NotFittedError, as_array, check_weights
from tierwise.models._optim import maximise_log_likelihood


class SpendFrequencyCorrelationWarning(UserWarning):
    """Frequency and mean spend of repeat buyers correlate; Gamma-Gamma assumes they do not."""


def _check_spend(frequency: ArrayLike, monetary_value: ArrayLike) -> tuple[Array, Array]:
    x = as_array(frequency, "frequency")
    m = as_array(monetary_value, "monetary_value")
    try:
        x, m = np.broadcast_arrays(x, m)
    except ValueError:
        raise DataError("frequency and monetary_value must have the same length") from None
    if np.any(x < 0):
        raise DataError("frequency must be non-negative")
    return x, m


def _weighted_correlation(x: Array, m: Array, w: Array) -> float:
    """Pearson correlation with row weights; NaN when either side has no spread."""
    dx = x - np.average(x, weights=w)
    dm = m - np.average(m, weights=w)
    denom = np.sqrt(np.average(dx**2, weights=w) * np.average(dm**2, weights=w))
    return float(np.average(dx * dm, weights=w) / denom) if denom > 0 else float("nan")


class GammaGammaModel:
    """Expected mean spend per transaction, shrunk from the customer's own mean to the population's.

    `correlation_threshold`: warn when |corr(frequency, mean spend)| of repeat buyers exceeds it.
    """

    param_names = ("p", "q", "v")

    def __init__(self, *, correlation_threshold: float = 0.3) -> None:
        self.correlation_threshold = correlation_threshold

    def fit(
        self,
        frequency: ArrayLike,
        monetary_value: ArrayLike,
        weights: ArrayLike | None = None,
    ) -> GammaGammaModel:
        """Fit on repeat buyers with positive mean spend; other rows are counted, not used."""
        x, m = _check_spend(frequency, monetary_value)
        w = check_weights(weights, x.size)
        used = (x > 0) & (m > 0) & (w > 0)
        self.n_ignored_ = float(w[~used].sum())
        x, m, w = x[used], m[used], w[used]
        if x.size < 2:
            raise DataError(
                "GammaGammaModel needs at least two repeat buyers with positive spend, "
                f"found {x.size}"
            )
        self.correlation_ = _weighted_correlation(x, m, w)
        if abs(self.correlation_) > self.correlation_threshold:
            warnings.warn(
                f"frequency and mean spend of repeat buyers correlate at {self.correlation_:.2f} "
                f"(threshold {self.correlation_threshold}); Gamma-Gamma assumes independence",
                SpendFrequencyCorrelationWarning,
                stacklevel=2,
            )
        total = float(w.sum())
        theta0 = np.log([1.0, 1.0, float(np.average(m, weights=w))])
        result = maximise_log_likelihood(
            lambda theta: _objective(theta, x, m, w / total),
            theta0,
            total,
            self.param_names,
            "GammaGammaModel",
        )
        p, q, v = result.params
        if q <= 1.0:
            raise DataError(
                f"spend is too heavy-tailed for the Gamma-Gamma model (q = {q:.3f} <= 1 means "
                "no finite mean spend)"
            )
        self.params_ = {"p": float(p), "q": float(q), "v": float(v)}
        self.standard_errors_ = dict(
            zip(self.param_names, map(float, result.standard_errors), strict=True)
        )
        self.log_likelihood_ = result.log_likelihood
        return self

    def conditional_expected_spend(self, frequency: ArrayLike, monetary_value: ArrayLike) -> Array:
        """E[spend per transaction | x, m] = (p v + p x m) / (p x + q - 1).

        x = 0 gives the population mean p v / (q - 1). Negative means (net returns) count as 0,
        so zero-spend repeaters are pulled towards 0 as their frequency grows.
        """
        if not hasattr(self, "params_"):
            raise NotFittedError("GammaGammaModel is not fitted; call fit first")
        x, m = _check_spend(frequency, monetary_value)
        p, q, v = self.params_["p"], self.params_["q"], self.params_["v"]
        return (p * v + p * x * np.maximum(m, 0.0)) / (p * x + q - 1.0)


def loglik_rows(params: Array, x: Array, m: Array) -> Array:
    """Log density of a mean spend m over x transactions."""
    p, q, v = params
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1.0) * np.log(m * x)
        + np.log(x)
        - (px + q) * np.log(v + m * x)
    )


def _objective(theta: Array, x: Array, m: Array, w: Array):
    params = np.exp(theta)
    p, q, v = params
    px = p * x
    log_mx, log_vmx = np.log(m * x), np.log(v + m * x)
    grad = np.stack(
        [
            x * (digamma(px + q) - digamma(px) + log_mx - log_vmx),
            digamma(px + q) - digamma(q) + np.log(v) - log_vmx,
            q / v - (px + q) / (v + m * x),
        ]
    )
    return -float(w @ loglik_rows(params, x, m)), -(grad @ w) * params
