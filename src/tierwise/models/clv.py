"""Discounted customer lifetime value over a finite horizon (DESIGN.md: `clv`)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from tierwise.core.errors import DataError
from tierwise.models._base import Array, PurchaseModel, as_array
from tierwise.models.gammagamma import GammaGammaModel
from tierwise.models.units import days_to_units

MONTH_DAYS = 30


def discounted_clv(
    purchase_model: PurchaseModel,
    spend_model: GammaGammaModel,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,  # noqa: N803
    monetary_value: ArrayLike,
    *,
    horizon_days: float = 365,
    unit_days: float,
    discount_rate_monthly: float = 0.01,
    margin: float | ArrayLike = 1.0,
) -> Array:
    """Expected margin over `horizon_days`, discounted monthly.

    Sum over 30-day months m = 1..ceil(horizon / 30) of the purchases expected within month m
    (the last month ends at the horizon, so the months add up to exactly the horizon's
    expected purchases) x expected spend x margin / (1 + d)^m. `margin` is a share of revenue,
    scalar or one per customer. frequency/recency/T are in model units of `unit_days` days.
    """
    if not (np.isfinite(horizon_days) and horizon_days > 0):
        raise DataError(f"horizon_days must be a positive number of days, got {horizon_days!r}")
    if not (np.isfinite(discount_rate_monthly) and discount_rate_monthly > -1.0):
        raise DataError(f"discount_rate_monthly must exceed -1, got {discount_rate_monthly!r}")
    months = math.ceil(horizon_days / MONTH_DAYS)
    ends = np.minimum(MONTH_DAYS * np.arange(1, months + 1), horizon_days)
    cumulative = np.vstack(
        [
            purchase_model.expected_purchases(days_to_units(end, unit_days), frequency, recency, T)
            for end in ends
        ]
    )
    per_month = np.diff(cumulative, axis=0, prepend=0.0)
    discount = (1.0 + discount_rate_monthly) ** -np.arange(1, months + 1)
    spend = spend_model.conditional_expected_spend(frequency, monetary_value)
    return (discount @ per_month) * spend * as_array(margin, "margin")
