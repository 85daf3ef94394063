"""Recommendations and basket rules at scale: rules over 2M orders × 20k products on DuckDB (peak
RSS), ALS training at 100k customers × 20k products, and the recommender evaluation table.

    python -m bench.recs                      # 2M orders, 100k customers (data: gen-1000000)
    python -m bench.recs --smoke              # the same on the 2,000-customer set

Data: the cached 1M-customer generated warehouse (20,000 products, 10M order lines, 5.1M
orders; `bench.datasets`). Subsets are cut by customer id, so every customer keeps their
whole history: customers with id % 5 < 2 give ≈ 2M orders (written once to Parquet), id % 9 = 0
≈ 100k buying customers (written once to a DuckDB file with the catalogue).

Rules contenders, each in a fresh process: the engine's `association_rules` (a self-join of
distinct (order, product) rows, GROUP BY pair) on DuckDB with the default 2 GB memory_limit,
and a sparse one-hot XᵀX in scipy (baskets × products CSR) as an independent count. Checked
first: both find the same pairs with the same counts (number of pairs, total count, and the
100 most frequent pairs).
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

from bench import datasets
from bench.common import DATA, alternate, child, span, write_results

AS_OF = date(2026, 6, 30)
MIN_ORDERS = 5

PREPARE = """
import duckdb
from pathlib import Path
src, rules_out, als_out = {src!r}, Path({rules!r}), Path({als!r})
con = duckdb.connect()
con.execute(f"ATTACH '{{src}}' AS src (READ_ONLY)")
keep = "TRY_CAST(customer_id AS BIGINT) % {rules_mod} < {rules_keep}"
if not rules_out.exists():
    con.execute(
        f"COPY (SELECT customer_id, order_id, ordered_at, amount, product_id, category "
        f"FROM src.orders WHERE {{keep}}) TO '{{rules_out}}' (FORMAT parquet)"
    )
if not als_out.exists():
    con.execute(f"ATTACH '{{als_out}}' AS dst")
    con.execute(
        "CREATE TABLE dst.orders AS SELECT * FROM src.orders "
        "WHERE TRY_CAST(customer_id AS BIGINT) % {als_mod} = 0"
    )
    con.execute("CREATE TABLE dst.products AS SELECT * FROM src.products")
    con.execute("DETACH dst")
n = con.execute(
    f"SELECT count(*) FROM (SELECT DISTINCT customer_id, order_id FROM '{{rules_out}}')"
).fetchall()[0][0]
result = {{"orders": n}}
"""

RULES_ENGINE = """
import time
from datetime import date
import ibis
from tierwise.engine.behaviour import association_rules
from tierwise.services.warehouse import duckdb_connect
con = duckdb_connect({db!r}, memory_limit="2GB")
orders = con.read_parquet({path!r})
t0 = time.perf_counter()
rules = association_rules(orders, as_of=date.fromisoformat({as_of!r}), min_baskets={min_orders})
con.create_table("rules", rules, overwrite=True)
top = con.table("rules").order_by([ibis.desc("lift"), "antecedent", "consequent"]).limit(1000)
top = top.to_pyarrow()
seconds = time.perf_counter() - t0
stored = con.table("rules")
pairs = stored.filter(stored.antecedent < stored.consequent)
summary = pairs.aggregate(pairs=pairs.count(), total=pairs.baskets.sum())
summary = summary.to_pyarrow().to_pylist()[0]
head = pairs.order_by([ibis.desc("baskets"), "antecedent", "consequent"]).limit(100)
head = [[r["antecedent"], r["consequent"], r["baskets"]] for r in head.to_pyarrow().to_pylist()]
result = {{"seconds": seconds, "rules": stored.count().execute(), "pairs": summary["pairs"],
          "total": summary["total"], "head": head,
          "top_rule": {{k: v for k, v in top.to_pylist()[0].items()}}}}
"""

RULES_SCIPY = """
import time
import numpy as np
import pandas as pd
import scipy.sparse as sp
import pyarrow.parquet as pq
lines = pq.read_table({path!r}, columns=["customer_id", "order_id", "ordered_at", "amount",
                                         "product_id"]).to_pandas()
t0 = time.perf_counter()
lines = lines[(lines.amount > 0) & lines.product_id.notna()
              & (lines.ordered_at < pd.Timestamp({as_of!r}) + pd.Timedelta(days=1))]
