"""Engine: `tierwise run` vs a bare DuckDB GROUP BY (the floor) vs an idiomatic pandas RFM.

    python -m bench.engine --customers 100000 --repeats 3

The data are ingested once (bench/data, cached). Before timing, the contenders' results are
compared: the floor's per-customer orders / revenue / first and last order equal the profile's,
and pandas' R/F/M scores equal ours for every customer with orders. Our side of the check is
`build_profiles` — the expression the run's profiles stage writes — executed on the warehouse
(a full run at 1M customers costs many minutes). Then the contenders run in alternating fresh
processes; each times only its own work (imports and settings excluded) and reports its peak
RSS. Every timed run is a full `tierwise run` (models, publish to a store of its own).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from bench import datasets
from bench.common import alternate, child, cli, span, summarise

PANDAS_MAX_LINES = 20_000_000
"""pandas holds every order line in memory; above this it is left out (see the README)."""

PROFILES = """
import time
from pathlib import Path
from tierwise.core.contracts import TABLES
from tierwise.core.settings import Settings
from tierwise.engine import build_profiles
from tierwise.services.warehouse import duckdb_connect
settings = Settings.load(Path({config!r}))
con = duckdb_connect({warehouse!r}, read_only=True, memory_limit=settings.warehouse.memory_limit)
present = set(con.list_tables())
tables = {{name: con.table(name) for name in TABLES if name in present}}
t0 = time.perf_counter()
p = build_profiles(
    tables, as_of=settings.scoring.as_of, scoring=settings.scoring, lifecycle=settings.lifecycle
)
p.select(
    "customer_id", "orders", "revenue", "first_order_at", "last_order_at", "recency_days",
    "r_score", "f_score", "m_score",
).to_parquet({export!r})
result = {{"seconds": time.perf_counter() - t0}}
"""

RUN = """
import time
from pathlib import Path
from tierwise.core.settings import Settings
from tierwise.services.run import run
settings = Settings.load(Path({config!r}))
t0 = time.perf_counter()
r = run(settings)
seconds = time.perf_counter() - t0
result = {{"seconds": seconds, "stages": r.stage_seconds, "customers": r.customers}}
"""

FLOOR_SQL = """
CREATE OR REPLACE TABLE _bench_floor AS
SELECT customer_id,
       count(DISTINCT order_id) AS orders,
       sum(amount) AS revenue,
       min(ordered_at) AS first_order_at,
       max(ordered_at) AS last_order_at
FROM orders
GROUP BY customer_id
"""

FLOOR = """
import time
from pathlib import Path
import duckdb
from tierwise.core.settings import Settings
settings = Settings.load(Path({config!r}))
con = duckdb.connect({warehouse!r}, config={{"memory_limit": settings.warehouse.memory_limit}})
t0 = time.perf_counter()
con.execute({sql!r})
seconds = time.perf_counter() - t0
export = {export!r}
if export:
    con.execute(f"COPY _bench_floor TO '{{export}}' (FORMAT parquet)")
con.execute("DROP TABLE _bench_floor")
con.close()
result = {{"seconds": seconds}}
"""

PANDAS = """
import time
from bench.engine import pandas_rfm
t0 = time.perf_counter()
scores = pandas_rfm({files!r}, {as_of!r})
seconds = time.perf_counter() - t0
export = {export!r}
if export:
    scores.to_parquet(export)
