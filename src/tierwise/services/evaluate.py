"""Holdout evaluation of the purchase models: fit on a calibration period, predict the next one.

The model is fitted on the engine's unique (x, t_x, T) rows up to `calibration_end`; each
calibration customer's expected repeat purchase days in (calibration_end, holdout_end] are then
compared with the distinct purchase days they actually made, and with a naive baseline that
repeats at the customer's historical rate x / T. Per-customer rows are streamed in batches and
folded into running sums, so memory stays bounded however many customers there are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
from ibis.backends import BaseBackend
from numpy.typing import NDArray

from tierwise.core.errors import DataError, InvalidInputError
from tierwise.engine.summary import purchase_summary, unique_rows
from tierwise.models._base import PurchaseModel
from tierwise.models.betageo import BetaGeoModel, ModifiedBetaGeoModel
from tierwise.models.paretonbd import ParetoNBDModel
from tierwise.models.units import check_unit_days

MODELS: dict[str, tuple[str, type[PurchaseModel]]] = {
    "bgnbd": ("BG/NBD", BetaGeoModel),
    "paretonbd": ("Pareto/NBD", ParetoNBDModel),
    "mbgnbd": ("MBG/NBD", ModifiedBetaGeoModel),
}
"""Model names accepted by `evaluate_holdout` (as in `ModelSettings.purchase_model`)."""

TOP_BUCKET = 7
"""Calibration repeat counts from here on share the last bucket (the "7+" of the classic chart)."""

BATCH_ROWS = 50_000

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Metrics:
    """How one predictor did against the actual holdout repeat purchases."""

    predicted: float
    """Total predicted repeat purchases over all calibration customers."""
    relative_error: float | None
    """(predicted - actual) / actual; None when nobody repeated in the holdout."""
    mae: float
    """Mean absolute error per customer."""
    correlation: float | None
    """Pearson correlation of predicted and actual per customer; None when either is constant."""


@dataclass(frozen=True)
class FrequencyBucket:
    """A point of the conditional-expectation chart: the customers with `label` calibration
    repeats and their mean actual, model and baseline holdout purchases (None when empty)."""

    label: str
    customers: int
    actual: float | None
    model: float | None
    baseline: float | None


@dataclass(frozen=True)
class HoldoutReport:
    """Everything the CLI table and the dashboard chart show about one holdout evaluation."""

    model: str
    model_label: str
    calibration_end: date
    holdout_end: date
    unit_days: float
    horizon: float
    """Holdout length in model units (days / unit_days)."""
    customers: int
    """The calibration cohort: customers with an order on or before calibration_end."""
    actual: int
    """Total repeat purchase days the cohort made in the holdout."""
    model_metrics: Metrics
    baseline_metrics: Metrics
    buckets: tuple[FrequencyBucket, ...]
    params: dict[str, float]
    log_likelihood: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: dates as ISO strings, missing values as None."""
        out = asdict(self)
        out["calibration_end"] = self.calibration_end.isoformat()
        out["holdout_end"] = self.holdout_end.isoformat()
        out["buckets"] = list(out["buckets"])
        return out


class _Accumulator:
    """Running error sums and co-moments of one predictor against the actual counts.

    Batches merge with Chan et al.'s pairwise update, so the correlation is as exact as if
    every customer were in memory at once, without the cancellation of raw sums of squares.
    """

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.abs_error = 0.0
        self.mean_actual = 0.0
        self.mean_predicted = 0.0
        self.m2_actual = 0.0
        self.m2_predicted = 0.0
        self.co_moment = 0.0

    def add(self, actual: Floats, predicted: Floats) -> None:
        m = actual.size
        if m == 0:
            return
        self.total += float(predicted.sum())
        self.abs_error += float(np.abs(predicted - actual).sum())
        mean_a, mean_p = float(actual.mean()), float(predicted.mean())
        da, dp = actual - mean_a, predicted - mean_p
        n = self.n + m
        delta_a, delta_p = mean_a - self.mean_actual, mean_p - self.mean_predicted
        share = self.n * m / n
        self.m2_actual += float(da @ da) + delta_a**2 * share
        self.m2_predicted += float(dp @ dp) + delta_p**2 * share
        self.co_moment += float(da @ dp) + delta_a * delta_p * share
        self.mean_actual += delta_a * m / n
        self.mean_predicted += delta_p * m / n
        self.n = n

    def metrics(self, actual_total: int) -> Metrics:
        spread = self.m2_actual * self.m2_predicted
        return Metrics(
            predicted=self.total,
            relative_error=(self.total - actual_total) / actual_total if actual_total else None,
            mae=self.abs_error / self.n,
            correlation=float(self.co_moment / np.sqrt(spread)) if spread > 0 else None,
        )


