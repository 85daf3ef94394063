"""Spark: `tierwise run` with `warehouse.engine = "pyspark"` (local[2]) vs the DuckDB default.

    python -m bench.spark --customers 100000 --repeats 3

Tierwise's Spark session uses Spark's in-memory catalog, so tables written by one process are not
visible to the next (a second process even fails on the leftover table directories). Each Spark
process therefore loads the canonical tables itself, copied from the ingested DuckDB warehouse
through Parquet files (DuckDB writes, Spark reads) — ingesting on Spark would also work but
costs minutes per process (see the README). Load time is reported, not timed.

Both contenders run in one process each: an untimed first run (the check), then `repeats`
timed runs. The Spark process compares its first run's profiles with the DuckDB reference and
stops before timing if any score, class, stage or number differs. The models stage is off on
both sides: it fits and scores in pandas / scipy / LightGBM on the driver whatever the engine, so
it would only add the same minutes to both; this compares the warehouse engines.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import datasets
from bench.common import child, span, summarise, write_results

EXACT = (
    "orders",
    "order_lines",
    "order_days",
    "recency_days",
    "tenure_days",
    "categories",
    "r_score",
    "f_score",
    "m_score",
    "rfm_code",
    "rfm_segment",
    "rfm_class8",
    "abc_class",
    "value_tier",
    "lifecycle_stage",
)
"""Must agree exactly, or the benchmark stops before timing."""

DUCKDB = """
from pathlib import Path
from typing import Any
from tierwise.core.settings import Settings
from tierwise.services import warehouse as wh
from tierwise.services.run import current_run, run, snapshot_table
from bench.spark import timed_run
settings = Settings.load(Path({config!r}))
first = timed_run(run, settings)
con = wh.connect(settings)
con.table(snapshot_table("profiles", current_run(con)[0])).to_parquet({reference!r})
del con
result = {{"first": first, "runs": [timed_run(run, settings) for _ in range({repeats})]}}
"""

SPARK = """
import tempfile
import time
from pathlib import Path
from typing import Any
import duckdb
from tierwise.core.contracts import TABLES
from tierwise.core.settings import Settings
from tierwise.services import warehouse as wh
from tierwise.services.run import current_run, run, snapshot_table
from bench.spark import compare, timed_run
settings = Settings.load(Path({config!r}))
t0 = time.perf_counter()
con = wh.connect(settings)
start_seconds = time.perf_counter() - t0
src = duckdb.connect({pristine!r}, read_only=True)
tables = src.execute("select table_name from information_schema.tables").fetchall()
present = {{row[0] for row in tables}}
t0 = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    for name in TABLES:
        if name in present:
            path = f"{{tmp}}/{{name}}.parquet"
            src.execute(f"COPY {{name}} TO '{{path}}' (FORMAT parquet)")
            con.create_table(name, con.read_parquet(path))
