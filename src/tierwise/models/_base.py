"""What every purchase model shares: input checks, the fit loop and the generic predictions.

Each model supplies its per-row log-likelihood, its gradient (or lets central differences stand in)
and the two model-specific predictions (`p_alive`, `expected_purchases`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tierwise.core.errors import DataError
from tierwise.models._optim import central_gradient, maximise_log_likelihood

Array = NDArray[np.float64]


class NotFittedError(RuntimeError):
    """A prediction was asked of a model before `fit`: a programming error, not a data error."""


def as_array(values: ArrayLike, name: str) -> Array:
    """A 1-d float array of finite values (scalars are broadcast later)."""
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains missing or infinite values")
    return arr


def check_summary(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,  # noqa: N803
) -> tuple[Array, Array, Array]:
    """Validate per-customer (x, t_x, T) and broadcast them to one shape."""
    x, tx, age = (
        as_array(v, n) for v, n in ((frequency, "frequency"), (recency, "recency"), (T, "T"))
    )
    try:
        x, tx, age = np.broadcast_arrays(x, tx, age)
    except ValueError:
        raise DataError("frequency, recency and T must have the same length") from None
    if np.any(x < 0) or np.any(x != np.floor(x)):
        raise DataError("frequency must be a non-negative whole number of repeat purchases")
    if np.any(tx < 0) or np.any(tx > age):
        raise DataError("recency must lie between 0 and T for every customer")
    if np.any((x == 0) & (tx != 0)):
        raise DataError("recency must be 0 for customers without repeat purchases")
    return x.astype(np.float64), tx.astype(np.float64), age.astype(np.float64)


def check_weights(weights: ArrayLike | None, n: int) -> Array:
    """Row counts (from grouping unique rows); all ones when absent."""
    if weights is None:
        return np.ones(n)
    w = as_array(weights, "weights")
    if w.shape != (n,):
        raise DataError(f"weights must have one value per row ({n}), got {w.shape[0]}")
    if np.any(w < 0):
        raise DataError("weights must be non-negative counts")
    return w


def prepare(
    t: ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,  # noqa: N803
) -> tuple[Array, Array, Array, Array]:
    """Checked and broadcast (t, x, t_x, T) for a conditional prediction."""
    x, tx, age = check_summary(frequency, recency, T)
    horizon = as_array(t, "t")
    if np.any(horizon < 0):
        raise DataError("the prediction horizon t must be non-negative")
    horizon, x, tx, age = np.broadcast_arrays(horizon, x, tx, age)
    return horizon, x, tx, age


class PurchaseModel(ABC):
    """Base of the repeat-purchase models; parameters are fitted by maximum likelihood."""

    param_names: ClassVar[tuple[str, ...]]

    def fit(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,  # noqa: N803
        weights: ArrayLike | None = None,
    ) -> PurchaseModel:
        """Fit on per-customer summaries, or on unique rows with their counts as `weights`."""
        x, tx, age = check_summary(frequency, recency, T)
        w = check_weights(weights, x.size)
        keep = w > 0
        x, tx, age, w = x[keep], tx[keep], age[keep], w[keep]
        if not np.any(x > 0):
            raise DataError(
                f"{type(self).__name__} needs repeat buyers: no customer has a repeat purchase"
            )
        total = float(w.sum())
        result = maximise_log_likelihood(
            lambda theta: self._objective(theta, x, tx, age, w / total),
            self._start(x, tx, age, w),
            total,
            self.param_names,
            type(self).__name__,
        )
        self.params_ = {n: float(v) for n, v in zip(self.param_names, result.params, strict=True)}
        self.standard_errors_ = {
            n: float(v) for n, v in zip(self.param_names, result.standard_errors, strict=True)
        }
        self.log_likelihood_ = result.log_likelihood
        return self

    def _start(self, x: Array, tx: Array, age: Array, w: Array) -> Array:
        """Shape parameters at 1, scale parameters at the mean age (keeps the start unit-free)."""
        scale = max(float(np.average(age, weights=w)), 1e-3)
        return np.log([scale if n in {"alpha", "beta"} else 1.0 for n in self.param_names])

    def _objective(self, theta: Array, x: Array, tx: Array, age: Array, w: Array):
        """Mean negative log-likelihood and its gradient over log-parameters (w sums to one).

        Central differences by default; models with closed-form derivatives override this.
        """

        def nll(th: Array) -> float:
            return -float(w @ self._loglik_rows(np.exp(th), x, tx, age))

        return nll(theta), central_gradient(nll, theta)

    @abstractmethod
    def _loglik_rows(self, params: Array, x: Array, tx: Array, age: Array) -> Array:
        """Per-row log-likelihood for parameters in `param_names` order."""

    def _params(self) -> Array:
        if not hasattr(self, "params_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit first")
        return np.array([self.params_[n] for n in self.param_names])

    def log_likelihood_rows(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Array:  # noqa: N803
        """Per-customer log-likelihood under the fitted parameters."""
        x, tx, age = check_summary(frequency, recency, T)
        return self._loglik_rows(self._params(), x, tx, age)

    def p_no_purchase(
        self,
        t: ArrayLike,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,  # noqa: N803
    ) -> Array:
        """P(no purchase in (T, T+t] | history): the churn-probability baseline.

        The history "x purchases, the last at t_x, none up to T+t" is the same event as the
        history observed at age T+t, so the probability is L(x, t_x, T+t) / L(x, t_x, T). This
        holds for every model in the family and covers both ways of not buying: being dead
        already, or being alive and drawing no Poisson event in the window.
        """
        horizon, x, tx, age = prepare(t, frequency, recency, T)
        params = self._params()
        log_ratio = self._loglik_rows(params, x, tx, age + horizon) - self._loglik_rows(
            params, x, tx, age
        )
        return np.clip(np.exp(np.minimum(log_ratio, 0.0)), 0.0, 1.0)

    def expected_purchases_new(self, t: ArrayLike) -> Array:
        """E[repeat purchases in (0, t]] for a customer who just made a first purchase."""
        horizon = as_array(t, "t")
        zero = np.zeros_like(horizon)
        return self.expected_purchases(horizon, zero, zero, zero)

    @abstractmethod
    def expected_purchases(
        self,
        t: ArrayLike,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,  # noqa: N803
    ) -> Array:
        """E[repeat purchases in (T, T+t] | x, t_x, T]."""

    @abstractmethod
    def p_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Array:  # noqa: N803
        """P(still active at T | x, t_x, T)."""
