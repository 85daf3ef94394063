"""Pareto/NBD (Schmittlein, Morrison & Colombo 1987): Poisson purchasing at a Gamma(r, alpha) rate
for an exponential lifetime with a Gamma(s, beta) death rate.

The likelihood's death term is s * integral_{t_x}^{T} (alpha+u)^-(r+x) (beta+u)^-(s+1) du. Its
tail integral from tau is written (Fader & Hardie's 2F1 form after an Euler transformation) as
(alpha+tau)^-(r+x) (beta+tau)^-s 2F1(1, r+x; r+s+x+1; (alpha-beta)/(alpha+tau)) / (r+s+x), or with
the roles of the two rates swapped when beta > alpha, so the argument always lies in [0, 1) and the
series has positive terms. scipy's hyp2f1 returns NaN for large r+x near z = 1; those rows fall
back to adaptive quadrature of Euler's integral in log space.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.integrate import quad
from scipy.special import gammaln, hyp2f1

from tierwise.models._base import Array, PurchaseModel, check_summary, prepare


def _euler_log_hyp2f1(b: float, c: float, z: float) -> float:
    """log 2F1(1, b; c; z) = log((c-1) * int_0^1 (1-u)^(c-2) (1-zu)^-b du), overflow-free.

    The log-integrand g(u) has at most one stationary point, so its maximum over [0, 1) (used
    to scale the integrand) is at 0 or at that point.
    """

    def g(u: float) -> float:
        return (c - 2.0) * np.log1p(-u) - b * np.log1p(-z * u)

    peak = 0.0
    denom = z * (c - 2.0 - b)
    if denom != 0.0:
        stationary = (c - 2.0 - b * z) / denom
        if 0.0 < stationary < 1.0 and g(stationary) > g(0.0):
            peak = stationary
    top = g(peak)
    points = [peak] if peak > 0.0 else None
    value, _ = quad(
        lambda u: np.exp(g(u) - top), 0.0, 1.0, points=points, limit=200, epsabs=0.0, epsrel=1e-12
    )
    return float(np.log(c - 1.0) + top + np.log(value))


def log_hyp2f1_a1(b: Array, c: Array, z: Array) -> Array:
    """log 2F1(1, b; c; z) for c > b > 0 and 0 <= z < 1, where 1 <= 2F1 <= 1/(1-z)."""
    with np.errstate(all="ignore"):
        value = hyp2f1(1.0, b, c, z)
        bad = ~np.isfinite(value) | (value < 1.0 - 1e-12) | (value * (1.0 - z) > 1.0 + 1e-12)
        out = np.log(value)
    for i in np.flatnonzero(bad):
        out[i] = _euler_log_hyp2f1(float(b[i]), float(c[i]), float(z[i]))
    return out


class ParetoNBDModel(PurchaseModel):
    """Pareto/NBD: customers may drop out at any moment, not only at purchases."""

    param_names = ("r", "alpha", "s", "beta")

    def _log_tail(self, params: Array, shape: Array, tau: Array) -> Array:
        """log of (r+s+x) * int_tau^inf (alpha+u)^-shape (beta+u)^-(s+1) du, shape = r+x."""
        _, alpha, s, beta = params
        c = shape + s + 1.0
        if alpha >= beta:
            z = (alpha - beta) / (alpha + tau)
            return (
                -shape * np.log(alpha + tau) - s * np.log(beta + tau) + log_hyp2f1_a1(shape, c, z)
            )
        z = (beta - alpha) / (beta + tau)
        return (
            -(shape - 1.0) * np.log(alpha + tau)
            - (s + 1.0) * np.log(beta + tau)
            + log_hyp2f1_a1(np.full_like(shape, s + 1.0), c, z)
        )

    def _log_terms(self, params: Array, x: Array, tx: Array, age: Array) -> tuple[Array, Array]:
        """log of the alive-at-T term and of the whole bracket of the likelihood."""
        r, alpha, s, beta = params
        shape = r + x
        alive = -shape * np.log(alpha + age) - s * np.log(beta + age)
        weight = np.log(s) - np.log(shape + s)
        died_after_tx = weight + self._log_tail(params, shape, tx)
        died_after_age = weight + self._log_tail(params, shape, age)
        # alive + died_after_tx - died_after_age, each term scaled by the largest to avoid overflow
        top = np.maximum(alive, died_after_tx)
        total = np.exp(alive - top) + np.exp(died_after_tx - top) - np.exp(died_after_age - top)
        bracket = top + np.log(np.maximum(total, np.exp(alive - top)))
        return alive, bracket

    def _loglik_rows(self, params: Array, x: Array, tx: Array, age: Array) -> Array:
        r, alpha, s, beta = params
        _, bracket = self._log_terms(params, x, tx, age)
        return gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta) + bracket

    def p_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Array:  # noqa: N803
        """P(alive at T | history): share of the alive term in the likelihood."""
        x, tx, age = check_summary(frequency, recency, T)
        alive, bracket = self._log_terms(self._params(), x, tx, age)
        return np.exp(np.minimum(alive - bracket, 0.0))

    def expected_purchases(
        self,
        t: ArrayLike,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,  # noqa: N803
    ) -> Array:
        """P(alive) x E[lambda] x E[(1 - exp(-mu t)) / mu] under the alive posteriors.

        E[(1 - exp(-mu t)) / mu] for mu ~ Gamma(s, beta+T) is
        (beta+T) (1 - ((beta+T)/(beta+T+t))^(s-1)) / (s-1); written with expm1/log1p it stays
        exact through s = 1, where it becomes (beta+T) log(1 + t/(beta+T)).
        """
        horizon, x, tx, age = prepare(t, frequency, recency, T)
        params = self._params()
        r, alpha, s, beta = params
        alive, bracket = self._log_terms(params, x, tx, age)
        p_alive = np.exp(np.minimum(alive - bracket, 0.0))
        u = np.log1p(horizon / (beta + age))
        k = s - 1.0
        lifetime = u if abs(k) < 1e-12 else -np.expm1(-k * u) / k
        return p_alive * (r + x) / (alpha + age) * (beta + age) * lifetime
