"""Maximum likelihood over log-parameters, shared by every model.

Working on log-parameters keeps the search unconstrained in sign; box bounds on the logs only stop
the search from running off to overflow, and landing on one means the data do not identify the
model, which is reported as a `DataError` rather than returned as a silent bad fit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

from tierwise.core.errors import DataError

Objective = Callable[[NDArray[np.float64]], tuple[float, NDArray[np.float64]]]

LOG_BOUND = 15.0
"""Parameters are searched within exp(±15): far outside any plausible fit in days or weeks."""


@dataclass(frozen=True)
class MLEResult:
    params: NDArray[np.float64]
    log_likelihood: float
    standard_errors: NDArray[np.float64]


def central_gradient(
    fun: Callable[[NDArray[np.float64]], float], theta: NDArray[np.float64], step: float = 1e-4
) -> NDArray[np.float64]:
    """Central differences, for likelihoods whose parameter derivatives have no closed form.

    The step balances rounding (~eps / step) against truncation (~step**2) for log-likelihoods
    of order one, leaving gradient errors near 1e-11.
    """
    grad = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = step
        grad[i] = (fun(theta + e) - fun(theta - e)) / (2.0 * step)
    return grad


def _hessian(objective: Objective, theta: NDArray[np.float64], step: float = 1e-4):
    """Symmetrised central differences of the gradient."""
    k = theta.size
    hess = np.empty((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = step
        hess[i] = (objective(theta + e)[1] - objective(theta - e)[1]) / (2.0 * step)
    return (hess + hess.T) / 2.0


def maximise_log_likelihood(
    objective: Objective,
    theta0: NDArray[np.float64],
    total_weight: float,
    names: Sequence[str],
    model: str,
) -> MLEResult:
    """Minimise `objective` (mean negative log-likelihood and its gradient over log-parameters).

    Standard errors come from the observed information (delta method back to the parameters);
    they are NaN only if the information matrix is singular.
    """
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(theta0)
    result = minimize(
        objective,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10, "maxcor": 20},
    )
    theta = result.x
    if not np.all(np.isfinite(theta)) or not np.isfinite(result.fun):
        raise DataError(f"{model} fit failed: the log-likelihood is not finite on these data")
    at_bound = np.abs(theta) >= LOG_BOUND - 1e-3
    if at_bound.any():
        which = ", ".join(n for n, b in zip(names, at_bound, strict=True) if b)
        raise DataError(
            f"{model} fit diverged ({which} ran to a limit): the data are too few or too "
            "degenerate to identify the model"
        )
    params = np.exp(theta)
    try:
        cov_log = np.linalg.inv(_hessian(objective, theta) * total_weight)
        standard_errors = params * np.sqrt(np.clip(np.diag(cov_log), 0.0, None))
    except np.linalg.LinAlgError:
        standard_errors = np.full_like(params, np.nan)
    return MLEResult(params, -float(result.fun) * total_weight, standard_errors)
