"""Recommendations and behaviour clusters of a run, and the evaluation that picks recommenders.

Evaluation is a time split: every configured recommender is fitted on purchases up to
`as_of − cutoff_days` and asked for its top k repeat and new products; what customers bought
after the cutoff is the truth. Baselines (buy-again, popularity) sit next to the models in the
same table, and the best model per kind by the configured metric is what a run then refits on
all purchases up to as_of and uses for every customer. Only bounded data reaches Python: the
sparse purchase matrix, the engine's item neighbours and a sample of test customers; customers
are scored in chunks and spooled to Parquet.

A run also clusters customers by behaviour and keeps the strongest basket association rules;
rules, cluster descriptions and the evaluation go to `<run_id>.behaviour.json` next to the
run's models, per-customer results into the snapshot (and so into the published profile).
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from ibis.backends import BaseBackend

from tierwise.core.contracts import TABLES
from tierwise.core.errors import DataError
from tierwise.core.settings import Settings
from tierwise.engine import build_profiles, latest_order_date
from tierwise.engine.behaviour import (
    FEATURES,
    association_rules,
    behaviour_features,
    customer_products,
    item_neighbours,
    product_catalogue,
)
from tierwise.models.clusters import BehaviourClusters
from tierwise.models.rec_eval import ranking_metrics, split_relevant
from tierwise.models.recommend import (
    ALS,
    KINDS,
    MODELS,
    NEW,
    REPEAT,
    BuyAgain,
    CoOccurrence,
    Interactions,
    Popularity,
    Recommender,
    SegmentPopularity,
)

CHUNK = 50_000
"""Customers recommended for at a time in a run."""
TOP_IDS = 5
"""Product ids in the snapshot's (and the export's) `recommended_product_ids`."""
BASELINE = {REPEAT: BuyAgain.name, NEW: Popularity.name}
"""Used when the evaluation has no test purchases of a kind to judge by."""

REC_TYPE = pa.list_(
    pa.struct(
        [
            ("product_id", pa.string()),
            ("title", pa.string()),
            ("category", pa.string()),
            ("kind", pa.string()),
            ("rank", pa.int64()),
            ("score", pa.float64()),
            ("reason", pa.string()),
            ("related_product_id", pa.string()),
            ("related_title", pa.string()),
        ]
    )
)
SNAPSHOT_COLUMNS = pa.schema(
    [
        ("customer_id", pa.string()),
        ("behaviour_cluster", pa.string()),
        ("recommendations", REC_TYPE),
        ("recommended_product_ids", pa.string()),
    ]
)
"""What the stage adds to each profile (the published profile carries it too)."""


@dataclass(frozen=True)
class ModelScore:
    """One recommender on one kind of item: metrics@k over the customers who bought such items
    after the cutoff, the share of the catalogue it recommended, and its fitting time."""

    model: str
    kind: str
    precision: float | None
    recall: float | None
    ndcg: float | None
    hit_rate: float | None
    customers: int
    coverage: float
    fit_seconds: float


@dataclass(frozen=True)
class RecEvaluation:
    as_of: date
    cutoff: date
    k: int
    metric: str
    train_customers: int
    products: int
    test_customers: int
    """Customers with purchases before and after the cutoff that were scored (sampled)."""
    scores: list[ModelScore]
    best: dict[str, str]
    """Kind → the model runs use; a baseline when nothing could be judged."""
    skipped: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["as_of"], out["cutoff"] = self.as_of.isoformat(), self.cutoff.isoformat()
        return out


# -- inputs ------------------------------------------------------------------------------------


def warehouse_tables(con: BaseBackend) -> dict[str, ir.Table]:
    present = set(con.list_tables())
    if "orders" not in present:
        raise DataError("no orders in the warehouse yet: run `tierwise ingest` first")
    return {name: con.table(name) for name in TABLES if name in present}


def latest_date(orders: ir.Table) -> date:
    value = latest_order_date(orders).execute()
    if value is None:
        raise DataError("the orders table is empty: nothing to recommend from")
    return value.date() if isinstance(value, datetime) else value


def catalogue(tables: Mapping[str, ir.Table]) -> pd.DataFrame:
    """product_id → name, category (the index is the product id)."""
    frame = product_catalogue(tables["orders"], tables.get("products")).to_pandas()
    return frame.set_index("product_id")


def excluded_ids(settings: Settings, cat: pd.DataFrame) -> set[str]:
    """Configured product ids, and every product of an excluded category."""
    r = settings.recommend
    ids = set(r.exclude_products)
    if r.exclude_categories and "category" in cat:
        ids |= {str(p) for p in cat.index[cat["category"].isin(r.exclude_categories)]}
    return ids


def interactions(
    tables: Mapping[str, ir.Table],
    settings: Settings,
    as_of: date,
    *,
    segments: pd.Series | None,
) -> Interactions:
    frame = customer_products(
        tables["orders"], as_of=as_of, half_life_days=settings.recommend.half_life_days
    ).to_pandas()
    return Interactions.from_frame(frame, segments=segments)


def _segments_at(tables: Mapping[str, ir.Table], settings: Settings, as_of: date) -> pd.Series:
    p = build_profiles(tables, as_of=as_of, scoring=settings.scoring, lifecycle=settings.lifecycle)
    frame = p.select("customer_id", "rfm_segment").to_pandas()
    return frame.set_index("customer_id")["rfm_segment"]


def make_model(name: str, settings: Settings) -> Recommender:
    r = settings.recommend
    if name == ALS.name:
        return ALS(
            factors=r.als_factors,
            regularization=r.als_regularization,
            alpha=r.als_alpha,
            iterations=r.als_iterations,
        )
    return MODELS[name]()


def fit_model(
    name: str,
    settings: Settings,
    data: Interactions,
    tables: Mapping[str, ir.Table],
    as_of: date,
) -> Recommender:
    """`name` fitted on `data` (co-occurrence also on the engine's neighbours at as_of)."""
    model = make_model(name, settings)
    if isinstance(model, CoOccurrence):
        neighbours = item_neighbours(
            tables["orders"], as_of=as_of, k=settings.recommend.neighbours
        ).to_pandas()
        return model.fit(data, neighbours)
    return model.fit(data)


# -- evaluation --------------------------------------------------------------------------------


def _sample(ids: np.ndarray, size: int) -> np.ndarray:
    """At most `size` ids, chosen by a stable hash so every backend and run picks the same."""
    if len(ids) <= size:
        return ids
    keys = np.array([zlib.crc32(str(i).encode()) for i in ids], dtype=np.int64)
    return ids[np.lexsort((ids.astype(str), keys))[:size]]


def evaluate_recommenders(
    con: BaseBackend,
    settings: Settings,
    *,
    as_of: date | None = None,
    cutoff_days: int | None = None,
    k: int | None = None,
) -> RecEvaluation:
    """The time-split evaluation of every configured recommender (`tierwise evaluate-recs`)."""
    tables = warehouse_tables(con)
    as_of = as_of or settings.scoring.as_of or latest_date(tables["orders"])
    return evaluate(tables, settings, as_of, cutoff_days=cutoff_days, k=k)


def evaluate(
    tables: Mapping[str, ir.Table],
    settings: Settings,
    as_of: date,
    *,
    cutoff_days: int | None = None,
    k: int | None = None,
) -> RecEvaluation:
    r = settings.recommend
    k = k or r.k
    cutoff = as_of - timedelta(days=cutoff_days or r.cutoff_days)
    cat = catalogue(tables)
    bought = customer_products(tables["orders"], as_of=cutoff, half_life_days=r.half_life_days)
    frame = bought.to_pandas()
    if frame.empty:
        raise DataError(f"no product purchases on or before the cutoff {cutoff}: nothing to learn")
    wanted = SegmentPopularity.name in r.models
    train = Interactions.from_frame(
        frame, segments=_segments_at(tables, settings, cutoff) if wanted else None
    )
    banned = excluded_ids(settings, cat)
    exclude = train.item_mask(banned)
    test = customer_products(
        tables["orders"], as_of=as_of, half_life_days=r.half_life_days, since=cutoff
    )
    test_pairs = test.select("customer_id", "product_id").to_pandas()
    test_pairs = test_pairs[~test_pairs["product_id"].isin(banned)]
    known = test_pairs["customer_id"].isin(train.customers)
    chosen = _sample(test_pairs.loc[known, "customer_id"].unique(), r.eval_customers)
    test_pairs = test_pairs[test_pairs["customer_id"].isin(chosen)]
    rows = train.rows_of(chosen)
    history = _history_pairs(train, rows)
    relevant = split_relevant(history, test_pairs)
    scores: list[ModelScore] = []
    skipped: dict[str, str] = {}
    for name in (m for m in MODELS if m in r.models):
        t0 = time.perf_counter()
        try:
            model = fit_model(name, settings, train, tables, cutoff)
        except DataError as e:
            skipped[name] = str(e)
            continue
        fit_seconds = time.perf_counter() - t0
        for kind in KINDS:
            recs = model.recommend(train, rows, n=k, kind=kind, exclude=exclude)
            metrics = ranking_metrics(recs, relevant[kind], k=k)
            if kind not in model.kinds:  # buy-again has no new items: n/a, not a poor score
                metrics |= dict.fromkeys(("precision", "recall", "ndcg", "hit_rate"), None)
            scores.append(
                ModelScore(
                    model=name,
                    kind=kind,
                    precision=_opt(metrics["precision"]),
                    recall=_opt(metrics["recall"]),
                    ndcg=_opt(metrics["ndcg"]),
                    hit_rate=_opt(metrics["hit_rate"]),
                    customers=int(metrics["customers"] or 0),
                    coverage=recs["product_id"].nunique() / max(len(train.products), 1),
                    fit_seconds=round(fit_seconds, 3),
                )
            )
    return RecEvaluation(
        as_of=as_of,
        cutoff=cutoff,
        k=k,
        metric=r.metric,
        train_customers=len(train.customers),
        products=len(train.products),
        test_customers=len(chosen),
        scores=scores,
        best={kind: best_model(scores, kind, r.metric, r.models) for kind in KINDS},
        skipped=skipped,
    )


EVALUATION_FILE = "rec-evaluation.json"
"""Where `tierwise evaluate-recs` saves its report (next to tierwise.toml); runs use its choice."""


def evaluation_path(settings: Settings) -> Path:
    return settings.resolve(EVALUATION_FILE)


def saved_choice(settings: Settings) -> dict[str, Any] | None:
    """The last saved evaluation, if it judged the models and metric configured now."""
    path = evaluation_path(settings)
    if not path.exists():
        return None
    try:
        saved: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    r = settings.recommend
    best = saved.get("best") or {}
    usable = (
        saved.get("metric") == r.metric
        and saved.get("k") == r.k
        and all(best.get(kind) in r.models for kind in KINDS)
    )
    return saved if usable else None


def save_evaluation(report: RecEvaluation, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(report.as_dict(), indent=2), encoding="utf-8")
    tmp.replace(path)
    return path


def _opt(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def _history_pairs(data: Interactions, rows: np.ndarray) -> pd.DataFrame:
    coo = data.weights[rows].tocoo()
    return pd.DataFrame(
        {"customer_id": data.customers[rows[coo.row]], "product_id": data.products[coo.col]}
    )


def best_model(scores: list[ModelScore], kind: str, metric: str, allowed: Sequence[str]) -> str:
    """The model with the highest `metric` on `kind` (ties and no data: the earlier, simpler
    one in MODELS order, i.e. a baseline); a configured baseline when nothing was judged."""
    judged = [s for s in scores if s.kind == kind and getattr(s, metric) is not None]
    order = list(MODELS)
    if judged:
        best = max(judged, key=lambda s: (getattr(s, metric), -order.index(s.model)))
        return best.model
    fallback = BASELINE[kind]
    return fallback if fallback in allowed else next(m for m in order if m in allowed)


# -- the run stage -----------------------------------------------------------------------------


def behaviour_file(settings: Settings, run_id: str) -> Path:
    """Rules, clusters and the evaluation of a run, next to its pickled models."""
    from tierwise.services.run import model_file

    return model_file(settings, run_id).with_suffix(".behaviour.json")


def attach_behaviour(
    con: BaseBackend,
    tables: Mapping[str, ir.Table],
    settings: Settings,
    *,
    as_of: date,
    run_id: str,
) -> None:
    """Add SNAPSHOT_COLUMNS to the run's profiles and write its behaviour file.

    A part that cannot be computed on the data at hand (no product ids, too few customers)
    is skipped with its reason recorded; its columns stay null.
    """
    from tierwise.services.run import snapshot_table

    started = time.perf_counter()
    name = snapshot_table("profiles", run_id)
    profiles = con.table(name)
    people = profiles.select("customer_id", "rfm_segment").to_pandas()
    report: dict[str, Any] = {"run_id": run_id, "as_of": as_of.isoformat(), "skipped": {}}
    cat = catalogue(tables)
    clusters = _clusters(tables, settings, as_of, report)
    spool = behaviour_file(settings, run_id).with_suffix(".parquet")
    spool.parent.mkdir(parents=True, exist_ok=True)
    try:
        with pq.ParquetWriter(spool, SNAPSHOT_COLUMNS) as writer:
            for chunk in _recommendations(tables, settings, as_of, people, cat, report):
                ids = chunk.column("customer_id").to_pylist()
                cluster = [None if pd.isna(c) else str(c) for c in clusters.reindex(ids)]
                writer.write_table(
                    pa.table(
                        {
                            "customer_id": chunk.column("customer_id"),
                            "behaviour_cluster": pa.array(cluster, pa.string()),
                            "recommendations": chunk.column("recommendations"),
                            "recommended_product_ids": chunk.column("recommended_product_ids"),
                        },
                        schema=SNAPSHOT_COLUMNS,
                    )
                )
        _rules(tables, settings, as_of, cat, report)
        _rewrite(con, name, snapshot_table("recs", run_id), spool)
    finally:
        spool.unlink(missing_ok=True)
    report["seconds"] = round(time.perf_counter() - started, 3)
    path = behaviour_file(settings, run_id)
    tmp = path.with_suffix(".partial")
    tmp.write_text(json.dumps(report, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(path)


def _rewrite(con: BaseBackend, name: str, work: str, spool: Path) -> None:
    """profiles ⟕ the spooled columns, written to `work`, then copied back under the profiles'
    name (Ibis cannot rename a DuckDB table; a copy works on every backend)."""
    profiles = con.table(name)
    extra = con.read_parquet(spool)
    extra = extra.rename(_rid="customer_id")
    joined = profiles.left_join(extra, profiles.customer_id == extra._rid).drop("_rid")
    con.create_table(work, joined, overwrite=True)
    con.create_table(name, con.table(work), overwrite=True)
    con.drop_table(work)


def _clusters(
    tables: Mapping[str, ir.Table], settings: Settings, as_of: date, report: dict[str, Any]
) -> pd.Series:
    """customer_id → behaviour cluster (customers with orders only); empty when skipped."""
    b = settings.behaviour
    if not b.enabled:
        report["skipped"]["clusters"] = "behaviour.enabled = false"
        return pd.Series(dtype=object)
    features = behaviour_features(tables["orders"], tables.get("events"), as_of=as_of)
    # sorted: the fitting sample must not depend on the order a backend returns rows in
    frame = features.to_pandas().set_index("customer_id").sort_index()
    try:
        model = BehaviourClusters(
            k_min=b.clusters_k[0], k_max=b.clusters_k[1], sample_size=b.clusters_sample
        ).fit(frame[list(FEATURES)])
    except DataError as e:
        report["skipped"]["clusters"] = str(e)
        return pd.Series(dtype=object)
    labels = pd.Series(model.predict(frame[list(FEATURES)]), index=frame.index, dtype=object)
    counts = labels.value_counts()
    described = []
    for profile in model.profiles_:
        members = int(counts.get(profile.cluster, 0))
        described.append(
            asdict(profile) | {"customers": members, "share": members / max(len(labels), 1)}
        )
    report["clusters"] = {
        "k": model.k_,
        "silhouettes": {str(k): v for k, v in model.silhouettes_.items()},
        "features": list(FEATURES),
        "clusters": described,
    }
    return labels


def _rules(
    tables: Mapping[str, ir.Table],
    settings: Settings,
    as_of: date,
    cat: pd.DataFrame,
    report: dict[str, Any],
) -> None:
    b = settings.behaviour
    if not b.enabled:
        report["skipped"]["association_rules"] = "behaviour.enabled = false"
        return
    rules = association_rules(
        tables["orders"],
        as_of=as_of,
        min_baskets=b.rules_min_orders,
        min_confidence=b.rules_min_confidence,
    )
    top = rules.order_by(
        [ibis.desc("lift"), ibis.desc("baskets"), "antecedent", "consequent"]
    ).limit(b.rules_max)
    rows = top.to_pyarrow().to_pylist()
    names = _names(cat)
    for row in rows:
        row["antecedent_title"] = names.get(row["antecedent"])
        row["consequent_title"] = names.get(row["consequent"])
    report["association_rules"] = rows


def _names(cat: pd.DataFrame) -> dict[str, str | None]:
    if cat.empty or "name" not in cat:
        return {}
    return {str(k): (None if pd.isna(v) else str(v)) for k, v in cat["name"].items()}


def _recommendations(
    tables: Mapping[str, ir.Table],
    settings: Settings,
    as_of: date,
    people: pd.DataFrame,
    cat: pd.DataFrame,
    report: dict[str, Any],
) -> Iterator[pa.Table]:
    """Chunks of (customer_id, recommendations, recommended_product_ids) for every customer."""
    ids = people["customer_id"].astype(str).to_numpy()
    r = settings.recommend
    fitted = _fit_for_run(tables, settings, as_of, people, cat, report) if r.enabled else None
    if not r.enabled:
        report["skipped"]["recommend"] = "recommend.enabled = false"
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        if fitted is None:
            yield _empty_chunk(chunk)
        else:
            yield fitted.chunk(chunk)


def _empty_chunk(ids: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.string()),
            "recommendations": pa.nulls(len(ids), REC_TYPE),
            "recommended_product_ids": pa.nulls(len(ids), pa.string()),
        }
    )


@dataclass
class _RunModels:
    """The models a run uses and what recommending for a chunk of customers needs."""

    data: Interactions
    repeat: Recommender
    new: Recommender
    popular: Popularity
    exclude: np.ndarray
    n: int
    cat: pd.DataFrame

    def chunk(self, ids: np.ndarray) -> pa.Table:
        rows = self.data.rows_of(ids)
        known = rows[rows >= 0]
        repeat = self.repeat.recommend(
            self.data, known, n=self.n, kind=REPEAT, exclude=self.exclude
        )
        new = self.new.recommend(self.data, known, n=self.n, kind=NEW, exclude=self.exclude)
        popular = self.popular.recommend(self.data, known, n=self.n, kind=NEW, exclude=self.exclude)
        strangers = ids[rows < 0]
        cold = _cold_start(self.popular, self.data, self.exclude, strangers, self.n)
        new = _backfill(pd.concat([new, popular, cold], ignore_index=True), self.n)
        recs = pd.concat([repeat, new], ignore_index=True)
        return _as_lists(ids, recs, self.cat)


def _cold_start(
    popular: Popularity, data: Interactions, exclude: np.ndarray, ids: np.ndarray, n: int
) -> pd.DataFrame:
    """Customers without purchases get the overall top n (allowed) products."""
    ranking = popular.ranking_
    ranking = ranking[~exclude[ranking] & (popular.popularity_[ranking] > 0)][:n]
    return pd.DataFrame(
        {
            "customer_id": np.repeat(ids.astype(object), len(ranking)),
            "product_id": np.tile(data.products[ranking], len(ids)),
            "kind": NEW,
            "rank": np.tile(np.arange(1, len(ranking) + 1), len(ids)),
            "score": np.tile(popular.popularity_[ranking], len(ids)),
            "reason": Popularity.reason.value,
            "related_product_id": None,
        }
    )


def _backfill(frames: pd.DataFrame, n: int) -> pd.DataFrame:
    """New items in order of arrival (the chosen model first, popularity after), n each."""
    frames = frames.assign(_order=np.arange(len(frames)))
    frames = frames.drop_duplicates(["customer_id", "product_id"], keep="first")
    frames = frames.sort_values(["customer_id", "_order"], kind="stable")
    frames["rank"] = frames.groupby("customer_id").cumcount() + 1
    return frames[frames["rank"] <= n].drop(columns="_order")


def _as_lists(ids: np.ndarray, recs: pd.DataFrame, cat: pd.DataFrame) -> pa.Table:
    """One row per customer of `ids`: the list of recommendation structs and the top ids
    (repeat and new interleaved: repeat 1, new 1, repeat 2, …)."""
    names = cat["name"] if "name" in cat else pd.Series(dtype=object)
    categories = cat["category"] if "category" in cat else pd.Series(dtype=object)
    recs = recs.assign(
        title=recs["product_id"].map(names),
        category=recs["product_id"].map(categories),
        related_title=recs["related_product_id"].map(names),
        _kind=(recs["kind"] == NEW).astype(np.int64),
    )
    recs = recs.sort_values(["customer_id", "_kind", "rank"], kind="stable")
    position = pd.Series(np.arange(len(ids)), index=pd.Index(ids.astype(str)))
    where = position.reindex(recs["customer_id"].astype(str)).to_numpy()
    recs = recs.assign(_at=where).sort_values(["_at", "_kind", "rank"], kind="stable")
    counts = np.bincount(recs["_at"].to_numpy(dtype=np.int64), minlength=len(ids))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    struct = pa.StructArray.from_arrays(
        [
            pa.array(_texts(recs["product_id"]), pa.string()),
            pa.array(_texts(recs["title"]), pa.string()),
            pa.array(_texts(recs["category"]), pa.string()),
            pa.array(recs["kind"].tolist(), pa.string()),
            pa.array(recs["rank"].to_numpy(dtype=np.int64), pa.int64()),
            pa.array(recs["score"].to_numpy(dtype=np.float64), pa.float64()),
            pa.array(recs["reason"].tolist(), pa.string()),
            pa.array(_texts(recs["related_product_id"]), pa.string()),
            pa.array(_texts(recs["related_title"]), pa.string()),
        ],
        fields=list(REC_TYPE.value_type),
    )
    lists = pa.ListArray.from_arrays(pa.array(offsets), struct, type=REC_TYPE)
    top = recs.assign(_key=recs["rank"] * 2 + recs["_kind"]).sort_values(["_at", "_key"])
    top = top[top.groupby("_at").cumcount() < TOP_IDS]
    joined = top.groupby("_at")["product_id"].agg(";".join)
    top_ids = joined.reindex(np.arange(len(ids)))
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.string()),
            "recommendations": lists,
            "recommended_product_ids": pa.array(_texts(top_ids), pa.string()),
        }
    )


