"""Time units: the one place where day counts become model units.

Models are unit-free: their parameters are in whatever unit the summaries were expressed in
(`unit_days` = 1 for days, 7 for weeks). Horizons given in days pass through here.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tierwise.core.errors import DataError


def check_unit_days(unit_days: float) -> float:
    """A positive, finite number of days per model unit."""
    value = float(unit_days)
    if not np.isfinite(value) or value <= 0:
        raise DataError(f"unit_days must be a positive number of days, got {unit_days!r}")
    return value


def days_to_units(days: ArrayLike, unit_days: float) -> NDArray[np.float64]:
    """Convert day counts (scalar or array) into model units."""
    return np.asarray(days, dtype=np.float64) / check_unit_days(unit_days)
