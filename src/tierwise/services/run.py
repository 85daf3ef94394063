"""`tierwise run`: compute every customer mart into a new snapshot, then switch `current`.

A run writes `profiles_<run_id>` (and its migration and cohort tables) next to the existing
snapshots, checks the contracts, and only then moves the `_current` pointer in one
transaction. A failed or killed run leaves the previous snapshot current and readable; the
next run marks it `interrupted` and drops its partial tables. One run at a time (lock file).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
from ibis.backends import BaseBackend

from tierwise.core.contracts import TABLES
from tierwise.core.errors import ContractError, DataError, TierwiseError
from tierwise.core.settings import Settings
from tierwise.core.vocab import AbcClass, Class8, Segment, Stage, ValueTier
from tierwise.engine import build_profiles, cohort_retention, latest_order_date, migration_matrix
from tierwise.engine.predictions import PREDICTION_SCHEMA, attach_predictions
from tierwise.services import warehouse as wh
from tierwise.services.ingest import new_id
from tierwise.services.locking import warehouse_lock
from tierwise.services.predict import ModelReport, predict
from tierwise.services.recommend import attach_behaviour


class PublishError(TierwiseError):
    """The warehouse run succeeded; the store did not take it."""


RUNS = "_runs"
CURRENT = "_current"
RUNS_SCHEMA = ibis.schema(
    {
        "run_id": "string",
        "as_of": "date",
        "config_hash": "string",
        "status": "string",  # running | succeeded | failed | interrupted
        "started_at": "timestamp",
        "finished_at": "timestamp",
        "customers": "int64",
        "stage_seconds": "string",
        "models": "string",
        "error": "string",
    }
)
CURRENT_SCHEMA = ibis.schema({"run_id": "string", "as_of": "date", "switched_at": "timestamp"})
SNAPSHOT_KINDS = ("profiles", "migration", "cohorts", "base", "predictions", "recs")
"""Tables a run writes; `base`, `predictions` and `recs` are intermediate, gone on success."""

StageCallback = Callable[[str], None]


@dataclass
class RunResult:
    run_id: str
    as_of: date
    customers: int
    stage_seconds: dict[str, float] = field(default_factory=dict)
    previous_run_id: str | None = None
    models: ModelReport = field(default_factory=ModelReport)


def snapshot_table(kind: str, run_id: str) -> str:
    return f"{kind}_{run_id}"


def config_hash(settings: Settings) -> str:
    relevant = settings.model_dump(mode="json", include={"scoring", "lifecycle", "models"})
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def run(
    settings: Settings, *, as_of: date | None = None, on_stage: StageCallback | None = None
) -> RunResult:
    """Compute a snapshot, make it current, then publish it to the operational store."""
    with warehouse_lock(settings.resolve(settings.warehouse.path), "run"):
        return run_holding_lock(settings, as_of=as_of, on_stage=on_stage)


def run_holding_lock(
    settings: Settings, *, as_of: date | None = None, on_stage: StageCallback | None = None
) -> RunResult:
    """`run` for a caller that already holds the warehouse lock, e.g. one that took it before
    handing the run to a background thread, so a busy warehouse is refused up front."""
    from tierwise.services.publish import publish

    con = wh.connect(settings)
    ensure_run_tables(con)
    _recover_interrupted(con)
    result = _run_locked(con, settings, as_of, on_stage)
    if on_stage:
        on_stage("publish")
    t0 = time.perf_counter()
    try:
        publish(settings, con, result.run_id, result.as_of)
    except Exception as e:
        raise PublishError(
            f"run {result.run_id} is current in the warehouse, but publishing it to the "
            f"store failed ({e}); fix the store and run `tierwise publish`"
        ) from e
    result.stage_seconds["publish"] = round(time.perf_counter() - t0, 3)
    if settings.membership.enabled:
        from tierwise.services.membership import evaluate_after_run

        if on_stage:
            on_stage("membership")
        t0 = time.perf_counter()
        try:
            evaluate_after_run(settings, con, result.run_id, result.as_of)
        except Exception as e:
            raise PublishError(
                f"run {result.run_id} is published, but evaluating membership levels failed "
                f"({e}); fix it and run `tierwise membership evaluate`"
            ) from e
        result.stage_seconds["membership"] = round(time.perf_counter() - t0, 3)
    return result


def republish(settings: Settings, run_id: str | None = None) -> str:
    """Publish the current (or a given) successful run again, e.g. after a store outage."""
    from tierwise.services.export import resolve_run
    from tierwise.services.publish import publish

    with warehouse_lock(settings.resolve(settings.warehouse.path), "publish"):
        con = wh.connect(settings)
        run_id = resolve_run(con, run_id=run_id, as_of=None)
        runs = con.table(RUNS)
        as_of = runs.filter(runs.run_id == run_id).as_of.execute().iloc[0]
        publish(settings, con, run_id, as_of)
        return run_id


def ensure_run_tables(con: BaseBackend) -> None:
    """Create the run tables, or bring an older `_runs` up to RUNS_SCHEMA (new columns null)."""
    existing = set(con.list_tables())
    if RUNS not in existing:
        con.create_table(RUNS, schema=RUNS_SCHEMA)
    elif con.table(RUNS).schema() != RUNS_SCHEMA:
        rows = con.table(RUNS).to_pyarrow().to_pylist()
        data = {name: [row.get(name) for row in rows] for name in RUNS_SCHEMA.names}
        con.create_table(RUNS, ibis.memtable(data, schema=RUNS_SCHEMA), overwrite=True)
    if CURRENT not in existing:
        con.create_table(CURRENT, schema=CURRENT_SCHEMA)


def _recover_interrupted(con: BaseBackend) -> None:
    """Runs left `running` were killed (we hold the lock): drop their tables, mark them."""
    runs = con.table(RUNS)
    stale = runs.filter(runs.status == "running").run_id.to_pyarrow().to_pylist()
    for run_id in stale:
        for kind in SNAPSHOT_KINDS:
            con.drop_table(snapshot_table(kind, run_id), force=True)
        _set_status(con, run_id, "interrupted", error="the process stopped before finishing")


def _set_status(con: BaseBackend, run_id: str, status: str, **values: Any) -> None:
    """Rewrite one run row (the runs table is tiny; overwrite works on every backend)."""
    rows = con.table(RUNS).to_pyarrow().to_pylist()
    finished = datetime.now(UTC).replace(tzinfo=None)
    for row in rows:
        if row["run_id"] == run_id:
            row |= {"status": status, "finished_at": finished} | values
    data = {name: [row[name] for row in rows] for name in RUNS_SCHEMA.names}
    con.insert(RUNS, ibis.memtable(data, schema=RUNS_SCHEMA), overwrite=True)


def current_run(con: BaseBackend) -> tuple[str, date] | None:
    if CURRENT not in con.list_tables():
        return None
    rows = con.table(CURRENT).to_pyarrow().to_pylist()
    return (rows[0]["run_id"], rows[0]["as_of"]) if rows else None


def _tables(con: BaseBackend) -> dict[str, ir.Table]:
    present = set(con.list_tables())
    if "orders" not in present:
        raise DataError("no orders in the warehouse yet: run `tierwise ingest` first")
    return {name: con.table(name) for name in TABLES if name in present}


def _run_locked(
    con: BaseBackend, settings: Settings, as_of: date | None, on_stage: StageCallback | None
) -> RunResult:
    tables = _tables(con)
    as_of = as_of or settings.scoring.as_of or _latest(tables["orders"])
    run_id = new_id()
    started = datetime.now(UTC).replace(tzinfo=None)
    row = {
        "run_id": run_id,
        "as_of": as_of,
        "config_hash": config_hash(settings),
        "status": "running",
        "started_at": started,
        "finished_at": None,
        "customers": None,
        "stage_seconds": None,
        "models": None,
        "error": None,
    }
    con.insert(RUNS, ibis.memtable({k: [v] for k, v in row.items()}, schema=RUNS_SCHEMA))
    previous = current_run(con)
    result = RunResult(run_id, as_of, 0, previous_run_id=previous[0] if previous else None)

    def stage(name: str, work: Callable[[], None]) -> None:
        if on_stage:
            on_stage(name)
        t0 = time.perf_counter()
        work()
        result.stage_seconds[name] = round(time.perf_counter() - t0, 3)

    try:
        profiles = snapshot_table("profiles", run_id)
        base = snapshot_table("base", run_id)
        predictions = snapshot_table("predictions", run_id)
        stage(
            "profiles",
            lambda: wh.write(
                con,
                base,
                build_profiles(
                    tables, as_of=as_of, scoring=settings.scoring, lifecycle=settings.lifecycle
                ),
            ),
        )
        stage("models", lambda: _models(con, tables, settings, as_of, run_id, result))
        stage(
            "attach",
            lambda: wh.write(
                con,
                profiles,
                attach_predictions(
                    con.table(base),
                    con.table(predictions),
                    scoring=settings.scoring,
                    tier_by_clv=result.models.tier_by_clv,
                ),
            ),
        )
        for kind in ("base", "predictions"):
            con.drop_table(snapshot_table(kind, run_id), force=True)
        stage(
            "recommendations",
            lambda: attach_behaviour(con, tables, settings, as_of=as_of, run_id=run_id),
        )
        segments = {rule.segment for rule in settings.scoring.scheme_rules()}
        stage("checks", lambda: check_contracts(con.table(profiles), segments=segments))
        stage("migration", lambda: _write_migration(con, run_id, previous))
        stage(
            "cohorts",
            lambda: wh.write(
                con,
                snapshot_table("cohorts", run_id),
                cohort_retention(tables["orders"], as_of=as_of),
            ),
        )
        result.customers = int(con.table(profiles).count().execute())
        switched = datetime.now(UTC).replace(tzinfo=None)
        with wh.transaction(con):
            con.insert(
                CURRENT,
                ibis.memtable(
                    {"run_id": [run_id], "as_of": [as_of], "switched_at": [switched]},
                    schema=CURRENT_SCHEMA,
                ),
                overwrite=True,
            )
            _set_status(
                con,
                run_id,
                "succeeded",
                customers=result.customers,
                stage_seconds=json.dumps(result.stage_seconds),
                models=json.dumps(asdict(result.models)),
            )
    except Exception as e:
        for kind in SNAPSHOT_KINDS:
            con.drop_table(snapshot_table(kind, run_id), force=True)
        _set_status(con, run_id, "failed", error=str(e)[:2000])
        raise
    return result


def model_file(settings: Settings, run_id: str) -> Path:
    """Fitted models of a run, pickled with their versions next to the warehouse."""
    return settings.resolve(settings.warehouse.path).parent / "models" / f"{run_id}.pkl"


def _models(
    con: BaseBackend,
    tables: dict[str, ir.Table],
    settings: Settings,
    as_of: date,
    run_id: str,
    result: RunResult,
) -> None:
    out = snapshot_table("predictions", run_id)
    if not settings.models.enabled:
        con.create_table(out, schema=PREDICTION_SCHEMA)
        result.models = ModelReport(skipped={"all": "models.enabled = false"})
        return
    result.models = predict(
        con,
        tables,
        con.table(snapshot_table("base", run_id)),
        as_of=as_of,
        settings=settings,
        out_table=out,
        model_file=model_file(settings, run_id),
    )


def _latest(orders: ir.Table) -> date:
    value = latest_order_date(orders).execute()
    if value is None:
        raise DataError("the orders table is empty: nothing to score")
    # pandas hands back a Timestamp, which is a datetime and so also passes for a date
    return value.date() if isinstance(value, datetime) else value


def _write_migration(con: BaseBackend, run_id: str, previous: tuple[str, date] | None) -> None:
    after = con.table(snapshot_table("profiles", run_id))
    before = con.table(snapshot_table("profiles", previous[0])) if previous else after.limit(0)
    columns = ("lifecycle_stage", "rfm_segment", "rfm_class8", "value_tier")

    def classes(t: ir.Table) -> ir.Table:
        """Customers without a class (class8 without orders) move as "(none)", never null."""
        return t.mutate(**{c: t[c].fill_null("(none)") for c in columns})

    parts = [
        migration_matrix(classes(before), classes(after), column=column).mutate(
            dimension=ibis.literal(column)
        )
        for column in columns
    ]
    wh.write(con, snapshot_table("migration", run_id), ibis.union(*parts))


KNOWN = {
    "rfm_class8": {c.value for c in Class8},
    "abc_class": {a.value for a in AbcClass},
    "value_tier": {v.value for v in ValueTier},
    "lifecycle_stage": {s.value for s in Stage},
}


def check_contracts(profiles: ir.Table, *, segments: set[str]) -> None:
    """Refuse a snapshot that breaks what every reader relies on; `segments` are the
    configured scheme's segment names (custom schemes name their own)."""
    p = profiles
    checks: dict[str, ir.Scalar] = {
        "duplicate customer_id": p.count() - p.customer_id.nunique(),
        "null customer_id": p.customer_id.isnull().sum(),
        "negative orders": (p.orders < 0).sum(),
    }
    for score in ("r_score", "f_score", "m_score"):
        checks[f"{score} outside 1..5"] = (p[score].notnull() & ~p[score].between(1, 5)).sum()
    known = KNOWN | {"rfm_segment": segments | {Segment.NO_ORDERS.value}}
    for column, values in known.items():
        checks[f"unknown {column}"] = (p[column].notnull() & ~p[column].isin(list(values))).sum()
    counts = p.aggregate(**{f"c{i}": v for i, v in enumerate(checks.values())})
    values = counts.to_pyarrow().to_pylist()[0]
    broken = [f"{name}: {values[f'c{i}']}" for i, name in enumerate(checks) if values[f"c{i}"]]
    if broken:
        raise ContractError("snapshot refused, contract checks failed: " + "; ".join(broken))


