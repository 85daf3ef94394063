"""Predictive columns of a run: purchase and spend models (CLV) and churn early warning.

Only bounded data reaches Python for fitting: the unique (x, t_x, T) rows, repeat buyers'
(x, m) pairs and a capped training sample for churn. Every customer is scored in streamed
batches and written back to the warehouse. A model that cannot be fitted on the data at hand
is skipped with its reason recorded; its columns stay null, never NaN.

Churn follows a time split (DESIGN/issue): train on features at as_of - 2W labelled by the
window (as_of - 2W, as_of - W], validate at as_of - W against two baselines (recency only, and
the purchase model's P(no purchase in W)), then refit at as_of - W and score at as_of.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from ibis.backends import BaseBackend

from tierwise.core.errors import DataError
from tierwise.core.settings import Settings
from tierwise.core.vocab import ChurnRisk
from tierwise.engine import build_profiles
from tierwise.engine.predictions import PREDICTION_SCHEMA, activity_trend, churn_labels
from tierwise.engine.staging import KEY
from tierwise.engine.summary import purchase_summary, unique_rows
from tierwise.models._base import PurchaseModel
from tierwise.models.betageo import BetaGeoModel, ModifiedBetaGeoModel
from tierwise.models.churn import ChurnModel, RecencyBaseline, evaluate
from tierwise.models.clv import discounted_clv
from tierwise.models.gammagamma import GammaGammaModel, SpendFrequencyCorrelationWarning
from tierwise.models.paretonbd import ParetoNBDModel

UNIT_DAYS = 7.0
"""Purchase models are fitted in weeks, as in the literature; days convert in one place here."""
PURCHASE_MODELS: dict[str, type[PurchaseModel]] = {
    "bgnbd": BetaGeoModel,
    "mbgnbd": ModifiedBetaGeoModel,
    "paretonbd": ParetoNBDModel,
}
BATCH = 100_000
MAX_TRAINING_ROWS = 200_000
ENGINE_FEATURES = (
    "recency_days", "tenure_days", "orders", "revenue", "avg_order_value",
    "median_interval_days", "recency_ratio", "r_score", "f_score", "m_score",
    "orders_last_90d", "orders_prev_90d", "complaints", "unresolved_complaints", "follow_ups",
    "last_csat", "mean_nps", "views", "browse_to_buy", "discount_share", "preferred_channel",
    "rfm_segment",
)  # fmt: skip
MODEL_FEATURES = ("model_p_alive", "model_p_no_purchase")
"""The purchase model's view, fitted at the same cutoff, stacked under the churn model."""
FEATURES = ENGINE_FEATURES + MODEL_FEATURES


@dataclass
class ModelReport:
    """What the run records about its models: parameters, fit quality, validation, skips."""

    purchase: dict[str, Any] | None = None
    spend: dict[str, Any] | None = None
    churn: dict[str, Any] | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def tier_by_clv(self) -> bool:
        return self.purchase is not None and self.spend is not None


@dataclass
class _Fitted:
    purchase: PurchaseModel | None = None
    spend: GammaGammaModel | None = None
    churn: ChurnModel | None = None


def predict(
    con: BaseBackend,
    tables: dict[str, ir.Table],
    profiles: ir.Table,
    *,
    as_of: date,
    settings: Settings,
    out_table: str,
    model_file: Path,
) -> ModelReport:
    """Write `out_table` (PREDICTION_SCHEMA, one row per customer with orders)."""
    report = ModelReport()
    fitted = _Fitted()
    orders = tables["orders"]
    summary = purchase_summary(orders, as_of=as_of, unit_days=UNIT_DAYS)
    _fit_value_models(summary, settings, report, fitted)
    _fit_churn(con, tables, as_of, settings, report, fitted)
    features = _features(profiles, orders, as_of)
    scored = features.join(summary, "customer_id")
    # Scores are spooled to Parquet: the connection cannot write while a read is streaming.
    spool = model_file.with_suffix(".predictions.parquet")
    spool.parent.mkdir(parents=True, exist_ok=True)
    try:
        with pq.ParquetWriter(spool, PREDICTION_SCHEMA.to_pyarrow()) as writer:
            for batch in scored.to_pyarrow_batches(chunk_size=BATCH):
                writer.write_table(_score(batch.to_pandas(), settings, fitted))
        con.create_table(out_table, con.read_parquet(spool), overwrite=True)
    finally:
        spool.unlink(missing_ok=True)
    _save(model_file, fitted, report)
    return report


