"""What each dashboard page shows; the page and its /api/v1 twin make the same call here.

Every number about customers is computed over `scope(viewer)`. For viewers whose scope has no
row filter (they see every customer), those numbers are the same for all of them and change only
when an erasure removes someone, so publishing sums them once from the run's warehouse snapshot
(one columnar scan, about a second at a million customers) and stores them with the run, and
erasure sums them again; a page reads that small document. Scoped viewers (managers, agents) are
summed on each request from their slice of the warehouse snapshot (their ids come from the
store's account-manager index), else from the store. Every source feeds one summing function, so
they cannot disagree on definitions.

Order history, interactions and feedback of one customer, the ingest ledger and the run history
live only in the warehouse; they are read after the store has said the viewer may see them, and
a warehouse that cannot be opened (missing, or held by another process) leaves them empty with
`warehouse_available = False` instead of failing the page.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

import duckdb
import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from ibis.backends import BaseBackend
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, defer

from tierwise.core.errors import BusyError
from tierwise.core.settings import Settings
from tierwise.core.vocab import BY_COLUMN, ChurnRisk, Stage
from tierwise.services.access import (
    OPERATOR_ROLES,
    PII_READ,
    Principal,
    Viewer,
    can,
    for_viewer,
    mask_text,
    require_operator,
    scope,
)
from tierwise.services.meta import LEDGER, QUARANTINE
from tierwise.services.quality import latest_report
from tierwise.services.run import RUNS, snapshot_table
from tierwise.services.serving import (
    SUMMARY_FIELDS,
    CohortTable,
    CustomerFilter,
    CustomerPage,
    MigrationDimension,
    MigrationTable,
    RunInfo,
    SortKey,
    Store,
    cohorts,
    customer_detail,
    filtered,
    list_customers,
    list_runs,
    migration,
)
from tierwise.services.warehouse import connect
from tierwise.store.models import PublishedProfile, PublishedRun, RunStatus
from tierwise.store.publish import current_run, store_dashboard
from tierwise.store.web_sessions import web_session_user

log = logging.getLogger(__name__)

DIMENSIONS = (
    "rfm_segment",
    "rfm_class8",
    "abc_class",
    "value_tier",
    "lifecycle_stage",
    "churn_risk",
)
ACTIVE_STAGES = frozenset({Stage.NEW, Stage.ACTIVE, Stage.LOYAL, Stage.REACTIVATED})
"""Stages of customers who bought recently enough to count as active (KPI "active")."""
PROMOTER_NPS, DETRACTOR_NPS = 9.0, 6.0
"""A customer's mean NPS answer ≥ 9 is a promoter, ≤ 6 a detractor (the usual NPS cut points)."""
HISTOGRAM_BINS = 30
PARETO_POINTS = 100
CHURN_LIST = 20
HISTORY_RUNS = 12
"""Runs shown in "stage counts over runs"."""
RECENT_ROWS = 20
"""Rows of interactions, feedback, orders, ledger entries and rejects shown per page."""

_FRAME_SCHEMA = pa.schema(
    [
        ("rfm_segment", pa.string()),
        ("rfm_class8", pa.string()),
        ("abc_class", pa.string()),
        ("value_tier", pa.string()),
        ("lifecycle_stage", pa.string()),
        ("churn_risk", pa.string()),
        ("revenue", pa.float64()),
        ("clv", pa.float64()),
        ("profit", pa.float64()),
        ("r_score", pa.int64()),
        ("f_score", pa.int64()),
        ("mean_nps", pa.float64()),
    ]
)
"""Per-customer columns every summary is computed from."""
_JSON_FIELDS = ("mean_nps",)
"""Columns of `_FRAME_SCHEMA` that the store keeps only inside the profile document."""


# --- sessions of the web pages --------------------------------------------------------------


@dataclass(frozen=True)
class WebViewer:
    """The signed-in user of a page and the session's CSRF token, which forms and scripts send
    back with state-changing requests."""

    principal: Principal
    csrf_token: str


def web_viewer(store: Store, session_secret: str) -> WebViewer:
    """The user of a browser session (AuthError when it is unknown, expired or disabled)."""
    with store.write.begin() as session:
        user, web = web_session_user(session, session_secret)
        return WebViewer(Principal.of(user), web.csrf_token)


# --- summaries of a run ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunRef:
    run_id: str
    as_of: date


@dataclass(frozen=True)
class Bucket:
    """One value of a dimension (None: customers without one, e.g. no orders yet)."""

    key: str | None
    customers: int
    share: float
    """Share of the customers summed."""
    revenue: float
    revenue_share: float | None
    """Share of the revenue summed; None when that revenue is not positive."""
    mean_clv: float | None


@dataclass(frozen=True)
class RfCell:
    """Customers with R score `r` and F score `f`; `segment` when one segment covers the cell."""

    r: int
    f: int
    customers: int
    revenue: float
    segment: str | None


