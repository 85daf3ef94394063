"""API under load on loopback: locust users against `tierwise serve` with 1M published customers.

    python -m bench.load                      # 50 users for 60 s, then 1 user for 30 s
    python -m bench.load --users 50 --seconds 60 --customers 1000000

The store is the one the engine benchmark's `tierwise run` published (bench/data/gen-<n>/store.db),
copied so later benchmarks cannot change it under us; without it the data set is generated,
ingested and run first (many minutes at 1M). The server is the production one (uvicorn, one
process, as `tierwise serve` starts it); locust runs on the same 2-core machine, so the numbers
include the load generator's share of the CPU. Users have no think time: this is saturation,
not a typical day.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench import datasets
from bench.common import DATA, ROOT, child, header, write_results

SAMPLE_IDS = 5_000


def store_with_customers(customers: int) -> Path:
    """A tierwise.toml whose SQLite store has a published run of `customers` customers."""
    root = DATA / f"load-{customers}"
    config = root / "tierwise.toml"
    if (root / "store.db").exists() and _published(root / "store.db") >= customers:
        return config
    root.mkdir(parents=True, exist_ok=True)
    source = datasets.generated(customers)
    if not (source / "store.db").exists() or _published(source / "store.db") < customers:
        print(f"running the pipeline on {source} to publish {customers:,} customers", flush=True)
        toml = datasets.fresh_warehouse(source)
        child(
            f"from tierwise.core.settings import Settings\n"
            f"from tierwise.services.run import run\n"
            f"run(Settings.load({str(toml)!r}))\nresult = {{}}",
            env=datasets.run_env(source),
        )
    print(f"copying the published store of {source}", flush=True)
    shutil.copyfile(source / "store.db", root / "store.db.partial")
    (root / "store.db.partial").rename(root / "store.db")
    config.write_text('[store]\nurl = "sqlite:///store.db"\n')
    return config


def _published(store: Path) -> int:
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT customers FROM published_runs WHERE is_current").fetchone()
        return int(row[0]) if row else 0
    except sqlite3.Error:
        return 0
    finally:
        con.close()


def _sample_ids(store: Path, n: int) -> list[str]:
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        query = (
            "SELECT customer_id FROM published_profiles WHERE run_id = "
            "(SELECT run_id FROM published_runs WHERE is_current) "
            "ORDER BY random() LIMIT ?"
        )
        return [r[0] for r in con.execute(query, (n,))]
    finally:
        con.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tierwise(config: Path, *args: str) -> str:
    exe = Path(sys.executable).with_name("tierwise")
    proc = subprocess.run(
        [str(exe), "--config", str(config), "--json", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def _token(config: Path) -> str:
    """An analyst with an API token (every customer, personal data masked)."""
    import json

    users = json.loads(_tierwise(config, "users", "list"))
    if not any(u["username"] == "load" for u in users):
        _tierwise(config, "users", "add", "load", "--role", "analyst")
    code = (
        "from pathlib import Path\n"
        "from tierwise.core.settings import Settings\n"
        "from tierwise.services.access import Principal\n"
        "from tierwise.services.serving import opened_store, create_api_token\n"
        "from tierwise.store.users import get_user\n"
        f"with opened_store(Settings.load(Path({str(config)!r}))) as store:\n"
        "    with store.read() as s:\n"
        "        user = Principal.of(get_user(s, 'load'))\n"
        "    result = {'token': create_api_token(store, user, 'load', 1).token}\n"
    )
    return str(child(code)["token"])


def _serve(config: Path, port: int) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("tierwise")
    server = subprocess.Popen(
        [str(exe), "--config", str(config), "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("the server did not come up within 120 s")


def _locust(port: int, users: int, seconds: int, env: dict[str, str], out: Path) -> dict:
    """Run locust headless; the aggregated row of its stats CSV."""
    prefix = out / f"locust-{users}"
    subprocess.run(
        [
            str(Path(sys.executable).with_name("locust")),
            "-f",
            str(ROOT / "bench" / "locustfile.py"),
            "--headless",
            "--users",
            str(users),
            "--spawn-rate",
            str(users),
            "--run-time",
            f"{seconds}s",
            "--host",
            f"http://127.0.0.1:{port}",
            "--csv",
            str(prefix),
            "--only-summary",
            "--exit-code-on-error",
            "0",
        ],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    with Path(f"{prefix}_stats.csv").open(newline="") as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    return {
        name: {
            "requests": int(r["Request Count"]),
            "failures": int(r["Failure Count"]),
            "rps": float(r["Requests/s"]),
            "p50_ms": float(r["50%"]),
            "p99_ms": float(r["99%"]),
            "max_ms": float(r["Max Response Time"]),
        }
        for name, r in rows.items()
    }


def bench(customers: int, users: int, seconds: int) -> tuple[list[dict], str]:
    """Serve the store, run locust at `users` and at 1 user; (rows, Markdown table)."""
    config = store_with_customers(customers)
    ids = _sample_ids(config.parent / "store.db", SAMPLE_IDS)
    env = {"TIERWISE_LOAD_IDS": ",".join(ids), "TIERWISE_LOAD_TOKEN": _token(config)}
    port = _free_port()
    server = _serve(config, port)
    try:
        runs = {
            users: _locust(port, users, seconds, env, config.parent),
            1: _locust(port, 1, max(5, seconds // 2), env, config.parent),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
    lines = [
        header(f"API load: {customers:,} published customers, loopback"),
        "| users | endpoint | requests | failures | req/s | p50 ms | p99 ms | max ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n, stats in runs.items():
        for name, s in stats.items():
            lines.append(
                f"| {n} | {name} | {s['requests']:,} | {s['failures']} | {s['rps']:.1f} | "
                f"{s['p50_ms']:.0f} | {s['p99_ms']:.0f} | {s['max_ms']:.0f} |"
            )
    rows = [{"users": n, "endpoint": e, **s} for n, st in runs.items() for e, s in st.items()]
    return rows, "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=60)
    args = ap.parse_args()
    rows, md = bench(args.customers, args.users, args.seconds)
    print(md)
    print("written:", write_results("load", rows, md, customers=args.customers))


if __name__ == "__main__":
    main()
