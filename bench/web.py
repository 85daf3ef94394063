"""Dashboard: server-side render time of every page with 1M published customers.

    python -m bench.web --customers 1000000 --repeats 5
    python -m bench.web --copy bench/data/gen-1000000   # the store and warehouse of a real run

The synthetic data set (built once, cached in bench/data/web-<N>/) is a DuckDB warehouse with two
run snapshots of N customers (the profile columns a run writes, drawn from hashes of the row
number so every build is identical), ten order lines per buyer, interactions and feedback, and a
SQLite store where both runs are published with `store.publish.publish_run`, run
summary, migrations and cohorts included. `--copy DIR` times a copy of DIR's store.db and
warehouse.duckdb instead (e.g. what `make bench` leaves in bench/data/gen-1000000).

Each measurement runs in a fresh process: the app is served in-process (Starlette's test
client), an admin and an agent sign in through the form, and every page is requested once cold
(the first time in the process) and `repeats` times warm. Times are the server's own, from the
app's access log.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

from bench.common import DATA, child, write_results

AGENT = "am001"
PAGES = (
    "/",
    "/segments",
    "/lifecycle",
    "/value",
    "/customers",
    "/customers?r=5&f=5&segment=champions",
    "/customers?sort=revenue&order=desc",
    "/customers/{customer}",
    "/data",
    "/runs",
    "/api/v1/dashboard/overview",
)
TOML = """[warehouse]
path = "warehouse.duckdb"