@dataclass(frozen=True)
class Histogram:
    """Counts between consecutive `edges`; values beyond the 1st/99th percentiles are counted in
    the first/last bin, so one outlier cannot squeeze every other bar into one."""

    edges: list[float]
    counts: list[int]
    values: int


@dataclass(frozen=True)
class ParetoPoint:
    customer_share: float
    revenue_share: float


@dataclass(frozen=True)
class Totals:
    customers: int
    buyers: int
    active: int
    revenue: float
    mean_clv: float | None
    churn_risk_high: int
    nps: float | None
    """% promoters − % detractors among customers who answered a survey; None without answers."""
    nps_respondents: int
    unprofitable: int
    loss: float
    """Sum of the negative profits (≤ 0)."""


@dataclass(frozen=True)
class Snapshot:
    """Everything the charts need about one run, over one viewer's customers."""

    run_id: str
    as_of: date
    source: Literal["warehouse", "store"]
    totals: Totals
    dimensions: dict[str, list[Bucket]]
    rf: list[RfCell]
    pareto: list[ParetoPoint]
    clv: Histogram
    profit: Histogram


def _store_frame(session: Session, query: Select[Any]) -> pa.Table:
    """The frame columns of the profiles `query` selects (a `scope` query)."""
    p = PublishedProfile
    columns = [getattr(p, name) for name in _FRAME_SCHEMA.names if name not in _JSON_FIELDS]
    columns += [p.profile[name].as_float().label(name) for name in _JSON_FIELDS]
    rows = session.execute(query.with_only_columns(*columns)).all()
    names = [name for name in _FRAME_SCHEMA.names if name not in _JSON_FIELDS] + list(_JSON_FIELDS)
    data = dict(zip(names, zip(*rows, strict=True), strict=True)) if rows else {}
    return pa.table(
        {f.name: pa.array(data.get(f.name, ()), f.type) for f in _FRAME_SCHEMA}, _FRAME_SCHEMA
    )


def _warehouse_frame(
    con: BaseBackend, run_id: str, customers: list[str] | None = None
) -> pa.Table | None:
    """The frame of a run's warehouse snapshot, of every customer or of `customers` only;
    None when the snapshot is gone."""
    name = snapshot_table("profiles", run_id)
    if name not in con.list_tables():
        return None
    t = con.table(name)
    if customers is not None:
        t = t.semi_join(
            ibis.memtable({"customer_id": customers}, schema={"customer_id": "string"}),
            "customer_id",
        )
    return t.select(*_FRAME_SCHEMA.names).to_pyarrow().cast(_FRAME_SCHEMA)


def _order(column: str, keys: list[str | None]) -> list[str | None]:
    """Vocabulary order (funnel order for stages), unknown codes by name, None last."""
    vocab = BY_COLUMN.get(column)
    known = [m.value for m in vocab] if vocab else []
    rank = {k: i for i, k in enumerate(known)}
    return sorted(keys, key=lambda k: (k is None, rank.get(k or "", len(known)), k or ""))


def _buckets(frame: pa.Table, column: str, customers: int, revenue: float) -> list[Bucket]:
    grouped = frame.group_by(column, use_threads=False).aggregate(
        [([], "count_all"), ("revenue", "sum"), ("clv", "mean")]
    )
    rows = {r[column]: r for r in grouped.to_pylist()}
    return [
        Bucket(
            key=key,
            customers=rows[key]["count_all"],
            share=rows[key]["count_all"] / customers if customers else 0.0,
            revenue=rows[key]["revenue_sum"] or 0.0,
            revenue_share=(rows[key]["revenue_sum"] or 0.0) / revenue if revenue > 0 else None,
            mean_clv=rows[key]["clv_mean"],
        )
        for key in _order(column, list(rows))
    ]


def _rf_cells(frame: pa.Table) -> list[RfCell]:
    scored = frame.filter(pc.and_(pc.is_valid(frame["r_score"]), pc.is_valid(frame["f_score"])))
    grouped = scored.group_by(["r_score", "f_score", "rfm_segment"], use_threads=False).aggregate(
        [([], "count_all"), ("revenue", "sum")]
    )
    cells: dict[tuple[int, int], RfCell] = {}
    for row in grouped.to_pylist():
        key = (row["r_score"], row["f_score"])
        seen = cells.get(key)
        cells[key] = RfCell(
            r=key[0],
            f=key[1],
            customers=row["count_all"] + (seen.customers if seen else 0),
            revenue=(row["revenue_sum"] or 0.0) + (seen.revenue if seen else 0.0),
            segment=row["rfm_segment"] if seen is None else None,
        )
    return [cells[k] for k in sorted(cells)]