def evaluate_holdout(
    con: BaseBackend,
    *,
    calibration_end: date,
    holdout_end: date | None = None,
    model: str = "bgnbd",
    unit_days: float = 7.0,
    batch_rows: int = BATCH_ROWS,
) -> HoldoutReport:
    """Fit `model` on orders up to `calibration_end` (inclusive) and score it on the holdout
    (calibration_end, holdout_end], default up to the latest order, against the naive baseline.

    Customers first seen in the holdout are not in the calibration cohort and are left out.
    Times are in model units of `unit_days` days; customers are scored `batch_rows` at a time.
    """
    if model not in MODELS:
        raise InvalidInputError(f"unknown purchase model {model!r}; choose one of {list(MODELS)}")
    unit_days = check_unit_days(unit_days)
    if "orders" not in con.list_tables():
        raise DataError("no orders in the warehouse yet: run `tierwise ingest` first")
    orders = con.table("orders")
    holdout_end = _check_periods(orders, calibration_end, holdout_end)
    horizon = (holdout_end - calibration_end).days / unit_days

    label, model_class = MODELS[model]
    summary = purchase_summary(orders, as_of=calibration_end, unit_days=unit_days)
    rows = unique_rows(summary).to_pyarrow()
    fitted = model_class().fit(
        rows["frequency"].to_numpy(),
        rows["recency"].to_numpy(),
        rows["T"].to_numpy(),
        weights=rows["weight"].to_numpy(),
    )

    model_acc, baseline_acc = _Accumulator(), _Accumulator()
    buckets = TOP_BUCKET + 1
    counts = np.zeros(buckets, dtype=np.int64)
    sums = {k: np.zeros(buckets) for k in ("actual", "model", "baseline")}
    actual_total = 0
    scored = holdout_summary(
        orders, calibration_end=calibration_end, holdout_end=holdout_end, unit_days=unit_days
    )
    for batch in scored.select("frequency", "recency", "T", "actual").to_pyarrow_batches(
        chunk_size=batch_rows
    ):
        x = batch["frequency"].to_numpy().astype(np.float64)
        age = batch["T"].to_numpy()
        actual = batch["actual"].to_numpy().astype(np.float64)
        predicted = fitted.expected_purchases(horizon, x, batch["recency"].to_numpy(), age)
        # a customer whose first purchase is on calibration_end has no history rate: x = T = 0
        baseline = np.divide(x * horizon, age, out=np.zeros_like(x), where=age > 0)
        model_acc.add(actual, predicted)
        baseline_acc.add(actual, baseline)
        actual_total += int(actual.sum())
        bucket = np.minimum(x, TOP_BUCKET).astype(np.int64)
        counts += np.bincount(bucket, minlength=buckets)
        for key, values in (("actual", actual), ("model", predicted), ("baseline", baseline)):
            sums[key] += np.bincount(bucket, weights=values, minlength=buckets)

    return HoldoutReport(
        model=model,
        model_label=label,
        calibration_end=calibration_end,
        holdout_end=holdout_end,
        unit_days=unit_days,
        horizon=horizon,
        customers=model_acc.n,
        actual=actual_total,
        model_metrics=model_acc.metrics(actual_total),
        baseline_metrics=baseline_acc.metrics(actual_total),
        buckets=tuple(
            FrequencyBucket(
                label=f"{k}+" if k == TOP_BUCKET else str(k),
                customers=int(counts[k]),
                actual=_mean(sums["actual"][k], counts[k]),
                model=_mean(sums["model"][k], counts[k]),
                baseline=_mean(sums["baseline"][k], counts[k]),
            )
            for k in range(buckets)
        ),
        params=dict(fitted.params_),
        log_likelihood=float(fitted.log_likelihood_),
    )