[store]
url = "sqlite:///store.db"
"""

PROFILE_SQL = """
CREATE OR REPLACE TABLE {table} AS
WITH u AS (
    SELECT i,
        lpad(CAST(i AS VARCHAR), 8, '0') AS customer_id,
        (hash(i, {seed}, 1) % 1000000) / 1e6 AS u0, (hash(i, {seed}, 2) % 1000000) / 1e6 AS u1,
        (hash(i, {seed}, 3) % 1000000) / 1e6 AS u2, (hash(i, {seed}, 4) % 1000000) / 1e6 AS u3,
        (hash(i, {seed}, 5) % 1000000) / 1e6 AS u4, (hash(i, {seed}, 6) % 1000000) / 1e6 AS u5
    FROM range({n}) t(i)
), s AS (
    SELECT *, u0 > 0.1 AS buyer,
        CASE WHEN u0 > 0.1 THEN 1 + CAST(floor(u1 * 5) AS BIGINT) END AS r_score,
        CASE WHEN u0 > 0.1 THEN 1 + CAST(floor(u2 * 5) AS BIGINT) END AS f_score,
        CASE WHEN u0 > 0.1 THEN 1 + CAST(floor(u3 * 5) AS BIGINT) END AS m_score
    FROM u
), v AS (
    SELECT *,
        CASE WHEN buyer THEN round(exp(3.5 + 1.2 * u3 + 0.45 * f_score), 2) ELSE 0 END AS revenue,
        CASE WHEN buyer THEN f_score + CAST(floor(u4 * f_score * 3) AS BIGINT) ELSE 0 END
            AS orders,
        CASE WHEN buyer THEN (6 - r_score) * 70 + CAST(floor(u5 * 70) AS BIGINT) END
            AS recency_days
    FROM s
), w AS (
    SELECT *,
        CASE WHEN buyer THEN round(revenue * (0.05 + 0.3 * u5), 2) END AS clv,
        CASE WHEN buyer THEN least(0.99, recency_days / 420.0 + 0.2 * u1) END AS churn_probability,
        sum(revenue) OVER (ORDER BY revenue DESC, customer_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) / sum(revenue) OVER () AS before
    FROM v
)
SELECT customer_id,
    TIMESTAMP '{as_of}' - INTERVAL (recency_days + orders * 20) DAY AS first_order_at,
    TIMESTAMP '{as_of}' - INTERVAL (recency_days) DAY AS last_order_at,
    orders, orders + CAST(floor(u1 * orders) AS BIGINT) AS order_lines, orders AS order_days,
    revenue, CASE WHEN orders > 0 THEN revenue / orders END AS avg_order_value,
    recency_days, recency_days + orders * 20 AS tenure_days,
    CASE WHEN orders > 1 THEN 20.0 + 40 * u2 END AS median_interval_days,
    1 + CAST(floor(u4 * 6) AS BIGINT) AS categories,
    ['服装', '家居', '数码', '美妆', '食品'][1 + CAST(floor(u5 * 5) AS BIGINT)]
        AS preferred_category,
    ['web', 'app', 'store', 'wechat'][1 + CAST(floor(u2 * 4) AS BIGINT)] AS preferred_channel,
    u0 / 7 AS share_mon, u1 / 7 AS share_tue, u2 / 7 AS share_wed, u3 / 7 AS share_thu,
    u4 / 7 AS share_fri, u5 / 7 AS share_sat, (1 - u0) / 7 AS share_sun,
    u1 / 4 AS share_night, u2 / 4 AS share_morning, u3 / 4 AS share_afternoon,
    u4 / 4 AS share_evening, u5 * 0.6 AS discount_share,
    CAST(floor(u3 * 200) AS BIGINT) AS views, CAST(floor(u4 * 40) AS BIGINT) AS carts,
    CASE WHEN u3 > 0.05 THEN orders / floor(u3 * 200 + 1) END AS browse_to_buy,
    CAST(floor(u5 * 3) AS BIGINT) AS complaints, CAST(u5 > 0.9 AS BIGINT)
        AS unresolved_complaints, CAST(floor(u4 * 2) AS BIGINT) AS follow_ups,
    CASE WHEN u2 < 0.4 THEN 1 + floor(u3 * 5) END AS last_csat,
    CASE WHEN u1 < 0.3 THEN floor(u4 * 11) END AS mean_nps,
    revenue * 0.4 AS gross_margin, 20 + 60 * u4 AS service_cost, 10 * u2 AS marketing_cost,
    15 + 30 * u1 AS acquisition_cost,
    revenue * 0.4 - (20 + 60 * u4) - 10 * u2 - (15 + 30 * u1) AS profit,
    revenue * 0.4 - (20 + 60 * u4) - 10 * u2 - (15 + 30 * u1) < 0 AS is_unprofitable,
    CAST(floor(u5 * 200) AS BIGINT) AS cac_payback_days,
    r_score, f_score, m_score,
    CASE WHEN buyer THEN CAST(r_score AS VARCHAR) || CAST(f_score AS VARCHAR)
        || CAST(m_score AS VARCHAR) END AS rfm_code,
    CASE WHEN NOT buyer THEN 'no_orders'
        WHEN r_score <= 2 AND f_score <= 2 THEN 'hibernating'
        WHEN r_score <= 2 AND f_score <= 4 THEN 'at_risk'
        WHEN r_score <= 2 THEN 'cant_lose'
        WHEN r_score = 3 AND f_score <= 2 THEN 'about_to_sleep'
        WHEN r_score = 3 AND f_score = 3 THEN 'need_attention'
        WHEN r_score <= 4 AND f_score >= 4 THEN 'loyal'
        WHEN r_score = 4 AND f_score = 1 THEN 'promising'
        WHEN r_score = 5 AND f_score = 1 THEN 'new'
        WHEN f_score <= 3 THEN 'potential_loyalist'
        ELSE 'champions' END AS rfm_segment,
    CASE WHEN buyer THEN 'R' || r_score || ' & F' || f_score END AS rfm_segment_reason,
    CASE WHEN buyer THEN ['important_value', 'important_develop', 'important_keep',
        'important_retain', 'general_value', 'general_develop', 'general_keep',
        'general_retain'][1 + CAST(floor(u4 * 8) AS BIGINT)] END AS rfm_class8,
    CASE WHEN buyer THEN 'R high (recency ' || recency_days || ' < 290.1), F low (orders '
        || orders || ' <= 5.8), M high (revenue ' || revenue || ' > 1606.3) vs mean' END
        AS rfm_class8_reason,
    CASE WHEN NOT buyer THEN NULL WHEN before < 0.7 THEN 'A' WHEN before < 0.9 THEN 'B'
        ELSE 'C' END AS abc_class,
    CASE WHEN buyer THEN 'customers ranked above hold ' || round(100 * before, 2)
        || '% of revenue' END AS abc_reason,
    CASE WHEN NOT buyer THEN 'low' WHEN u5 > 0.8 THEN 'high' WHEN u5 > 0.5 THEN 'mid'
        ELSE 'low' END AS value_tier,
    'rank by clv (high = top 20%, mid = next 30%)' AS value_tier_reason,
    CASE WHEN NOT buyer THEN 'potential' WHEN recency_days > 180 THEN 'churned'
        WHEN recency_days > 110 THEN 'dormant' WHEN orders = 1 AND recency_days < 30 THEN 'new'
        WHEN u2 < 0.05 THEN 'reactivated' WHEN orders >= 4 THEN 'loyal' ELSE 'active' END
        AS lifecycle_stage,
    'recency ' || coalesce(recency_days, 0) || ' days' AS lifecycle_reason,
    CASE WHEN buyer THEN orders * 0.4 END AS predicted_purchases,
    CASE WHEN buyer THEN 1 - churn_probability END AS p_alive,
    CASE WHEN buyer THEN revenue / greatest(orders, 1) END AS expected_avg_spend,
    clv, churn_probability,
    CASE WHEN NOT buyer THEN NULL WHEN churn_probability < 0.3 THEN 'low'
        WHEN churn_probability < 0.6 THEN 'medium' ELSE 'high' END AS churn_risk,
    CASE WHEN churn_probability >= 0.3 THEN 'no order for ' || recency_days
        || ' days; usually orders every 18 days; last satisfaction score 2 of 5' END
        AS churn_reasons,
    'am' || lpad(CAST(i % 40 + 1 AS VARCHAR), 3, '0') AS account_manager