def _pareto(frame: pa.Table) -> list[ParetoPoint]:
    """Cumulative revenue share of buyers ranked by revenue, at PARETO_POINTS + 1 shares of
    buyers (buyers are customers with an ABC class, as in the A/B/C cut)."""
    buyers = frame.filter(pc.is_valid(frame["abc_class"]))
    revenue = np.sort(buyers["revenue"].fill_null(0.0).to_numpy(zero_copy_only=False))[::-1]
    total = float(revenue.sum())
    if not len(revenue) or total <= 0:
        return []
    cumulative = np.concatenate([[0.0], np.cumsum(revenue)]) / total
    at = np.ceil(np.linspace(0, 1, PARETO_POINTS + 1) * len(revenue)).astype(int)
    return [ParetoPoint(float(i / PARETO_POINTS), float(cumulative[k])) for i, k in enumerate(at)]


def _histogram(values: pa.ChunkedArray, *, zero_edge: bool = False) -> Histogram:
    """HISTOGRAM_BINS bins over the 1st–99th percentile; `zero_edge` puts an edge on 0 so
    losses and gains never share a bar."""
    x = values.drop_null().to_numpy(zero_copy_only=False).astype(float)
    x = x[np.isfinite(x)]
    if not len(x):
        return Histogram([], [], 0)
    lo, hi = (float(v) for v in np.quantile(x, [0.01, 0.99]))
    if x.min() >= 0:
        lo = 0.0
    if hi <= lo:
        hi = lo + 1.0
    width = _nice((hi - lo) / HISTOGRAM_BINS)
    start = math.floor(lo / width) * width if zero_edge or lo != 0 else 0.0
    bins = max(1, math.ceil((hi - start) / width))
    edges = start + width * np.arange(bins + 1)
    counts, _ = np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)
    return Histogram([float(e) for e in edges], [int(c) for c in counts], len(x))


