"""Seeded simulators of the purchase and spend models: ground truth for recovery tests and
benchmarks. Times are continuous and in the same unit as the parameters."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from tierwise.models._base import Array


class SimulatedSummary(NamedTuple):
    frequency: Array
    recency: Array
    T: Array


def _last_purchase(rng: np.random.Generator, x: Array, events: Array, window: Array) -> Array:
    """Time of the x-th of `events` uniform points in (0, window]: window * Beta(x, events-x+1)."""
    some = x > 0
    draws = rng.beta(np.maximum(x, 1), np.maximum(events - x, 0) + 1)
    return np.where(some, window * draws, 0.0)


def simulate_beta_geo(
    n: int,
    *,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T: float | ArrayLike,  # noqa: N803
    modified: bool = False,
    seed: int | None = None,
) -> SimulatedSummary:
    """BG/NBD (or MBG/NBD with `modified`) customers observed for T after their first purchase.

    A customer drops out at a purchase with probability p; the purchase at which that happens is
    geometric, counted from the first repeat purchase (BG) or from the first purchase (MBG).
    """
    rng = np.random.default_rng(seed)
    age = np.broadcast_to(np.asarray(T, dtype=np.float64), (n,)).copy()
    rate = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    events = rng.poisson(rate * age).astype(np.float64)
    last_alive = rng.geometric(p).astype(np.float64) - (1.0 if modified else 0.0)
    x = np.minimum(events, last_alive)
    return SimulatedSummary(x, _last_purchase(rng, x, events, age), age)


def simulate_pareto_nbd(
    n: int,
    *,
    r: float,
    alpha: float,
    s: float,
    beta: float,
    T: float | ArrayLike,  # noqa: N803
    seed: int | None = None,
) -> SimulatedSummary:
    """Pareto/NBD customers: exponential lifetimes, Poisson purchasing while alive."""
    rng = np.random.default_rng(seed)
    age = np.broadcast_to(np.asarray(T, dtype=np.float64), (n,)).copy()
    rate = rng.gamma(r, 1.0 / alpha, n)
    death_rate = rng.gamma(s, 1.0 / beta, n)
    active = np.minimum(rng.exponential(1.0 / death_rate), age)
    x = rng.poisson(rate * active).astype(np.float64)
    return SimulatedSummary(x, _last_purchase(rng, x, x, active), age)


def simulate_spend(
    frequency: ArrayLike, *, p: float, q: float, v: float, seed: int | None = None
) -> Array:
    """Gamma-Gamma mean spend of each customer's `frequency` transactions (0 when none)."""
    rng = np.random.default_rng(seed)
    x = np.asarray(frequency, dtype=np.float64)
    nu = rng.gamma(q, 1.0 / v, x.shape)
    total = rng.gamma(np.maximum(p * x, 1e-300), 1.0 / nu)
    return np.where(x > 0, total / np.maximum(x, 1.0), 0.0)
