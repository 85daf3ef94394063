"""Publishing a run's profiles to the store, where the API and dashboard read them.

Rows are loaded in batches, each committed on its own so a large publish never holds the write
lock for long, under a run marked `loading` that readers ignore. One short transaction at the end
makes the run current; readers that resolve "the current run" inside one statement therefore see
the old run or the new one, never a mix. The run current before is kept, so a reader that picked
it just before the switch can finish; older runs lose their rows and are marked retired.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Select, delete, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from tierwise.core.errors import ConflictError
from tierwise.store.audit import audit
from tierwise.store.models import (
    Base,
    CohortRetention,
    PublishedProfile,
    PublishedRun,
    RunStatus,
    SegmentMigration,
    utcnow,
)

DEFAULT_BATCH = 10_000
_SWITCH_LOCK = 727_103
"""PostgreSQL advisory lock key serialising run switches."""

_TRUE = frozenset({"true", "t", "yes", "y", "1", "是"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "否"})


def _as_bool(value: Any) -> bool:
    """Strict: consent must never become True because a source wrote "false" as text."""
    if isinstance(value, bool | int) and value in (0, 1):
        return bool(value)
    text_value = str(value).strip().lower()
    if text_value in _TRUE or text_value in _FALSE:
        return text_value in _TRUE
    raise ValueError(f"{value!r} is not a yes/no value")


TYPED_COLUMNS: dict[str, Callable[[Any], Any]] = {
    "rfm_segment": str,
    "rfm_class8": str,
    "abc_class": str,
    "value_tier": str,
    "lifecycle_stage": str,
    "churn_risk": str,
    "account_manager": str,
    "r_score": int,
    "f_score": int,
    "revenue": float,
    "orders": int,
    "recency_days": int,
    "clv": float,
    "churn_probability": float,
    "profit": float,
    "name": str,
    "phone": str,
    "email": str,
    "consent_marketing": _as_bool,
}
"""Profile fields copied into typed columns; absent ones are stored as NULL."""

_RUN_TABLES = (PublishedProfile, SegmentMigration, CohortRetention)


@dataclass(frozen=True)
class PublishResult:
    run_id: str
    customers: int
    previous: str | None
    retired: tuple[str, ...]


def _json_value(value: Any) -> Any:
    """A JSON-safe copy: NaN becomes null, dates ISO text, numpy scalars Python numbers."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _json_value(float(value))
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if callable(getattr(value, "item", None)):
        return _json_value(value.item())
    raise TypeError(f"profile value {value!r} of type {type(value).__name__} is not storable")