basket = lines.customer_id.astype(str) + "\\x1f" + lines.order_id.astype(str)
b, _ = pd.factorize(basket)
p, products = pd.factorize(lines.product_id)
x = sp.csr_matrix((np.ones(len(b), np.float32), (b, p)))
x.data[:] = 1.0  # duplicates summed by the constructor: back to one-hot
co = (x.T @ x).tocoo()
keep = (co.row < co.col) & (co.data >= {min_orders})
a, c, n = co.row[keep], co.col[keep], co.data[keep].astype(np.int64)
seconds = time.perf_counter() - t0
names = np.asarray(products, dtype=str)
first, second = names[a], names[c]
swap = first > second
first, second = np.where(swap, second, first), np.where(swap, first, second)
order = np.lexsort((second, first, -n))[:100]
head = [[str(first[i]), str(second[i]), int(n[i])] for i in order]
result = {{"seconds": seconds, "pairs": int(keep.sum()), "total": int(n.sum()), "head": head}}
"""

ALS_FIT = """
import time
from datetime import date
from tierwise.engine.behaviour import customer_products, item_neighbours
from tierwise.models.recommend import ALS, NEW, Interactions
from tierwise.services.warehouse import duckdb_connect
con = duckdb_connect({db!r}, read_only=True, memory_limit="2GB")
orders = con.table("orders")
as_of = date.fromisoformat({as_of!r})
t0 = time.perf_counter()
frame = customer_products(orders, as_of=as_of, half_life_days=90).to_pandas()
data = Interactions.from_frame(frame)
prepare = time.perf_counter() - t0
t0 = time.perf_counter()
model = ALS(factors=32, iterations=15).fit(data)
seconds = time.perf_counter() - t0
t0 = time.perf_counter()
recs = model.recommend(data, n=10, kind=NEW)
recommend = time.perf_counter() - t0
t0 = time.perf_counter()
neighbours = item_neighbours(orders, as_of=as_of, k=50).to_pyarrow()
cooc = time.perf_counter() - t0
result = {{"seconds": seconds, "prepare_seconds": prepare, "recommend_seconds": recommend,
          "neighbours_seconds": cooc, "neighbour_rows": neighbours.num_rows,
          "customers": len(data.customers), "products": len(data.products),
          "interactions": int(data.weights.nnz), "recommendations": len(recs)}}