def _texts(values: pd.Series) -> list[str | None]:
    return [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in values]


def _fit_for_run(
    tables: Mapping[str, ir.Table],
    settings: Settings,
    as_of: date,
    people: pd.DataFrame,
    cat: pd.DataFrame,
    report: dict[str, Any],
) -> _RunModels | None:
    """Refit the best model of each kind on everything up to as_of.

    The best is the choice saved by the last `tierwise evaluate-recs`; without one (or when the
    configured models or metric changed since) the run evaluates once and saves the report, so
    later runs do not pay for the evaluation again.
    """
    r = settings.recommend
    saved = saved_choice(settings)
    if saved is not None:
        report["evaluation"] = saved
        best = dict(saved["best"])
    else:
        try:
            evaluation = evaluate(tables, settings, as_of)
            save_evaluation(evaluation, evaluation_path(settings))
            report["evaluation"] = evaluation.as_dict()
            best = evaluation.best
        except DataError as e:
            report["skipped"]["evaluation"] = str(e)
            best = {kind: best_model([], kind, r.metric, r.models) for kind in KINDS}
    segments = people.set_index("customer_id")["rfm_segment"]
    data = interactions(tables, settings, as_of, segments=segments)
    if data.weights.nnz == 0:
        report["skipped"]["recommend"] = "no orders with product ids: nothing to recommend"
        return None
    report["chosen"] = dict(best)
    models: dict[str, Recommender] = {}
    for name in {*best.values(), Popularity.name}:
        models[name] = fit_model(name, settings, data, tables, as_of)
    popular = models[Popularity.name]
    assert isinstance(popular, Popularity)
    return _RunModels(
        data=data,
        repeat=models[best[REPEAT]],
        new=models[best[NEW]],
        popular=popular,
        exclude=data.item_mask(excluded_ids(settings, cat)),
        n=r.n,
        cat=cat,
    )