FROM w
"""
ORDERS_SQL = """
CREATE OR REPLACE TABLE orders AS
SELECT p.customer_id, 'SO' || p.customer_id || '-' || k AS order_id,
    p.last_order_at - INTERVAL (k * 23) DAY AS ordered_at,
    round(p.revenue / 10, 2) AS amount, 1.0 AS quantity
FROM {table} p, range(10) r(k)
WHERE p.orders > 0
"""
SIDE_SQL = """
CREATE OR REPLACE TABLE interactions AS
SELECT customer_id, last_order_at AS occurred_at, 'consultation' AS kind, 'phone' AS channel,
    'answered' AS outcome, account_manager AS handled_by, 5.0 AS cost,
    NULL::TIMESTAMP AS resolved_at
FROM {table} WHERE orders > 2;
CREATE OR REPLACE TABLE feedback AS
SELECT customer_id, last_order_at AS responded_at, 'post_purchase' AS survey, 4.0 AS csat,
    mean_nps AS nps, NULL::VARCHAR AS comment
FROM {table} WHERE mean_nps IS NOT NULL;
"""
MODELS = {
    "purchase": {"model": "bgnbd", "params": {"r": 0.55, "alpha": 3.02, "a": 1.15, "b": 6.97}},
    "spend": {"model": "gammagamma", "params": {"p": 4.59, "q": 4.05, "v": 194.4}},
    "churn": {
        "model": "lightgbm",
        "validated_at": "2026-04-01",
        "window_days": 90,
        "validation": {
            "lightgbm": {"roc_auc": 0.86, "pr_auc": 0.94, "top_decile_lift": 1.38, "ece": 0.034},
            "recency only": {
                "roc_auc": 0.84,
                "pr_auc": 0.93,
                "top_decile_lift": 1.34,
                "ece": 0.052,
            },
        },
    },
    "skipped": {},
}

BUILD = """
import json, tempfile
from datetime import date, datetime
from pathlib import Path
import ibis
import pyarrow.parquet as pq
from bench.web import MODELS, ORDERS_SQL, PROFILE_SQL, SIDE_SQL
from tierwise.core.settings import Settings
from tierwise.engine import cohort_retention, migration_matrix
from tierwise.services.meta import ensure_meta_tables
from tierwise.services.dashboard import RunRef, run_dashboard
from tierwise.services.publish import COHORT_KEYS, MIGRATION_KEYS
from tierwise.services.run import CURRENT, CURRENT_SCHEMA, RUNS, RUNS_SCHEMA, ensure_run_tables
from tierwise.services.serving import add_user, opened_store
from tierwise.services.warehouse import connect
from tierwise.store.publish import publish_run