result = {{"seconds": seconds, "customers": len(scores)}}
"""


def pandas_rfm(files: list[str], as_of: str) -> pd.DataFrame:
    """R/F/M scores the way a pandas user would write them, with DESIGN.md's quantile rule."""
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    columns = ["customer_id", "order_id", "ordered_at", "amount"]
    orders = pd.concat([pd.read_parquet(f, columns=columns) for f in files], ignore_index=True)
    orders = orders[orders["ordered_at"] < end]
    per_customer = orders.groupby("customer_id").agg(
        orders=("order_id", "nunique"),
        revenue=("amount", "sum"),
        last_order_at=("ordered_at", "max"),
    )
    per_customer["recency_days"] = (
        pd.Timestamp(as_of) - per_customer["last_order_at"].dt.normalize()
    ).dt.days
    n = len(per_customer)

    def score(goodness: pd.Series) -> pd.Series:
        rank_min = goodness.rank(method="min")
        return (1 + (5 * (rank_min - 1)) // n).astype("int64")

    per_customer["r_score"] = score(-per_customer["recency_days"])
    per_customer["f_score"] = score(per_customer["orders"])
    per_customer["m_score"] = score(per_customer["revenue"])
    return per_customer.reset_index()


def _m_score_mismatches(ours: pd.DataFrame, other: pd.DataFrame) -> tuple[int, int]:
    """(unexplained, explained) M-score differences.

    Revenue is a floating-point sum whose last bits depend on summation order, which differs
    between DuckDB and pandas. Two customers with the same revenue in exact arithmetic can then
    compare unequal, and a tie at a score boundary splits differently. A difference is explained
    when it is one score step and the customer's revenue has another customer within 1e-9
    relative of it (a float tie); anything else is a real disagreement.
    """
    bad = ours["m_score"].to_numpy() != other["m_score"].to_numpy()
    if not bad.any():
        return 0, 0
    revenue = np.sort(ours["revenue"].to_numpy(float))
    v = ours["revenue"].to_numpy(float)[bad]
    tol = 1e-9 * np.abs(v) + 1e-9
    close = np.searchsorted(revenue, v + tol, "right") - np.searchsorted(revenue, v - tol, "left")
    step = np.abs(ours["m_score"].to_numpy()[bad] - other["m_score"].to_numpy()[bad]) == 1
    explained = (close >= 2) & step
    return int((~explained).sum()), int(explained.sum())


def check(profiles: Path, floor: Path, pandas: Path | None) -> dict[str, object]:
    """Compare the check runs; raises when a contender disagrees with `tierwise run`."""
    ours = pd.read_parquet(profiles)
    ours = ours[ours["orders"] > 0].set_index("customer_id").sort_index()
    f = pd.read_parquet(floor).set_index("customer_id").sort_index()
    problems = []
    if not ours.index.equals(f.index):
        problems.append(f"floor has {len(f)} customers with orders, run has {len(ours)}")
    else:
        for col in ("orders", "first_order_at", "last_order_at"):
            bad = int((ours[col].to_numpy() != f[col].to_numpy()).sum())
            if bad:
                problems.append(f"floor {col} differs for {bad} customers")
        if not np.allclose(ours["revenue"], f["revenue"], rtol=1e-9, atol=1e-6):
            problems.append("floor revenue differs")
    out: dict[str, object] = {"customers_with_orders": len(ours)}
    if pandas is not None:
        p = pd.read_parquet(pandas).set_index("customer_id").sort_index()
        if not ours.index.equals(p.index):
            problems.append(f"pandas has {len(p)} customers, run has {len(ours)}")
        else:
            for col in ("r_score", "f_score", "orders", "recency_days"):
                bad = int((ours[col].to_numpy() != p[col].to_numpy()).sum())
                if bad:
                    problems.append(f"pandas {col} differs for {bad} customers")
            if not np.allclose(ours["revenue"], p["revenue"], rtol=1e-9, atol=1e-6):
                problems.append("pandas revenue differs")
            unexplained, ties = _m_score_mismatches(ours, p)
            if unexplained:
                problems.append(f"pandas m_score differs for {unexplained} customers")
            out["m_score_float_ties"] = ties
    if problems:
        raise AssertionError("contenders disagree before timing: " + "; ".join(problems))
    out["checked"] = "floor: orders, revenue, first/last order; pandas: R/F/M scores"
    return out


def bench(
    customers: int,
    repeats: int,
    *,
    run_repeats: int | None = None,
    lines_per_customer: int = 10,
    consume: bool = False,
) -> dict[str, object]:
    """`run_repeats` (default `repeats`) caps the timed full runs, which take minutes at 10M+;
    `consume` uses up the pristine warehouse instead of copying it (see fresh_warehouse)."""
    root = datasets.generated(customers, lines_per_customer=lines_per_customer)
    config = datasets.fresh_warehouse(root, consume=consume)
    lines = datasets.order_lines(root)
    files = [str(f) for f in datasets.orders_files(root)]
    from tierwise.core.settings import Settings

    as_of = Settings.load(config).scoring.as_of
    assert isinstance(as_of, date), "the generated tierwise.toml sets scoring.as_of"
    use_pandas = lines <= PANDAS_MAX_LINES
    warehouse = str(root / "warehouse.duckdb")
    warehouse_bytes = (root / "warehouse.duckdb").stat().st_size  # as ingested
    check_dir = root / "check"
    check_dir.mkdir(exist_ok=True)
    print(f"engine: {lines:,} order lines, {customers:,} customers — checking", flush=True)

    env = datasets.run_env(root)

    def floor_code(export: Path | None = None) -> str:
        return FLOOR.format(
            config=str(config),
            warehouse=warehouse,
            sql=FLOOR_SQL,
            export=str(export) if export else None,
        )

    def pandas_code(export: Path | None = None) -> str:
        return PANDAS.format(
            files=files, as_of=as_of.isoformat(), export=str(export) if export else None
        )

    first = child(
        PROFILES.format(
            config=str(config), warehouse=warehouse, export=str(check_dir / "profiles.parquet")
        )
    )
    child(floor_code(check_dir / "floor.parquet"))
    if use_pandas:
        child(pandas_code(check_dir / "pandas.parquet"))
    checked = check(
        check_dir / "profiles.parquet",
        check_dir / "floor.parquet",
        check_dir / "pandas.parquet" if use_pandas else None,
    )
    contenders = {
        "tierwise run": lambda: child(RUN.format(config=str(config)), env=env),
        "duckdb GROUP BY (floor)": lambda: child(floor_code()),
    }
    if use_pandas:
        contenders["pandas RFM"] = lambda: child(pandas_code())
    runs = alternate(contenders, repeats, caps={"tierwise run": run_repeats or repeats})
    return {
        "customers": customers,
        "lines": lines,
        "repeats": repeats,
        "run_repeats": run_repeats or repeats,
        "check_profiles_seconds": first["seconds"],
        "warehouse_bytes": warehouse_bytes,
        "pandas_skipped": not use_pandas,
        **checked,
        "runs": runs,
    }


def stage_medians(runs: list[dict]) -> dict[str, float]:
    names = list(dict.fromkeys(k for r in runs for k in r["stages"]))
    return {n: summarise([r["stages"].get(n, 0.0) for r in runs])["median"] for n in names}


def table(results: list[dict[str, object]]) -> str:
    md = [
        "| order lines | customers | contender | runs | median s (min–max) | × floor "
        "| peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for res in results:
        runs: dict[str, list[dict]] = res["runs"]  # type: ignore[assignment]
        floor = summarise([r["seconds"] for r in runs["duckdb GROUP BY (floor)"]])["median"]
        for name, samples in runs.items():
            secs = [r["seconds"] for r in samples]
            rss = max(r["peak_rss_mib"] for r in samples)
            md.append(
                f"| {res['lines']:,} | {res['customers']:,} | {name} | {len(secs)} | "
                f"{span(secs)} | {summarise(secs)['median'] / floor:.1f} | {rss:,.0f} |"
            )
        if res["pandas_skipped"]:
            md.append(
                f"| {res['lines']:,} | {res['customers']:,} | pandas RFM | 0 | not run "
                f"(> {PANDAS_MAX_LINES:,} lines in memory) | | |"
            )
    for res in results:
        ties = res.get("m_score_float_ties")
        if ties:
            md.append(
                f"\n{res['lines']:,} lines: pandas' M score differs from ours for {ties} "
                "customers, each by one step at a float tie (revenue sums equal to 1e-9 but "
                "added in a different order by DuckDB and pandas); every other score is identical."
            )
    md += ["", "Stages of `tierwise run` (median seconds):", ""]
    stages = [stage_medians(res["runs"]["tierwise run"]) for res in results]  # type: ignore[index]
    names = list(dict.fromkeys(n for s in stages for n in s))
    md.append("| order lines | " + " | ".join(names) + " |")
    md.append("|---|" + "---|" * len(names))
    for res, s in zip(results, stages, strict=True):
        md.append(
            f"| {res['lines']:,} | " + " | ".join(f"{s.get(n, 0.0):.2f}" for n in names) + " |"
        )
    return "\n".join(md)


def main() -> None:
    cli("engine", __doc__, bench, table)


if __name__ == "__main__":
    main()