def _fit_value_models(
    summary: ir.Table, settings: Settings, report: ModelReport, fitted: _Fitted
) -> None:
    name = settings.models.purchase_model
    rows = unique_rows(summary).to_pandas()
    try:
        model = PURCHASE_MODELS[name]().fit(
            rows.frequency, rows.recency, rows["T"], weights=rows.weight
        )
    except DataError as e:
        report.skipped["purchase"] = str(e)
        return
    fitted.purchase = model
    report.purchase = {
        "model": name,
        "params": {k: float(v) for k, v in model.params_.items()},
        "log_likelihood": float(model.log_likelihood_),
        "unique_rows": len(rows),
        "customers": int(rows.weight.sum()),
        "unit_days": UNIT_DAYS,
    }
    repeat = summary.filter((summary.frequency > 0) & (summary.monetary_value > 0))
    spend = repeat.select("frequency", "monetary_value").to_pandas()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SpendFrequencyCorrelationWarning)
            gg = GammaGammaModel().fit(spend.frequency, spend.monetary_value)
    except DataError as e:
        report.skipped["spend"] = str(e)
        return
    fitted.spend = gg
    report.spend = {
        "model": "gammagamma",
        "params": {k: float(v) for k, v in gg.params_.items()},
        "repeat_buyers": len(spend),
        "warnings": [str(w.message) for w in caught],
    }


def _features(profiles: ir.Table, orders: ir.Table, as_of: date) -> ir.Table:
    """Churn features of customers with orders, as of `as_of`."""
    p = profiles.filter(profiles.orders > 0)
    trend = activity_trend(orders, as_of=as_of).rename({"_tid": "customer_id"})
    t = p.left_join(trend, p.customer_id == trend._tid).drop("_tid")
    t = t.mutate(
        recency_ratio=ibis.ifelse(
            t.median_interval_days > 0, t.recency_days / t.median_interval_days, ibis.null()
        ).cast("float64"),
        orders_last_90d=ibis.coalesce(t.orders_last_90d, 0),
        orders_prev_90d=ibis.coalesce(t.orders_prev_90d, 0),
    )
    return t.select("customer_id", "gross_margin", *ENGINE_FEATURES)


