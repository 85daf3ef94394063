"""Ingest throughput: `tierwise ingest` of an orders CSV vs DuckDB's own read_csv (the floor).

    python -m bench.ingest --lines 10000000 --repeats 1

Each contender runs in its own process (peak RSS is per process), alternating, `--repeats` times.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from bench.common import DATA, summarise, timed_subprocess, write_results


def make_orders_csv(lines: int, path: Path, seed: int = 0) -> Path:
    """Order lines with string ids (leading zeros), timestamps, amounts; written in chunks."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    customers = max(lines // 10, 1)
    start = np.datetime64("2023-01-01T00:00:00")
    with pacsv.CSVWriter(
        path,
        pa.schema(
            [
                (n, pa.string())
                for n in (
                    "customer_id",
                    "order_id",
                    "ordered_at",
                    "amount",
                    "quantity",
                    "product_id",
                    "category",
                    "channel",
                )
            ]
        ),
    ) as w:
        for offset in range(0, lines, 1_000_000):
            n = min(1_000_000, lines - offset)
            cust = rng.integers(0, customers, n)
            seconds = rng.integers(0, 3 * 365 * 86400, n)
            w.write_table(
                pa.table(
                    {
                        "customer_id": pa.array([f"{c:08d}" for c in cust]),
                        "order_id": pa.array([f"SO{offset + i:010d}" for i in range(n)]),
                        "ordered_at": pa.array(
                            (start + seconds.astype("timedelta64[s]")).astype(str)
                        ),
                        "amount": pa.array(np.round(rng.gamma(2.0, 60.0, n), 2).astype(str)),
                        "quantity": pa.array(rng.integers(1, 5, n).astype(str)),
                        "product_id": pa.array([f"P{p:05d}" for p in rng.integers(0, 20_000, n)]),
                        "category": pa.array(rng.choice(["数码", "服饰", "美妆", "食品"], n)),
                        "channel": pa.array(rng.choice(["app", "web", "store"], n)),
                    }
                )
            )
    return path


TIERWISE = """
from pathlib import Path
from tierwise.core.settings import Settings
from tierwise.services.ingest import ingest
root = Path({root!r})
(root / "warehouse.duckdb").unlink(missing_ok=True)
s = Settings.load(root / "tierwise.toml")
[f] = ingest(s).files
assert f.status == "loaded" and f.reconciles, f
print("rows", f.accepted)
"""

DUCKDB = """
import duckdb
from pathlib import Path
root = Path({root!r})
(root / "floor.duckdb").unlink(missing_ok=True)
con = duckdb.connect(str(root / "floor.duckdb"))
con.execute("create table orders as select * from read_csv(?, all_varchar=true)", [{csv!r}])
print("rows", con.execute("select count(*) from orders").fetchall()[0][0])
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    root = DATA / f"ingest-{args.lines}"
    csv = make_orders_csv(args.lines, root / "orders.csv")
    (root / "tierwise.toml").write_text('[sources.orders]\npath = "orders.csv"\n')
    times: dict[str, list[float]] = {"tierwise ingest": [], "duckdb read_csv": []}
    rss: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, code in (("tierwise ingest", TIERWISE), ("duckdb read_csv", DUCKDB)):
            dt, peak, _ = timed_subprocess(code.format(root=str(root), csv=str(csv)))
            times[name].append(dt)
            rss[name] = max(rss.get(name, 0.0), peak)
    floor = summarise(times["duckdb read_csv"])["median"]
    rows, md = (
        [],
        [
            "| contender | median s | min–max s | rows/s | peak RSS MiB | × floor |",
            "|---|---|---|---|---|---|",
        ],
    )
    for name, samples in times.items():
        s = summarise(samples)
        rows.append({"contender": name, "lines": args.lines, **s, "peak_rss_mib": rss[name]})
        md.append(
            f"| {name} | {s['median']:.2f} | {s['min']:.2f}–{s['max']:.2f} | "
            f"{args.lines / s['median']:,.0f} | {rss[name]:,.0f} | "
            f"{s['median'] / floor:.1f} |"
        )
    table = "\n".join(md)
    print(table)
    print("written:", write_results(f"ingest-{args.lines}", rows, table))
    (root / "floor.duckdb").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