load_seconds = time.perf_counter() - t0
src.close()
first = timed_run(run, settings)
profiles = con.table(snapshot_table("profiles", current_run(con)[0])).to_pandas()
differences = compare({reference!r}, profiles)
result = {{
    "session_seconds": start_seconds,
    "load_seconds": load_seconds,
    "first": first,
    "differences": differences,
    "runs": [timed_run(run, settings) for _ in range({repeats})],
}}
"""


def timed_run(run: Any, settings: Any) -> dict:
    """One `tierwise run`, timed up to the start of its publish stage and in full.

    Stage durations come from the run's `on_stage` callback. A failing publish (the warehouse
    run itself succeeded and is current) is recorded instead of raised, so the engines are
    still compared on the warehouse work.
    """
    import time

    from tierwise.services.run import PublishError

    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    error = None
    try:
        run(settings, on_stage=lambda name: marks.append((name, time.perf_counter())))
    except PublishError as e:
        error = str(e)
    end = time.perf_counter()
    bounds = [t for _, t in marks[1:]] + [end]
    stages = {name: round(b - t, 3) for (name, t), b in zip(marks, bounds, strict=True)}
    before_publish = dict(marks).get("publish", end)
    return {
        "seconds": before_publish - t0,
        "with_publish": end - t0,
        "stages": stages,
        "publish_error": error,
    }


def compare(reference: str, profiles: pd.DataFrame) -> dict[str, str]:
    """Columns that differ from the DuckDB reference, with an example; raises if a core one does."""
    ref = pd.read_parquet(reference).set_index("customer_id").sort_index()
    got = profiles.set_index("customer_id").sort_index()
    if not ref.index.equals(got.index):
        raise AssertionError(f"Spark profiled {len(got)} customers, DuckDB {len(ref)}")
    differing: dict[str, str] = {}
    for col in ref.columns:
        a, b = ref[col], got[col]
        if pd.api.types.is_float_dtype(a) and pd.api.types.is_numeric_dtype(b):
            x, y = a.to_numpy(float), b.to_numpy(float)
            bad = ~np.isclose(x, y, rtol=1e-9, atol=1e-9, equal_nan=True)
        else:
            both_null = a.isna().to_numpy() & b.isna().to_numpy()
            bad = (a.astype(object).to_numpy() != b.astype(object).to_numpy()) & ~both_null
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            differing[col] = f"{int(bad.sum())} rows, e.g. {a.iloc[i]!r} vs {b.iloc[i]!r}"
    core = [c for c in differing if c in EXACT]
    if core:
        raise AssertionError(f"Spark and DuckDB profiles differ: {differing}")
    return differing


def spark_config(root: Path) -> Path:
    """tierwise.toml with the Spark warehouse instead of the DuckDB file (fresh directory)."""
    text = (root / "tierwise.toml").read_text(encoding="utf-8")
    duck = '[warehouse]\npath = "warehouse.duckdb"\n'
    if duck not in text:
        raise ValueError(f"unexpected [warehouse] section in {root / 'tierwise.toml'}")
    text = text.replace(duck, '[warehouse]\nengine = "pyspark"\npath = "spark-warehouse"\n')
    path = root / "spark.toml"
    path.write_text(text, encoding="utf-8")
    shutil.rmtree(root / "spark-warehouse", ignore_errors=True)
    return path


def bench(customers: int, repeats: int, *, driver_memory: str | None = None) -> dict[str, object]:
    """`driver_memory` overrides tierwise's spark.driver.memory (2g), which runs out of heap
    at 1M order lines."""
    root = datasets.generated(customers)
    lines = datasets.order_lines(root)
    reference = root / "check" / "spark-reference.parquet"
    reference.parent.mkdir(exist_ok=True)
    print(f"spark: {lines:,} order lines — DuckDB reference and runs", flush=True)
    env = datasets.run_env(root, models=False)
    duck = child(
        DUCKDB.format(
            config=str(datasets.fresh_warehouse(root)), reference=str(reference), repeats=repeats
        ),
        env=env,
    )
    code = SPARK.format(
        config=str(spark_config(root)),
        pristine=str(root / "ingested.duckdb"),
        reference=str(reference),
        repeats=repeats,
    )
    print("spark: load, check, runs", flush=True)
    if driver_memory:
        env |= {"PYSPARK_SUBMIT_ARGS": f"--driver-memory {driver_memory} pyspark-shell"}
    spark = child(code, env=env)
    shutil.rmtree(root / "spark-warehouse", ignore_errors=True)
    return {
        "customers": customers,
        "lines": lines,
        "repeats": repeats,
        "driver_memory": driver_memory or "2g (tierwise default)",
        "duckdb": duck,
        "spark": spark,
    }


def table(res: dict) -> str:
    duck, spark = res["duckdb"], res["spark"]

    def secs(r: dict, key: str = "seconds") -> list[float]:
        return [x[key] for x in r["runs"]]

    base = summarise(secs(duck))["median"]
    md = [
        "| order lines | engine | run up to publish: median s (min–max) | × DuckDB | "
        "with publish: median s | peak RSS MiB (driver + JVM) |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in (("DuckDB", duck), ("PySpark local[2]", spark)):
        rss = r["peak_rss_mib"] + r["peak_rss_children_mib"]
        failed = any(x["publish_error"] for x in r["runs"])
        full = "publish failed" if failed else f"{summarise(secs(r, 'with_publish'))['median']:.2f}"
        md.append(
            f"| {res['lines']:,} | {label} | {span(secs(r))} | "
            f"{summarise(secs(r))['median'] / base:.1f} | {full} | {rss:,.0f} |"
        )
    stages = list(dict.fromkeys(k for r in (duck, spark) for x in r["runs"] for k in x["stages"]))
    md += ["", "| engine | " + " | ".join(stages) + " |", "|---|" + "---|" * len(stages)]
    for label, r in (("DuckDB", duck), ("PySpark", spark)):
        med = {k: summarise([x["stages"].get(k, 0.0) for x in r["runs"]])["median"] for k in stages}
        md.append(f"| {label} | " + " | ".join(f"{med[k]:.2f}" for k in stages) + " |")
    errors = {x["publish_error"] for x in spark["runs"] if x["publish_error"]}
    md += [
        "",
        f"{len(spark['runs'])} timed runs each after one checked run. "
        "`tierwise run` with the models stage off on both engines. "
        f"Spark driver memory {res['driver_memory']}; session start "
        f"{spark['session_seconds']:.0f} s, loading the canonical tables from DuckDB "
        f"{spark['load_seconds']:.0f} s, first (checked, untimed) run "
        f"{spark['first']['seconds']:.0f} s. "
        "Scores, classes, stages and counts identical to DuckDB"
        + (
            "; other columns that differ (DuckDB vs Spark): "
            + "; ".join(f"`{k}` {v}" for k, v in spark["differences"].items())
            + "."
            if spark["differences"]
            else "; every other column equal too (floats within 1e-9)."
        )
        + (f" Publishing failed on Spark: {sorted(errors)[0][:300]}" if errors else ""),
    ]
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--driver-memory", help="e.g. 6g; default: tierwise's 2g")
    args = ap.parse_args()
    res = bench(args.customers, args.repeats, driver_memory=args.driver_memory)
    md = table(res)
    print(md)
    print("written:", write_results("spark", [res], md))


if __name__ == "__main__":
    main()