root = Path({root!r})
settings = Settings.load(root / "tierwise.toml")
con = connect(settings)
runs = [("bench{n}a", date(2026, 3, 31), 11), ("bench{n}b", date(2026, 6, 30), 7)]
ensure_run_tables(con)
ensure_meta_tables(con)
t0 = time.perf_counter()
for run_id, as_of, seed in runs:
    con.raw_sql(PROFILE_SQL.format(table="profiles_" + run_id, seed=seed, n={n}, as_of=as_of))
con.raw_sql(ORDERS_SQL.format(table="profiles_" + runs[-1][0]))
con.raw_sql(SIDE_SQL.format(table="profiles_" + runs[-1][0]))
result = {{"warehouse_seconds": time.perf_counter() - t0}}
with opened_store(settings) as store:
    t0 = time.perf_counter()
    previous = None
    for run_id, as_of, _ in runs:
        table = con.table("profiles_" + run_id)
        migrations = []
        if previous is not None:
            for column in ("lifecycle_stage", "rfm_segment", "rfm_class8", "value_tier"):
                before, after = (t.mutate(**{{column: t[column].fill_null("(none)")}})
                                 for t in (previous, table))
                m = migration_matrix(before, after, column=column).to_pyarrow().to_pylist()
                migrations += [r | {{"dimension": column}} for r in m]
        cohorts = cohort_retention(con.table("orders"), as_of=as_of).to_pyarrow().to_pylist()
        with tempfile.TemporaryDirectory() as tmp:
            spool = Path(tmp) / "p.parquet"
            table.mutate(
                name=ibis.literal("客户") + table.customer_id,
                phone=ibis.literal("138") + table.customer_id,
                email=table.customer_id + ibis.literal("@example.com"),
                consent_marketing=ibis.literal(True),
            ).to_parquet(spool)
            publish_run(
                store.write, run_id, as_of, pq.ParquetFile(spool).iter_batches(batch_size=10_000),
                migrations=[{{k: r[k] for k in MIGRATION_KEYS}} for r in migrations],
                cohorts=[{{k: r[k] for k in COHORT_KEYS}} for r in cohorts],
                dashboard=run_dashboard(con, RunRef(run_id, as_of)),
            )
        now = datetime.now()
        con.insert(RUNS, ibis.memtable({{
            "run_id": [run_id], "as_of": [as_of], "config_hash": ["bench"],
            "status": ["succeeded"], "started_at": [now], "finished_at": [now],
            "customers": [{n}], "stage_seconds": [json.dumps({{"profiles": 1.0}})],
            "models": [json.dumps(MODELS)], "error": [None]}}, schema=RUNS_SCHEMA))
        previous = table
    result["publish_seconds"] = time.perf_counter() - t0
    con.insert(CURRENT, ibis.memtable({{"run_id": [runs[-1][0]], "as_of": [runs[-1][1]],
        "switched_at": [datetime.now()]}}, schema=CURRENT_SCHEMA), overwrite=True)
    passwords = {{u: add_user(store, u, role)[1] for u, role in
                 (("admin", "admin"), ({agent!r}, "agent"))}}
con.disconnect()
(root / "users.json").write_text(json.dumps(passwords))
"""

MEASURE = """
import logging, re, statistics, time
from pathlib import Path
from fastapi.testclient import TestClient
from tierwise.api.app import create_app
from tierwise.core.settings import Settings
from tierwise.services.serving import add_user, opened_store, reset_password