"""

EVALUATE = """
import time
from datetime import date
from pathlib import Path
from tierwise.core.settings import Settings
from tierwise.services.recommend import evaluate, warehouse_tables
from tierwise.services.warehouse import duckdb_connect
con = duckdb_connect({db!r}, read_only=True, memory_limit="2GB")
settings = Settings(root=Path({root!r}))
t0 = time.perf_counter()
report = evaluate(warehouse_tables(con), settings, date.fromisoformat({as_of!r}))
result = {{"seconds": time.perf_counter() - t0, "report": report.as_dict()}}
"""


def prepare(customers: int, rules_keep: tuple[int, int], als_mod: int) -> tuple[Path, Path, int]:
    source = datasets.generated(customers) / "ingested.duckdb"
    out = DATA / "recs" / f"gen-{customers}"
    out.mkdir(parents=True, exist_ok=True)
    rules = out / f"orders-mod{rules_keep[0]}lt{rules_keep[1]}.parquet"
    als = out / f"customers-mod{als_mod}.duckdb"
    info = child(
        PREPARE.format(
            src=str(source),
            rules=str(rules),
            als=str(als),
            rules_mod=rules_keep[0],
            rules_keep=rules_keep[1],
            als_mod=als_mod,
        )
    )
    return rules, als, int(info["orders"])


def bench(customers: int, repeats: int, rules_keep: tuple[int, int], als_mod: int) -> dict:
    rules_file, als_db, orders = prepare(customers, rules_keep, als_mod)
    work = rules_file.parent
    print(f"rules: {orders:,} orders from {rules_file.name} — checking", flush=True)
    code = {
        "tierwise engine on DuckDB (2 GB memory_limit)": RULES_ENGINE.format(
            db=str(work / "rules.duckdb"),
            path=str(rules_file),
            as_of=AS_OF.isoformat(),
            min_orders=MIN_ORDERS,
        ),
        "scipy sparse one-hot XᵀX": RULES_SCIPY.format(
            path=str(rules_file), as_of=AS_OF.isoformat(), min_orders=MIN_ORDERS
        ),
    }
    checks = {name: child(c) for name, c in code.items()}
    engine, scipy_ = checks.values()
    for field in ("pairs", "total", "head"):
        if engine[field] != scipy_[field]:
            raise AssertionError(f"pair counts differ in {field}: {engine[field]!r:.300} vs "
                                 f"{scipy_[field]!r:.300}")  # fmt: skip
    runs = alternate({n: (lambda c=c: child(c)) for n, c in code.items()}, repeats)
    print("ALS and evaluation", flush=True)
    als = [child(ALS_FIT.format(db=str(als_db), as_of=AS_OF.isoformat())) for _ in range(repeats)]
    evaluation = child(EVALUATE.format(db=str(als_db), root=str(work), as_of=AS_OF.isoformat()))
    return {
        "customers_source": customers,
        "orders": orders,
        "min_orders": MIN_ORDERS,
        "rules_check": {k: {f: v[f] for f in ("pairs", "total")} for k, v in checks.items()},
        "rules_engine": {k: v for k, v in engine.items() if k != "head"},
        "rules_runs": runs,
        "als_runs": als,
        "evaluation": evaluation,
    }


def table(res: dict) -> str:
    e = res["rules_engine"]
    md = [
        f"**Association rules**: {res['orders']:,} orders (pairs bought together in ≥ "
        f"{res['min_orders']} orders; {e['pairs']:,} pairs, {e['rules']:,} rules both ways, "
        f"identical pair counts in both contenders)",
        "",
        "| contender | median s (min–max) | peak RSS MiB |",
        "|---|---|---|",
    ]
    for name, samples in res["rules_runs"].items():
        secs = [s["seconds"] for s in samples]
        rss = max(s["peak_rss_mib"] for s in samples)
        md.append(f"| {name} | {span(secs)} | {rss:,.0f} |")
    a = res["als_runs"]
    first = a[0]
    md += [
        "",
        f"**ALS** (implicit, 32 factors, 15 iterations): {first['customers']:,} customers × "
        f"{first['products']:,} products, {first['interactions']:,} non-zero cells",
        "",
        "| step | median s (min–max) | peak RSS MiB |",
        "|---|---|---|",
        f"| customer × product weights (engine) → sparse matrix | "
        f"{span([r['prepare_seconds'] for r in a])} | |",
        f"| ALS fit | {span([r['seconds'] for r in a])} | "
        f"{max(r['peak_rss_mib'] for r in a):,.0f} |",
        f"| top-10 new items for every customer | {span([r['recommend_seconds'] for r in a])} | |",
        f"| item neighbours, k = 50 (engine, customer baskets) | "
        f"{span([r['neighbours_seconds'] for r in a])} | |",
    ]
    rep = res["evaluation"]["report"]
    md += [
        "",
        f"**Evaluation** (same customers; trained to {rep['cutoff']}, tested to {rep['as_of']}; "
        f"{rep['test_customers']:,} test customers, k = {rep['k']}; "
        f"{res['evaluation']['seconds']:.0f} s in all)",
        "",
        "| model | items | precision | recall | NDCG | hit rate | customers | coverage | fit s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in rep["scores"]:
        cells = [s[m] for m in ("precision", "recall", "ndcg", "hit_rate")]
        star = " ★" if rep["best"][s["kind"]] == s["model"] else ""
        md.append(
            f"| {s['model']}{star} | {s['kind']} | "
            + " | ".join("n/a" if v is None else f"{v:.3f}" for v in cells)
            + f" | {s['customers']:,} | {s['coverage']:.1%} | {s['fit_seconds']:.1f} |"
        )
    md.append("")
    md.append(f"★ best by {rep['metric']}@{rep['k']} (what a run uses).")
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true", help="2,000 generated customers")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    if args.smoke:
        res = bench(2_000, args.repeats, (5, 2), 2)
    else:
        res = bench(1_000_000, args.repeats, (5, 2), 9)
    md = table(res)
    print(md)
    name = "recs-smoke" if args.smoke else "recs"
    print("written:", write_results(name, [res], md))
    print(json.dumps(res["rules_engine"]["top_rule"], ensure_ascii=False))


if __name__ == "__main__":
    main()