def _training_frame(tables: dict[str, ir.Table], cutoff: date, settings: Settings) -> pd.DataFrame:
    """Features at `cutoff` with churn labels; above MAX_TRAINING_ROWS, of a hash sample.

    The sample is drawn from the inputs, so only its customers' profiles are computed (at 5M
    customers the full profiles at a cutoff ran out of DuckDB's 2 GB limit). Facts of a sampled
    customer are exactly theirs; the quintile scores rank them among the sample, which has the
    same uniform score distribution as the whole."""
    orders = tables["orders"]
    labels = churn_labels(orders, cutoff=cutoff, window_days=settings.models.churn_window_days)
    n = int(labels.count().execute())
    if n > MAX_TRAINING_ROWS:
        stride = ibis.literal(n // MAX_TRAINING_ROWS + 1)
        tables = {
            name: t.filter(t[KEY].hash() % stride == 0) if KEY in t.columns else t
            for name, t in tables.items()
        }
        labels = labels.filter(labels[KEY].hash() % stride == 0)
    prof = build_profiles(
        tables, as_of=cutoff, scoring=settings.scoring, lifecycle=settings.lifecycle
    )
    frame = _features(prof, tables["orders"], cutoff).join(labels, KEY).to_pandas()
    alive, none = _purchase_probabilities(orders, frame.customer_id, cutoff, settings)
    return frame.assign(model_p_alive=alive, model_p_no_purchase=none)


def _fit_churn(
    con: BaseBackend,
    tables: dict[str, ir.Table],
    as_of: date,
    settings: Settings,
    report: ModelReport,
    fitted: _Fitted,
) -> None:
    w = settings.models.churn_window_days
    train_at, validate_at = as_of - timedelta(days=2 * w), as_of - timedelta(days=w)
    try:
        train = _training_frame(tables, train_at, settings)
        valid = _training_frame(tables, validate_at, settings)
        x_cols = list(FEATURES)
        model = ChurnModel(random_state=0).fit(train[x_cols], train.churned)
        baseline = RecencyBaseline().fit(train[x_cols], train.churned)
        scores = {
            "lightgbm": model.predict_proba(valid[x_cols]),
            "recency only": baseline.predict_proba(valid[x_cols]),
        }
        if valid.model_p_no_purchase.notna().all():
            name = settings.models.purchase_model
            scores[f"{name} p(no purchase)"] = valid.model_p_no_purchase.to_numpy()
        metrics = evaluate(valid.churned.to_numpy(), scores)
        fitted.churn = ChurnModel(random_state=0).fit(valid[x_cols], valid.churned)
    except DataError as e:
        report.skipped["churn"] = f"{e} (churn_probability falls back to the purchase model)"
        return
    report.churn = {
        "model": "lightgbm",
        "trained_at": train_at.isoformat(),
        "validated_at": validate_at.isoformat(),
        "window_days": w,
        "train_rows": len(train),
        "validation_rows": len(valid),
        "validation": _json_metrics(metrics),
    }


def _purchase_probabilities(
    orders: ir.Table, customers: pd.Series, cutoff: date, settings: Settings
) -> tuple[np.ndarray, np.ndarray]:
    """P(alive) and P(no purchase in the churn window) from the purchase model fitted on data
    up to `cutoff`, for `customers`; NaN when the model cannot be fitted there."""
    summary = purchase_summary(orders, as_of=cutoff, unit_days=UNIT_DAYS)
    rows = unique_rows(summary).to_pandas()
    missing = np.full(len(customers), np.nan)
    try:
        model = PURCHASE_MODELS[settings.models.purchase_model]().fit(
            rows.frequency, rows.recency, rows["T"], weights=rows.weight
        )
    except DataError:
        return missing, missing
    per = summary.to_pandas().set_index("customer_id").reindex(customers)
    t = settings.models.churn_window_days / UNIT_DAYS
    return (
        model.p_alive(per.frequency, per.recency, per["T"]),
        model.p_no_purchase(t, per.frequency, per.recency, per["T"]),
    )


def _json_metrics(metrics: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for name, row in metrics.iterrows():
        out[str(name)] = {str(k): (None if pd.isna(v) else float(v)) for k, v in row.items()}
    return out


def _score(frame: pd.DataFrame, settings: Settings, fitted: _Fitted) -> pa.Table:
    m = settings.models
    n = len(frame)
    nulls = np.full(n, np.nan)
    predicted, alive, spend, clv, p_none = nulls, nulls, nulls, nulls, nulls
    if fitted.purchase is not None:
        x, tx, age = frame.frequency, frame.recency, frame["T"]
        horizon = m.horizon_days / UNIT_DAYS
        predicted = fitted.purchase.expected_purchases(horizon, x, tx, age)
        alive = fitted.purchase.p_alive(x, tx, age)
        p_none = fitted.purchase.p_no_purchase(m.churn_window_days / UNIT_DAYS, x, tx, age)
        if fitted.spend is not None:
            spend = fitted.spend.conditional_expected_spend(x, frame.monetary_value)
            clv = discounted_clv(
                fitted.purchase, fitted.spend, x, tx, age, frame.monetary_value,
                horizon_days=m.horizon_days, unit_days=UNIT_DAYS,
                discount_rate_monthly=m.discount_rate_monthly, margin=_margin(frame, settings),
            )  # fmt: skip
    churn = p_none
    reasons: list[str | None] = [None] * n
    if fitted.churn is not None and n:
        x_frame = frame.assign(model_p_alive=alive, model_p_no_purchase=p_none)[list(FEATURES)]
        churn = fitted.churn.predict_proba(x_frame)
        flagged = np.flatnonzero(churn >= m.churn_risk_cuts[0])
        if len(flagged):
            texts = fitted.churn.reasons(x_frame.iloc[flagged], top=3)
            for i, words in zip(flagged, texts, strict=True):
                reasons[i] = "; ".join(words)
    return pa.table(
        {
            "customer_id": pa.array(frame.customer_id, pa.string()),
            "predicted_purchases": _clean(predicted),
            "p_alive": _clean(alive),
            "expected_avg_spend": _clean(spend),
            "clv": _clean(clv),
            "churn_probability": _clean(churn),
            "churn_risk": pa.array(_risk(churn, m.churn_risk_cuts), pa.string()),
            "churn_reasons": pa.array(reasons, pa.string()),
        }
    )


def _margin(frame: pd.DataFrame, settings: Settings) -> np.ndarray:
    """The customer's own gross margin rate where revenue is positive, else the configured one."""
    revenue = frame.revenue.to_numpy(dtype=float)
    own = np.divide(
        frame.gross_margin.to_numpy(dtype=float), revenue,
        out=np.full(len(frame), np.nan), where=revenue > 0,
    )  # fmt: skip
    return np.where(np.isfinite(own), np.clip(own, 0.0, 1.0), settings.scoring.margin_rate)


def _clean(values: Any) -> pa.Array:
    """Floats with every non-finite value as null: an export never shows NaN."""
    arr = np.asarray(values, dtype=float)
    return pa.array(arr, pa.float64(), mask=~np.isfinite(arr))


def _risk(prob: Any, cuts: tuple[float, float]) -> list[str | None]:
    arr = np.asarray(prob, dtype=float)
    labels = np.where(
        arr < cuts[0],
        ChurnRisk.LOW.value,
        np.where(arr < cuts[1], ChurnRisk.MEDIUM.value, ChurnRisk.HIGH.value),
    )
    return [str(v) if np.isfinite(p) else None for v, p in zip(labels, arr, strict=True)]


def _save(path: Path, fitted: _Fitted, report: ModelReport) -> None:
    """Models with the versions that made them, so a later session can load and check them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    versions = {p: metadata.version(p) for p in ("tierwise", "numpy", "scipy", "lightgbm")}
    payload = {"versions": versions, "models": fitted, "report": report}
    tmp = path.with_suffix(".partial")
    with tmp.open("wb") as f:
        pickle.dump(payload, f)
    tmp.replace(path)