root = Path({root!r})
settings = Settings.load(root / "tierwise.toml")
with opened_store(settings) as store:
    passwords = {{}}
    for user, role in (("admin", "admin"), ({agent!r}, "agent")):
        try:
            passwords[user] = add_user(store, user, role)[1]
        except Exception:
            passwords[user] = reset_password(store, user)
server_ms = []

class Timer(logging.Handler):
    def emit(self, record):
        server_ms.append(float(record.args[3]))

access = logging.getLogger("tierwise.api.access")
access.setLevel(logging.INFO)
access.addHandler(Timer())

def get(client, path):
    before = len(server_ms)
    answer = client.get(path)
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    return server_ms[before]

result = {{"pages": {{}}}}
app = create_app(settings)
with TestClient(app) as anonymous:
    for user in ("admin", {agent!r}):
        client = TestClient(app)
        form = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        signed = client.post("/login", follow_redirects=False, data={{
            "username": user, "password": passwords[user], "csrf_token": token}})
        assert signed.status_code == 303, signed.text[:300]
        ids = client.get("/api/v1/dashboard/customers?page_size=1").json()
        customer = ids["items"][0]["customer_id"]
        for path in {pages!r}:
            if user != "admin" and path == "/data":
                continue
            url = path.format(customer=customer)
            cold = get(client, url)
            warm = [get(client, url) for _ in range({repeats})]
            result["pages"].setdefault(path, {{}})[user] = {{
                "cold_ms": cold, "warm_ms": statistics.median(warm), "warm_max_ms": max(warm)}}
"""


def build(customers: int) -> Path:
    """The cached synthetic data set of `customers` customers (built on first use)."""
    root = DATA / f"web-{customers}"
    if (root / "users.json").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "tierwise.toml").write_text(TOML)
    code = "import time\n" + BUILD.format(root=str(root), n=customers, agent=AGENT)
    out = child(code)
    print(f"built {root}: {json.dumps(out)}", flush=True)
    return root


def copied(source: Path) -> Path:
    """A copy of a real run's store and warehouse (so the original is never touched)."""
    root = DATA / f"web-copy-{source.name}"
    root.mkdir(parents=True, exist_ok=True)
    for name in ("store.db", "warehouse.duckdb"):
        if not (root / name).exists():
            shutil.copy2(source / name, root / name)
    (root / "tierwise.toml").write_text(TOML)
    return root


def measure(root: Path, repeats: int) -> dict:
    code = MEASURE.format(root=str(root), agent=AGENT, pages=PAGES, repeats=repeats)
    return child(code)


def table(label: str, result: dict) -> str:
    rows = [
        f"| page | admin cold | admin warm (median) | agent ({AGENT}) cold | agent warm |",
        "|---|---:|---:|---:|---:|",
    ]
    for path, by_user in result["pages"].items():
        cells = []
        for user in ("admin", AGENT):
            t = by_user.get(user)
            cells += (
                ["–", "–"] if t is None else [f"{t['cold_ms']:.0f} ms", f"{t['warm_ms']:.0f} ms"]
            )
        rows.append(f"| `{path}` | " + " | ".join(cells) + " |")
    return f"{label}\n\n" + "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--copy", type=Path, help="time a copy of DIR/store.db and warehouse.duckdb")
    args = ap.parse_args()
    root = copied(args.copy) if args.copy else build(args.customers)
    result = measure(root, args.repeats)
    label = f"Data: {'copy of ' + str(args.copy) if args.copy else 'synthetic'}, {root.name}"
    md = table(label, result)
    print(md)
    name = "web-copy" if args.copy else "web"
    print("written:", write_results(name, [result], md, customers=args.customers))
    medians = [t["warm_ms"] for p in result["pages"].values() for t in p.values()]
    print(f"warm median over pages and users: {statistics.median(medians):.0f} ms")


if __name__ == "__main__":
    main()