def summary(con: BaseBackend, run_id: str) -> dict[str, Any]:
    """What the demo prints after a run: segment sizes, stage counts, A/B/C revenue shares."""
    p = con.table(snapshot_table("profiles", run_id))

    def counts(column: str) -> dict[str, int]:
        rows = p.group_by(column).aggregate(n=p.count()).order_by(ibis.desc("n")).to_pyarrow()
        keys, values = (c.to_pylist() for c in rows.columns)
        return {("(none)" if k is None else str(k)): v for k, v in zip(keys, values, strict=True)}

    buyers = p.filter(p.abc_class.notnull())
    abc = (
        buyers.group_by("abc_class")
        .aggregate(customers=buyers.count(), revenue=buyers.revenue.sum())
        .order_by("abc_class")
        .to_pyarrow()
        .to_pylist()
    )
    total = sum(r["revenue"] for r in abc) or 1.0
    return {
        "run_id": run_id,
        "customers": int(p.count().execute()),
        "rfm_segment": counts("rfm_segment"),
        "rfm_class8": counts("rfm_class8"),
        "lifecycle_stage": counts("lifecycle_stage"),
        "value_tier": counts("value_tier"),
        "churn_risk": counts("churn_risk"),
        "clv_by_segment": {
            r["rfm_segment"]: r["clv"]
            for r in p.group_by("rfm_segment").aggregate(clv=p.clv.sum()).to_pyarrow().to_pylist()
            if r["clv"] is not None
        },
        "abc": {
            r["abc_class"]: {"customers": r["customers"], "revenue_share": r["revenue"] / total}
            for r in abc
        },
    }