def _nice(step: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at least `step`: bin edges a reader can read."""
    power = 10 ** math.floor(math.log10(step))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= step)


def summarise(run: RunRef, frame: pa.Table, source: Literal["warehouse", "store"]) -> Snapshot:
    """A run's snapshot from per-customer rows (`_FRAME_SCHEMA`)."""
    n = frame.num_rows
    revenue = float(pc.sum(frame["revenue"]).as_py() or 0.0)
    nps = frame["mean_nps"].drop_null()
    promoters = int(pc.sum(pc.greater_equal(nps, PROMOTER_NPS)).as_py() or 0)
    detractors = int(pc.sum(pc.less_equal(nps, DETRACTOR_NPS)).as_py() or 0)
    profit = frame["profit"]
    losses = pc.filter(profit, pc.less(profit.fill_null(0.0), 0.0))
    stage = frame["lifecycle_stage"]
    totals = Totals(
        customers=n,
        buyers=int(pc.sum(pc.is_valid(frame["abc_class"])).as_py() or 0),
        active=int(pc.sum(pc.is_in(stage, pa.array(sorted(ACTIVE_STAGES)))).as_py() or 0),
        revenue=revenue,
        mean_clv=pc.mean(frame["clv"]).as_py(),
        churn_risk_high=int(
            pc.sum(pc.equal(frame["churn_risk"], ChurnRisk.HIGH.value)).as_py() or 0
        ),
        nps=100.0 * (promoters - detractors) / len(nps) if len(nps) else None,
        nps_respondents=len(nps),
        unprofitable=len(losses),
        loss=float(pc.sum(losses).as_py() or 0.0),
    )
    return Snapshot(
        run_id=run.run_id,
        as_of=run.as_of,
        source=source,
        totals=totals,
        dimensions={d: _buckets(frame, d, n, revenue) for d in DIMENSIONS},
        rf=_rf_cells(frame),
        pareto=_pareto(frame),
        clv=_histogram(frame["clv"]),
        profit=_histogram(profit, zero_edge=True),
    )


def snapshot_document(snap: Snapshot) -> dict[str, Any]:
    """A snapshot as JSON-ready data, the way `PublishedRun.dashboard` keeps it."""
    return dataclasses.asdict(snap) | {"as_of": snap.as_of.isoformat()}


def snapshot_from_document(doc: Mapping[str, Any]) -> Snapshot:
    return Snapshot(
        run_id=doc["run_id"],
        as_of=date.fromisoformat(doc["as_of"]),
        source=doc["source"],
        totals=Totals(**doc["totals"]),
        dimensions={k: [Bucket(**b) for b in v] for k, v in doc["dimensions"].items()},
        rf=[RfCell(**c) for c in doc["rf"]],
        pareto=[ParetoPoint(**p) for p in doc["pareto"]],
        clv=Histogram(**doc["clv"]),
        profit=Histogram(**doc["profit"]),
    )


def run_dashboard(con: BaseBackend, run: RunRef) -> dict[str, Any] | None:
    """The summary of every customer of `run`, from its warehouse snapshot (None when that is
    gone): publishing stores it with the run, erasure recomputes it."""
    frame = _warehouse_frame(con, run.run_id)
    return None if frame is None else snapshot_document(summarise(run, frame, "warehouse"))


def sees_every_customer(viewer: Viewer) -> bool:
    """True when `scope(viewer)` filters no rows: run-level numbers are then the viewer's own."""
    return scope(viewer).whereclause is None


# --- page data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kpi:
    key: str
    value: float | None
    previous: float | None
    change: float | None
    """value − previous."""
    relative: float | None
    """change / |previous|; None when there is nothing to compare with."""


def _kpi(key: str, value: float | None, previous: float | None) -> Kpi:
    if value is None or previous is None:
        return Kpi(key, value, previous, None, None)
    change = value - previous
    return Kpi(key, value, previous, change, change / abs(previous) if previous else None)


@dataclass(frozen=True)
class Overview:
    run_id: str | None
    as_of: date | None
    previous_run_id: str | None
    kpis: list[Kpi]
    pareto: list[ParetoPoint]
    abc: list[Bucket]
    segments: list[Bucket]
    funnel: list[Bucket]
    """Customers per lifecycle stage, in funnel order."""


@dataclass(frozen=True)
class SegmentsPage:
    run_id: str | None
    as_of: date | None
    customers: int
    rf: list[RfCell]
    dimensions: dict[str, list[Bucket]]


@dataclass(frozen=True)
class StagePoint:
    run_id: str
    as_of: date
    stages: dict[str, int]


@dataclass(frozen=True)
class LifecyclePage:
    run_id: str | None
    dimension: str
    migration: MigrationTable
    """Run-level: counts over every customer of the run, like /api/v1/lifecycle/migration."""
    cohorts: CohortTable
    """Run-level, like /api/v1/cohorts."""
    stage_history: list[StagePoint]
    """Oldest first; over the viewer's customers."""


@dataclass(frozen=True)
class ChurnScorer:
    name: str
    roc_auc: float | None
    pr_auc: float | None
    top_decile_lift: float | None
    ece: float | None
    """Expected calibration error (mean |predicted − observed| over probability bins)."""


@dataclass(frozen=True)
class ModelSummary:
    """What the run recorded about its models (the warehouse's runs table)."""

    purchase_model: str | None
    purchase_params: dict[str, float]
    spend_params: dict[str, float]
    churn_validated_at: str | None
    churn_window_days: int | None
    churn_scorers: list[ChurnScorer]
    skipped: dict[str, str]


@dataclass(frozen=True)
class ValuePage:
    run_id: str | None
    as_of: date | None
    clv: Histogram
    profit: Histogram
    totals: Totals | None
    churn_risk: list[Bucket]
    at_risk: list[dict[str, Any]]
    """The viewer's high-risk customers with the highest CLV, with reasons; masked."""
    models: ModelSummary | None
    holdout_stored: bool
    """Runs do not store a holdout evaluation or calibration curve (`tierwise evaluate`
    computes one on demand); False until they do."""


@dataclass(frozen=True)
class ListFilter:
    """The customer list's filters: the API's, plus the R and F scores of a heatmap cell."""

    base: CustomerFilter = field(default_factory=CustomerFilter)
    r: int | None = None
    f: int | None = None


@dataclass(frozen=True)
class ScoreReason:
    column: str
    code: str | None
    reason: str | None


@dataclass(frozen=True)
class MonthPoint:
    month: date
    orders: int
    revenue: float


@dataclass(frozen=True)
class Customer360:
    run_id: str
    as_of: date
    profile: dict[str, Any]
    """Every published field, masked for the viewer."""
    scores: list[ScoreReason]
    churn_reasons: list[str]
    warehouse_available: bool
    months: list[MonthPoint]
    orders: list[dict[str, Any]]
    interactions: list[dict[str, Any]]
    feedback: list[dict[str, Any]]


@dataclass(frozen=True)
class DataPage:
    warehouse_available: bool
    ledger: list[dict[str, Any]]
    quality: dict[str, Any] | None
    rejects: list[dict[str, Any]]


@dataclass(frozen=True)
class RunRecord:
    """One row of the warehouse's run history, failed and interrupted runs included."""

    run_id: str
    as_of: date | None
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    customers: int | None
    seconds: float | None
    error: str | None
    """Operators only; None for everyone else."""


@dataclass(frozen=True)
class RunsPage:
    published: list[RunInfo]
    warehouse_available: bool
    history: list[RunRecord]
    can_start: bool


SCORE_REASONS = (
    ("rfm_segment", "rfm_segment_reason"),
    ("rfm_class8", "rfm_class8_reason"),
    ("abc_class", "abc_reason"),
    ("value_tier", "value_tier_reason"),
    ("lifecycle_stage", "lifecycle_reason"),
    ("churn_risk", None),
)


class Dashboard:
    """The dashboard's reads for one process. Run-level summaries live in the store (every
    process sees the same); stage counts of older runs and model reports are kept here."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._stage_counts: dict[str, dict[str, int]] = {}
        self._models: dict[str, ModelSummary | None] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Forget what this process keeps about runs, e.g. after an erasure changed them."""
        with self._lock:
            self._stage_counts.clear()
            self._models.clear()

    # --- the warehouse, opened briefly ----------------------------------------------------

    @contextlib.contextmanager
    def warehouse(self) -> Iterator[BaseBackend | None]:
        """A warehouse connection, or None when there is none yet or another process holds it.

        Connections are closed after each use: a long-lived one would keep CLI ingests and runs
        in other processes from opening the DuckDB file.
        """
        s = self.settings
        if s.warehouse.engine == "duckdb" and not s.resolve(s.warehouse.path).exists():
            yield None
            return
        try:
            con = connect(s)
        except (duckdb.Error, OSError, BusyError) as e:
            log.warning("warehouse unavailable to the dashboard: %s", e)
            yield None
            return
        try:
            yield con
        finally:
            con.disconnect()

    # --- runs and snapshots ---------------------------------------------------------------

    def current_runs(self) -> tuple[RunRef | None, RunRef | None]:
        """The current run and the one published before it (kept while readers finish)."""
        with self.store.read() as session:
            current = current_run(session)
            if current is None:
                return None, None
            previous = session.scalar(
                select(PublishedRun)
                .where(
                    PublishedRun.status == RunStatus.PUBLISHED.value,
                    PublishedRun.run_id != current.run_id,
                )
                .order_by(PublishedRun.published_at.desc().nulls_last())
                .limit(1)
            )
            return (
                RunRef(current.run_id, current.as_of),
                RunRef(previous.run_id, previous.as_of) if previous else None,
            )

    def snapshot(self, viewer: Viewer, run: RunRef) -> Snapshot:
        """`run` summed over the viewer's customers.

        For viewers who see everyone this is the document publishing stored with the run.
        Scoped viewers' customers are the ids `scope(viewer)` selects in the store (an index
        read); their columns come from the run's warehouse snapshot, which holds them typed,
        instead of from every customer's profile document in the store.
        """
        if not sees_every_customer(viewer):
            with self.store.read() as session:
                ids = list(
                    session.scalars(
                        scope(viewer, run_id=run.run_id).with_only_columns(
                            PublishedProfile.customer_id
                        )
                    )
                )
            with self.warehouse() as con:
                frame = _warehouse_frame(con, run.run_id, ids) if con is not None else None
            if frame is None or frame.num_rows != len(ids):
                return self.store_snapshot(viewer, run)
            return summarise(run, frame, "warehouse")
        with self.store.read() as session:
            document = session.scalar(
                select(PublishedRun.dashboard).where(PublishedRun.run_id == run.run_id)
            )
        if document is not None:
            return snapshot_from_document(document)
        with self._lock:  # published before runs kept their summary: compute it once, keep it
            with self.warehouse() as con:
                document = run_dashboard(con, run) if con is not None else None
            if document is None:
                return self.store_snapshot(viewer, run)
            with self.store.write.begin() as session:
                store_dashboard(session, run.run_id, document, only_if_missing=True)
            return snapshot_from_document(document)

    def store_snapshot(self, viewer: Viewer, run: RunRef) -> Snapshot:
        """`run` summed from the store over `scope(viewer)`, never cached."""
        with self.store.read() as session:
            frame = _store_frame(session, scope(viewer, run_id=run.run_id))
        return summarise(run, frame, "store")

    # --- pages ----------------------------------------------------------------------------

    def overview(self, viewer: Viewer) -> Overview:
        current, previous = self.current_runs()
        if current is None:
            return Overview(None, None, None, [], [], [], [], [])
        now = self.snapshot(viewer, current)
        before = self.snapshot(viewer, previous) if previous else None
        t, p = now.totals, before.totals if before else None
        kpis = [
            _kpi("customers", t.customers, p.customers if p else None),
            _kpi("active", t.active, p.active if p else None),
            _kpi("revenue", t.revenue, p.revenue if p else None),
            _kpi("mean_clv", t.mean_clv, p.mean_clv if p else None),
            _kpi("churn_risk_high", t.churn_risk_high, p.churn_risk_high if p else None),
            _kpi("nps", t.nps, p.nps if p else None),
        ]
        return Overview(
            run_id=current.run_id,
            as_of=current.as_of,
            previous_run_id=previous.run_id if previous else None,
            kpis=kpis,
            pareto=now.pareto,
            abc=[b for b in now.dimensions["abc_class"] if b.key is not None],
            segments=now.dimensions["rfm_segment"],
            funnel=[b for b in now.dimensions["lifecycle_stage"] if b.key is not None],
        )

    def segments(self, viewer: Viewer) -> SegmentsPage:
        current, _ = self.current_runs()
        if current is None:
            return SegmentsPage(None, None, 0, [], {d: [] for d in DIMENSIONS})
        snap = self.snapshot(viewer, current)
        return SegmentsPage(
            current.run_id, current.as_of, snap.totals.customers, snap.rf, snap.dimensions
        )

    def lifecycle(
        self, viewer: Viewer, dimension: MigrationDimension = "lifecycle_stage"
    ) -> LifecyclePage:
        current, previous = self.current_runs()
        if sees_every_customer(viewer):
            history = self._run_level_stage_history(viewer)
        else:
            history = [
                StagePoint(r.run_id, r.as_of, self._stages(self.snapshot(viewer, r)))
                for r in (previous, current)
                if r is not None
            ]
        return LifecyclePage(
            run_id=current.run_id if current else None,
            dimension=dimension,
            migration=migration(self.store, dimension),
            cohorts=cohorts(self.store),
            stage_history=history,
        )

    @staticmethod
    def _stages(snap: Snapshot) -> dict[str, int]:
        return {b.key: b.customers for b in snap.dimensions["lifecycle_stage"] if b.key}

    def _run_level_stage_history(self, viewer: Viewer) -> list[StagePoint]:
        """Stage counts of the last HISTORY_RUNS successful runs whose snapshots the warehouse
        still holds, else of the runs the store keeps (current and previous)."""
        with self.warehouse() as con:
            if con is not None and RUNS in con.list_tables():
                return self._warehouse_stage_history(con)
        current, previous = self.current_runs()
        return [
            StagePoint(r.run_id, r.as_of, self._stages(self.snapshot(viewer, r)))
            for r in (previous, current)
            if r is not None
        ]

    def _warehouse_stage_history(self, con: BaseBackend) -> list[StagePoint]:
        runs = con.table(RUNS)
        done = (
            runs.filter(runs.status == "succeeded")
            .order_by([ibis.desc("as_of"), ibis.desc("started_at")])
            .select("run_id", "as_of")
            .limit(HISTORY_RUNS)
            .to_pyarrow()
            .to_pylist()
        )
        tables = set(con.list_tables())
        points = []
        for row in reversed(done):
            run_id = row["run_id"]
            counts = self._stage_counts.get(run_id)
            if counts is None:
                name = snapshot_table("profiles", run_id)
                if name not in tables:
                    continue
                t = con.table(name)
                grouped = t.group_by("lifecycle_stage").aggregate(n=t.count()).to_pyarrow()
                counts = {
                    r["lifecycle_stage"]: r["n"]
                    for r in grouped.to_pylist()
                    if r["lifecycle_stage"]
                }
                self._stage_counts[run_id] = counts
            points.append(StagePoint(run_id, _as_date(row["as_of"]), counts))
        return points

    def value(self, viewer: Viewer) -> ValuePage:
        current, _ = self.current_runs()
        if current is None:
            return ValuePage(
                None, None, Histogram([], [], 0), Histogram([], [], 0), None, [], [], None, False
            )
        snap = self.snapshot(viewer, current)
        return ValuePage(
            run_id=current.run_id,
            as_of=current.as_of,
            clv=snap.clv,
            profit=snap.profit,
            totals=snap.totals,
            churn_risk=snap.dimensions["churn_risk"],
            at_risk=self._at_risk(viewer, current.run_id),
            models=self._model_summary(current.run_id),
            holdout_stored=False,
        )

    def _at_risk(self, viewer: Viewer, run_id: str) -> list[dict[str, Any]]:
        """The viewer's high-risk customers with the highest CLV. Their ids are sorted first
        (the store's covering index on churn_risk holds clv), then only those rows are read."""
        p = PublishedProfile
        query = (
            filtered(viewer, run_id, CustomerFilter(churn_risk=ChurnRisk.HIGH.value))
            .where(p.clv.is_not(None))
            .with_only_columns(p.customer_id)
            .order_by(p.clv.desc(), p.customer_id)
            .limit(CHURN_LIST)
        )
        with self.store.read() as session:
            ids = list(session.scalars(query))
            rows = {
                r.customer_id: r
                for r in session.scalars(
                    select(p).where(p.run_id == run_id, p.customer_id.in_(ids))
                )
            }
            return [
                for_viewer(
                    viewer,
                    {f: getattr(rows[i], f) for f in SUMMARY_FIELDS}
                    | {"churn_reasons": _reasons(rows[i].profile.get("churn_reasons"))},
                )
                for i in ids
            ]

    def _model_summary(self, run_id: str) -> ModelSummary | None:
        if run_id in self._models:
            return self._models[run_id]
        with self.warehouse() as con:
            if con is None or RUNS not in con.list_tables():
                return None
            runs = con.table(RUNS)
            rows = runs.filter(runs.run_id == run_id).select("models").to_pyarrow().to_pylist()
        text = rows[0]["models"] if rows else None
        summary = _model_summary(json.loads(text)) if text else None
        self._models[run_id] = summary
        return summary

    def customers(
        self,
        viewer: Viewer,
        where: ListFilter,
        *,
        sort: SortKey = "customer_id",
        descending: bool = False,
        page: int = 1,
        page_size: int = 50,
    ) -> CustomerPage:
        """`serving.list_customers`, also narrowed to one R×F cell when `r` and `f` are set."""
        if where.r is None and where.f is None:
            return list_customers(
                self.store,
                viewer,
                where.base,
                sort=sort,
                descending=descending,
                page=page,
                page_size=page_size,
            )
        p = PublishedProfile
        with self.store.read() as session:
            run = current_run(session)
            if run is None:
                return CustomerPage(None, [], 0, page, page_size)
            query = filtered(viewer, run.run_id, where.base)
            for score, value in ((p.r_score, where.r), (p.f_score, where.f)):
                if value is not None:
                    query = query.where(score == value)
            total = self._cell_size(viewer, RunRef(run.run_id, run.as_of), where)
            if total is None:
                total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
            column = getattr(p, sort)
            order = (column.desc() if descending else column.asc()).nulls_last()
            rows = session.scalars(
                query.options(defer(p.profile))
                .order_by(order, p.customer_id.asc())
                .offset((page - 1) * page_size)
                .limit(page_size)
            ).all()
            items = [for_viewer(viewer, {f: getattr(r, f) for f in SUMMARY_FIELDS}) for r in rows]
            return CustomerPage(run.run_id, items, total, page, page_size)

    def _cell_size(self, viewer: Viewer, run: RunRef, where: ListFilter) -> int | None:
        """The size of a whole R×F cell from the run's kept snapshot, for viewers who see every
        customer: counting it in the store means reading every profile document of the cell."""
        if where.r is None or where.f is None or not sees_every_customer(viewer):
            return None
        cell = next(
            (c for c in self.snapshot(viewer, run).rf if (c.r, c.f) == (where.r, where.f)), None
        )
        if cell is None or where.base not in (
            CustomerFilter(),
            CustomerFilter(segment=cell.segment),
        ):
            return None
        return cell.customers

    def customer(self, viewer: Viewer, customer_id: str) -> Customer360:
        """`serving.customer_detail` (404 outside the viewer's scope, audited) and, once it has
        answered, the customer's history from the warehouse."""
        detail = customer_detail(self.store, viewer, customer_id)
        profile = detail.profile
        scores = [
            ScoreReason(column, profile.get(column), profile.get(reason) if reason else None)
            for column, reason in SCORE_REASONS
        ]
        months: list[MonthPoint] = []
        orders: list[dict[str, Any]] = []
        interactions: list[dict[str, Any]] = []
        feedback: list[dict[str, Any]] = []
        with self.warehouse() as con:
            available = con is not None
            if con is not None:
                tables = set(con.list_tables())
                end = datetime.combine(detail.as_of + timedelta(days=1), time())
                if "orders" in tables:
                    months, orders = _order_history(con, customer_id, end)
                if "interactions" in tables:
                    interactions = _latest(
                        con, "interactions", customer_id, "occurred_at", end, INTERACTION_FIELDS
                    )
                if "feedback" in tables:
                    feedback = _latest(
                        con, "feedback", customer_id, "responded_at", end, FEEDBACK_FIELDS
                    )
        return Customer360(
            run_id=detail.run_id,
            as_of=detail.as_of,
            profile=profile,
            scores=scores,
            churn_reasons=_reasons(profile.get("churn_reasons")),
            warehouse_available=available,
            months=months,
            orders=[for_viewer(viewer, r) for r in orders],
            interactions=[for_viewer(viewer, r) for r in interactions],
            feedback=[_masked_comment(viewer, for_viewer(viewer, r)) for r in feedback],
        )

    def data(self, viewer: Viewer) -> DataPage:
        """The last ingests, the quality report and recent rejects (operators only: they
        describe every table, not the viewer's customers). Reject text is masked without
        pii:read: a rejected line of the customer file holds names and phones."""
        require_operator(viewer, "read the ingest ledger")
        with self.warehouse() as con:
            if con is None:
                return DataPage(False, [], None, [])
            tables = set(con.list_tables())
            ledger: list[dict[str, Any]] = []
            rejects: list[dict[str, Any]] = []
            if LEDGER in tables:
                t = con.table(LEDGER)
                ledger = (
                    t.order_by([ibis.desc("started_at"), "table_name"])
                    .drop("sha256")
                    .limit(RECENT_ROWS)
                    .to_pyarrow()
                    .to_pylist()
                )
                if QUARANTINE in tables:
                    q = con.table(QUARANTINE)
                    joined = q.join(t.select("ingest_id", "started_at"), "ingest_id")
                    rejects = (
                        joined.order_by([ibis.desc("started_at"), "source", "line"])
                        .limit(RECENT_ROWS)
                        .to_pyarrow()
                        .to_pylist()
                    )
            quality = latest_report(con)
        return DataPage(True, ledger, quality, [_masked_reject(viewer, r) for r in rejects])

    def runs(self, viewer: Viewer) -> RunsPage:
        operator = viewer.role in OPERATOR_ROLES
        history: list[RunRecord] = []
        with self.warehouse() as con:
            available = con is not None
            if con is not None and RUNS in con.list_tables():
                t = con.table(RUNS)
                rows = t.order_by(ibis.desc("started_at")).limit(50).to_pyarrow().to_pylist()
                history = [_run_record(r, operator) for r in rows]
        return RunsPage(list_runs(self.store), available, history, operator)


def _as_date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


def _reasons(text: Any) -> list[str]:
    """`churn_reasons` is stored as "reason; reason; reason"."""
    return [part.strip() for part in str(text).split(";") if part.strip()] if text else []


def _model_summary(models: Mapping[str, Any]) -> ModelSummary:
    purchase = models.get("purchase") or {}
    spend = models.get("spend") or {}
    churn = models.get("churn") or {}
    return ModelSummary(
        purchase_model=purchase.get("model"),
        purchase_params=dict(purchase.get("params") or {}),
        spend_params=dict(spend.get("params") or {}),
        churn_validated_at=churn.get("validated_at"),
        churn_window_days=churn.get("window_days"),
        churn_scorers=[
            ChurnScorer(
                name,
                m.get("roc_auc"),
                m.get("pr_auc"),
                m.get("top_decile_lift"),
                m.get("ece"),
            )
            for name, m in (churn.get("validation") or {}).items()
        ],
        skipped=dict(models.get("skipped") or {}),
    )


INTERACTION_FIELDS = ("occurred_at", "kind", "channel", "outcome", "handled_by", "resolved_at")
FEEDBACK_FIELDS = ("responded_at", "survey", "csat", "nps", "comment")


def _latest(
    con: BaseBackend,
    table: str,
    customer_id: str,
    time_column: str,
    end: datetime,
    fields: tuple[str, ...],
) -> list[dict[str, Any]]:
    t = con.table(table)
    rows = (
        t.filter((t.customer_id == customer_id) & (t[time_column] < end))
        .order_by(ibis.desc(time_column))
        .select(*fields)
        .limit(RECENT_ROWS)
    )
    return list(rows.to_pyarrow().to_pylist())


def _order_history(
    con: BaseBackend, customer_id: str, end: datetime
) -> tuple[list[MonthPoint], list[dict[str, Any]]]:
    """Orders per month and the latest orders (one row per order, lines summed)."""
    o = con.table("orders")
    mine = o.filter((o.customer_id == customer_id) & (o.ordered_at < end))
    per_order = mine.group_by("order_id").aggregate(
        ordered_at=mine.ordered_at.min(), amount=mine.amount.sum(), lines=mine.count()
    )
    monthly = (
        per_order.group_by(month=per_order.ordered_at.truncate("M"))
        .aggregate(orders=per_order.count(), revenue=per_order.amount.sum())
        .order_by("month")
        .to_pyarrow()
        .to_pylist()
    )
    recent = (
        per_order.order_by([ibis.desc("ordered_at"), "order_id"])
        .limit(RECENT_ROWS)
        .to_pyarrow()
        .to_pylist()
    )
    months = [
        MonthPoint(_as_date(r["month"]), int(r["orders"]), float(r["revenue"] or 0.0))
        for r in monthly
    ]
    return months, recent


def _masked_comment(viewer: Viewer, row: dict[str, Any]) -> dict[str, Any]:
    """Survey comments are free text and may name people: masked without pii:read."""
    if not can(viewer, PII_READ) and row.get("comment"):
        row["comment"] = mask_text(str(row["comment"]))
    return row


def _masked_reject(viewer: Viewer, row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    if not can(viewer, PII_READ):
        if row.get("raw"):
            row["raw"] = mask_text(str(row["raw"]))
        if row.get("value") is not None and row.get("column_name"):
            # masked when the rejected column is personal by name (phone, name, email...)
            row["value"] = for_viewer(viewer, {row["column_name"]: row["value"]})[
                row["column_name"]
            ]
    return row


def _run_record(row: Mapping[str, Any], operator: bool) -> RunRecord:
    seconds = None
    if row.get("stage_seconds"):
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            seconds = round(sum(json.loads(row["stage_seconds"]).values()), 3)
    return RunRecord(
        run_id=row["run_id"],
        as_of=row.get("as_of"),
        status=row.get("status") or "unknown",
        started_at=row.get("started_at"),
        finished_at=row.get("finished_at"),
        customers=row.get("customers"),
        seconds=seconds,
        error=row.get("error") if operator else None,
    )