def _profile_row(run_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The store row of one JSON-ready profile document (see `_documents`)."""
    customer_id = doc.get("customer_id")
    if customer_id is None or customer_id == "":
        raise ValueError(f"profile row without customer_id: {sorted(doc)[:10]}")
    out: dict[str, Any] = {"run_id": run_id, "customer_id": str(customer_id), "profile": doc}
    for column, convert in TYPED_COLUMNS.items():
        value = doc.get(column)
        out[column] = None if value is None else convert(value)
    return out


def _json_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with every column holding JSON-safe values only, made column by column (a
    million profiles of ~75 fields): NaN and infinities null, dates and times ISO text."""
    columns = []
    for column in batch.columns:
        kind = column.type
        if pa.types.is_floating(kind):
            column = pc.if_else(pc.is_finite(column), column, pa.scalar(None, kind))
        elif pa.types.is_decimal(kind):
            column = column.cast(pa.float64())
        elif not (
            pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
            or pa.types.is_integer(kind)
            or pa.types.is_boolean(kind)
            or pa.types.is_null(kind)
        ):  # dates, times, lists: value by value, as a single document would be
            column = pa.array([_json_value(v) for v in column.to_pylist()])
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _documents(rows: Iterable[Mapping[str, Any] | pa.RecordBatch]) -> Iterator[dict[str, Any]]:
    for item in rows:
        if isinstance(item, Mapping):
            yield {str(k): _json_value(v) for k, v in item.items()}
        else:
            yield from _json_ready(item).to_pylist()


def _insert_batches(
    factory: sessionmaker[Session], model: type[Base], rows: Iterator[dict[str, Any]], size: int
) -> int:
    total = 0
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            total += _insert(factory, model, batch)
            batch = []
    if batch:
        total += _insert(factory, model, batch)
    return total


def _insert(factory: sessionmaker[Session], model: type[Base], batch: list[dict[str, Any]]) -> int:
    """One executemany of a Core insert (no ORM objects), committed on its own."""
    with factory.begin() as session:
        session.connection().execute(insert(model), batch)
    return len(batch)


def _delete_run_rows(session: Session, run_ids: Iterable[str]) -> None:
    ids = list(run_ids)
    for model in _RUN_TABLES:
        session.execute(delete(model).where(model.run_id.in_(ids)))


def _start(factory: sessionmaker[Session], run_id: str, as_of: date) -> None:
    with factory.begin() as session:
        run = session.get(PublishedRun, run_id)
        if run is not None and run.status != RunStatus.LOADING:
            raise ConflictError(f"run {run_id} was already published; runs are never republished")
        if run is not None:  # an earlier attempt died mid-load: start it over
            _delete_run_rows(session, [run_id])
            session.delete(run)
            session.flush()
        session.add(
            PublishedRun(
                run_id=run_id, as_of=as_of, status=RunStatus.LOADING.value, is_current=False
            )
        )


def _abandon(factory: sessionmaker[Session], run_id: str) -> None:
    with factory.begin() as session:
        _delete_run_rows(session, [run_id])
        session.execute(
            delete(PublishedRun).where(
                PublishedRun.run_id == run_id, PublishedRun.status == RunStatus.LOADING.value
            )
        )


def _column_value(value: Any) -> Any:
    """Dates stay dates for Date columns; numbers and JSON documents as in `_json_value`."""
    if isinstance(value, date):
        return value
    return _json_value(value)


def _extras(run_id: str, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{**{k: _column_value(v) for k, v in r.items()}, "run_id": run_id} for r in rows]


def _switch(
    session: Session,
    run_id: str,
    customers: int,
    extras: list[tuple[type[Base], list[dict[str, Any]]]],
    dashboard: Mapping[str, Any] | None,
    actor: str,
) -> str | None:
    """Make `run_id` current in the caller's transaction; returns the run current before."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SWITCH_LOCK})
    for model, rows in extras:
        if rows:
            session.connection().execute(insert(model), rows)
    previous = session.scalar(select(PublishedRun.run_id).where(PublishedRun.is_current))
    session.execute(update(PublishedRun).where(PublishedRun.is_current).values(is_current=False))
    session.execute(
        update(PublishedRun)
        .where(PublishedRun.run_id == run_id)
        .values(
            status=RunStatus.PUBLISHED.value,
            is_current=True,
            customers=customers,
            published_at=utcnow(),
            dashboard=_json_value(dashboard) if dashboard is not None else None,
        )
    )
    audit(session, actor, "publish", run_id, customers=customers, previous=previous)
    return previous


def _retire(factory: sessionmaker[Session], keep: set[str]) -> tuple[str, ...]:
    with factory.begin() as session:
        old = session.scalars(
            select(PublishedRun.run_id).where(
                PublishedRun.status == RunStatus.PUBLISHED.value,
                PublishedRun.is_current.is_(False),
                PublishedRun.run_id.not_in(keep),
            )
        ).all()
        if old:
            _delete_run_rows(session, old)
            session.execute(
                update(PublishedRun)
                .where(PublishedRun.run_id.in_(old))
                .values(status=RunStatus.RETIRED.value)
            )
    return tuple(old)


def publish_run(
    factory: sessionmaker[Session],
    run_id: str,
    as_of: date,
    rows: Iterable[Mapping[str, Any] | pa.RecordBatch],
    *,
    migrations: Iterable[Mapping[str, Any]] = (),
    cohorts: Iterable[Mapping[str, Any]] = (),
    dashboard: Mapping[str, Any] | None = None,
    batch_size: int = DEFAULT_BATCH,
    actor: str = "system",
) -> PublishResult:
    """Load a run's profiles (dicts or pyarrow batches) and make it the current run.

    On any failure, including one raised by `rows` itself, the partial load is removed and the
    current run stays as it was. Migrations, cohorts and the `dashboard` document are small
    and are written in the switching transaction, so they always belong to the current run.
    """
    _start(factory, run_id, as_of)
    try:
        profiles = (_profile_row(run_id, doc) for doc in _documents(rows))
        customers = _insert_batches(factory, PublishedProfile, profiles, batch_size)
        extras = [
            (SegmentMigration, _extras(run_id, migrations)),
            (CohortRetention, _extras(run_id, cohorts)),
        ]
        with factory.begin() as session:
            previous = _switch(session, run_id, customers, extras, dashboard, actor)
    except BaseException:
        _abandon(factory, run_id)
        raise
    retired = _retire(factory, {run_id} | ({previous} if previous else set()))
    return PublishResult(run_id, customers, previous, retired)


def store_dashboard(
    session: Session, run_id: str, document: Mapping[str, Any], *, only_if_missing: bool = False
) -> None:
    """Replace a published run's dashboard document (after an erasure changed its customers);
    `only_if_missing` never overwrites one, so a late backfill cannot undo an erasure's."""
    query = update(PublishedRun).where(PublishedRun.run_id == run_id)
    if only_if_missing:
        query = query.where(PublishedRun.dashboard.is_(None))
    session.execute(query.values(dashboard=_json_value(document)))


def current_run(session: Session) -> PublishedRun | None:
    return session.scalar(select(PublishedRun).where(PublishedRun.is_current))


def current_profiles() -> Select[PublishedProfile]:
    """Profiles of the current run, resolved in the same statement: add filters, order, page."""
    return select(PublishedProfile).join(
        PublishedRun,
        (PublishedRun.run_id == PublishedProfile.run_id) & PublishedRun.is_current,
    )