def _check_periods(orders: ir.Table, calibration_end: date, holdout_end: date | None) -> date:
    """The holdout end to use, after checking both periods hold orders."""
    day = orders.ordered_at.cast("date")
    bounds = orders.aggregate(first=day.min(), last=day.max()).to_pyarrow().to_pylist()[0]
    first, last = _as_date(bounds["first"]), _as_date(bounds["last"])
    if first is None or last is None:
        raise DataError("the orders table is empty: nothing to evaluate")
    if calibration_end < first:
        raise DataError(
            f"calibration_end {calibration_end} is before the first order ({first}): "
            "nothing to fit the model on"
        )
    if last <= calibration_end:
        raise DataError(
            f"no orders after calibration_end {calibration_end} (the latest is on {last}): "
            "nothing to compare the predictions with"
        )
    if holdout_end is None:
        return last
    if holdout_end <= calibration_end:
        raise DataError(
            f"holdout_end {holdout_end} must be after calibration_end {calibration_end}"
        )
    in_holdout = orders.filter(
        (day > ibis.date(calibration_end)) & (day <= ibis.date(holdout_end))
    ).count()
    if not in_holdout.to_pyarrow().as_py():
        raise DataError(
            f"no orders between calibration_end {calibration_end} and holdout_end {holdout_end}: "
            "nothing to compare the predictions with"
        )
    return holdout_end


def holdout_summary(
    orders: ir.Table, /, *, calibration_end: date, holdout_end: date, unit_days: float
) -> ir.Table:
    """The calibration cohort's summary (customer_id, frequency, recency, T) with `actual` =
    distinct purchase days in (calibration_end, holdout_end], 0 for customers who did not return.
    """
    summary = purchase_summary(orders, as_of=calibration_end, unit_days=unit_days)
    day = orders.ordered_at.cast("date")
    window = orders.filter((day > ibis.date(calibration_end)) & (day <= ibis.date(holdout_end)))
    holdout = window.group_by(key=window.customer_id).aggregate(
        holdout_days=window.ordered_at.cast("date").nunique()
    )
    joined = summary.left_join(holdout, summary.customer_id == holdout.key)
    return joined.select(
        "customer_id",
        "frequency",
        "recency",
        "T",
        actual=joined.holdout_days.fill_null(0).cast("int64"),
    )


def _as_date(value: date | None) -> date | None:
    """Backends hand a date column's min/max back as a date or a datetime."""
    return value.date() if isinstance(value, datetime) else value


def _mean(total: float, n: int) -> float | None:
    return float(total / n) if n else None


def format_report(report: HoldoutReport) -> list[tuple[str, ...]]:
    """Rows for the CLI table; the first row is the header (measure, actual, model, baseline)."""
    m, b = report.model_metrics, report.baseline_metrics

    def num(value: float | None, digits: int = 2) -> str:
        return "–" if value is None else f"{value:,.{digits}f}"

    def pct(value: float | None) -> str:
        return "–" if value is None else f"{value:+.1%}"

    params = ", ".join(f"{k} {v:.3f}" for k, v in report.params.items())
    rows: list[tuple[str, ...]] = [
        ("measure", "actual", report.model_label, "naive baseline"),
        ("customers", f"{report.customers:,}", "", ""),
        ("repeat purchases", f"{report.actual:,}", num(m.predicted, 1), num(b.predicted, 1)),
        ("relative error", "", pct(m.relative_error), pct(b.relative_error)),
        ("MAE per customer", "", num(m.mae, 3), num(b.mae, 3)),
        ("correlation", "", num(m.correlation, 3), num(b.correlation, 3)),
    ]
    rows += [
        (
            f"mean, x = {k.label} ({k.customers:,})",
            num(k.actual),
            num(k.model),
            num(k.baseline),
        )
        for k in report.buckets
    ]
    rows += [
        ("parameters", "", params, ""),
        ("log-likelihood", "", num(report.log_likelihood, 1), ""),
    ]
    return rows
