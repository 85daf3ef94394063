"""Run the benchmark suite: `make bench`, `make bench-large`, or a quick smoke pass.

    python -m bench.run            # 1M and 10M order lines, Spark at 1M, model fits (< 20 min)
    python -m bench.run --large    # 100M order lines / 5M customers (data build: ~45 min once)
    python -m bench.run --smoke    # tiny sizes of everything, about a minute once data exist
    python -m bench.run --only engine models

Results go to bench/results/<benchmark>[-large|-smoke].{md,json}; a full or large run also
rewrites the results section of bench/README.md and the peak-RSS table (memory.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

from bench import engine, load, models, recs, spark
from bench.common import RESULTS, write_results

README = Path(__file__).parent / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"

PROFILES: dict[str, dict[str, dict]] = {
    "smoke": {
        "engine": {"sizes": [(2_000, 10, 1)], "repeats": 2},
        "spark": {"customers": 2_000, "repeats": 1},
        "models": {"customers": [2_000], "repeats": 2},
        "load": {"customers": 2_000, "users": 5, "seconds": 5},
        "recs": {"customers": 2_000, "repeats": 1, "rules_keep": (5, 2), "als_mod": 2},
    },
    "default": {
        "engine": {
            "sizes": [(100_000, 10, 3), (1_000_000, 10, 1)],
            "repeats": 3,
        },
        "spark": {"customers": 100_000, "repeats": 2, "driver_memory": "6g"},
        "models": {"customers": [100_000, 1_000_000], "repeats": 3},
    },
    "large": {
        # 4 GB: at 2 GB (the default) the 5M-customer profiles query ran out of memory on some
        # tries and passed on others; see bench/README.md
        "engine": {
            "sizes": [(5_000_000, 20, 1)],
            "repeats": 2,
            "consume": True,
            "memory_limit": "4GB",
        },
    },
}


def run_engine(cfg: dict, suffix: str) -> None:
    if "memory_limit" in cfg:  # every child reads it through Settings
        os.environ["TIERWISE_WAREHOUSE__MEMORY_LIMIT"] = cfg["memory_limit"]
    results = [
        engine.bench(
            customers,
            cfg["repeats"],
            run_repeats=runs,
            lines_per_customer=per,
            consume=cfg.get("consume", False),
        )
        for customers, per, runs in cfg["sizes"]
    ]
    limit = os.environ.get("TIERWISE_WAREHOUSE__MEMORY_LIMIT", "2GB (default)")
    md = engine.table(results) + f"\n\nDuckDB memory_limit: {limit}.\n"
    print(md)
    print("written:", write_results(f"engine{suffix}", results, md, memory_limit=limit))


def run_load(cfg: dict, suffix: str) -> None:
    rows, md = load.bench(cfg["customers"], cfg["users"], cfg["seconds"])
    print(md)
    print("written:", write_results(f"load{suffix}", rows, md, customers=cfg["customers"]))


def run_spark(cfg: dict, suffix: str) -> None:
    res = spark.bench(cfg["customers"], cfg["repeats"], driver_memory=cfg.get("driver_memory"))
    md = spark.table(res)
    print(md)
    print("written:", write_results(f"spark{suffix}", [res], md))


def run_models(cfg: dict, suffix: str) -> None:
    results = [models.bench(c, cfg["repeats"]) for c in cfg["customers"]]
    md = models.table(results)
    print(md)
    print("written:", write_results(f"models{suffix}", results, md))


def run_recs(cfg: dict, suffix: str) -> None:
    res = recs.bench(cfg["customers"], cfg["repeats"], cfg["rules_keep"], cfg["als_mod"])
    md = recs.table(res)
    print(md)
    print("written:", write_results(f"recs{suffix}", [res], md))


RUNNERS = {
    "engine": run_engine,
    "spark": run_spark,
    "models": run_models,
    "load": run_load,
    "recs": run_recs,
}


def memory_table() -> str | None:
    """Peak RSS of `tierwise run` at every size measured so far (engine.json, engine-large.json)."""
    rows = []
    for name in ("engine", "engine-large"):
        path = RESULTS / f"{name}.json"
        if path.exists():
            rows += json.loads(path.read_text())["rows"]
    if not rows:
        return None
    md = [
        "| order lines | customers | warehouse file GB | tierwise run peak RSS MiB | "
        "floor peak RSS MiB | pandas peak RSS MiB | run median s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["lines"]):
        runs = r["runs"]

        def peak(name: str, runs: dict = runs) -> str:
            return f"{max(x['peak_rss_mib'] for x in runs[name]):,.0f}" if name in runs else "—"

        secs = sorted(x["seconds"] for x in runs["tierwise run"])
        md.append(
            f"| {r['lines']:,} | {r['customers']:,} | {r['warehouse_bytes'] / 1e9:.1f} | "
            f"{peak('tierwise run')} | {peak('duckdb GROUP BY (floor)')} | {peak('pandas RFM')} | "
            f"{secs[len(secs) // 2]:.1f} |"
        )
    return "\n".join(md)


def update_readme() -> None:
    """Paste the latest result tables between the README's markers."""
    parts = []
    for name in ("engine", "engine-large", "memory", "spark", "models"):
        path = RESULTS / f"{name}.md"
        if path.exists():
            parts.append(path.read_text().strip())
    text = README.read_text(encoding="utf-8")
    block = f"{START}\n\n" + "\n\n".join(parts) + f"\n\n{END}"
    text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    README.write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--large", action="store_true", help="100M order lines / 5M customers")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes, about a minute")
    ap.add_argument("--only", nargs="+", choices=sorted(RUNNERS), help="run only these")
    args = ap.parse_args()
    profile = "large" if args.large else "smoke" if args.smoke else "default"
    suffix = {"large": "-large", "smoke": "-smoke", "default": ""}[profile]
    t0 = time.perf_counter()
    for name, cfg in PROFILES[profile].items():
        if args.only and name not in args.only:
            continue
        print(f"== {name} ({profile})", flush=True)
        RUNNERS[name](cfg, suffix)
    if profile != "smoke":
        memory = memory_table()
        if memory:
            print("written:", write_results("memory", [], memory))
        update_readme()
    print(f"bench.run {profile}: {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
