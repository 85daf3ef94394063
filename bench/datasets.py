"""Benchmark data: `tierwise generate` output ingested once into a DuckDB warehouse, cached.

    bench/data/gen-<customers>/          generator files + tierwise.toml (warehouse.duckdb)
    bench/data/gen-<customers>/ingested.duckdb   the warehouse right after ingest (pristine)

Every benchmark starts from a copy of the pristine warehouse, so snapshots of earlier runs never
pile up. The generator holds everything in memory (~0.9 GB per 100k customers), so sizes above
`BLOCK` customers are built from generator blocks of `BLOCK` customers with different seeds whose
ids are rewritten to stay apart: with `lines_per_customer=20` two blocks share each customer-id
prefix, so each customer of the large set has two independent histories (≈ 20 order lines).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.common import DATA, child

SEED = 7
BLOCK = 1_000_000
LINES_PER_GENERATED_CUSTOMER = 10
CSV_ENCODINGS = {
    "customers.csv": "gb18030",
    "interactions.csv": "utf-8",
    "feedback.csv": "utf-8",
    "costs.csv": "utf-8",
}
LARGE_SKIPS = ("events",)
"""Left out of block-built sets: 26 behaviour events per customer (260M rows in the 10 blocks)
would take most of an hour to ingest on 2 cores and are not order lines."""
PARQUET_ID_COLUMNS = {
    "orders.parquet": ("customer_id", "order_id"),
    "events.parquet": ("customer_id",),
}

_GENERATE = """
from pathlib import Path
from tierwise.services.generate import generate
r = generate({customers}, Path({out!r}), seed={seed})
result = {{"seconds": r.seconds, "rows": dict(r.rows)}}
"""

_INGEST = """
import time
from pathlib import Path
from tierwise.core.settings import Settings
from tierwise.services.ingest import ingest
settings = Settings.load(Path({config!r}))
t0 = time.perf_counter()
report = ingest(settings)
seconds = time.perf_counter() - t0
bad = [f for f in report.files if f.status != "loaded" or not f.reconciles]
assert not bad, bad
rows = {{}}
for f in report.files:
    rows[f.table_name] = rows.get(f.table_name, 0) + f.accepted
result = {{"seconds": seconds, "rows": rows}}
"""


def name(customers: int, lines_per_customer: int = LINES_PER_GENERATED_CUSTOMER) -> str:
    suffix = "" if lines_per_customer == LINES_PER_GENERATED_CUSTOMER else f"x{lines_per_customer}"
    return f"gen-{customers}{suffix}"


def generated(customers: int, *, lines_per_customer: int = LINES_PER_GENERATED_CUSTOMER) -> Path:
    """The directory of a generated and ingested data set (built on first use)."""
    root = DATA / name(customers, lines_per_customer)
    if (root / "ingested.duckdb").exists():
        return root
    fold = lines_per_customer // LINES_PER_GENERATED_CUSTOMER
    if fold < 1 or fold * LINES_PER_GENERATED_CUSTOMER != lines_per_customer:
        raise ValueError(f"lines_per_customer must be a multiple of {LINES_PER_GENERATED_CUSTOMER}")
    single = customers <= BLOCK and fold == 1
    # tierwise.toml is written last: generation finished (unless the blocks were deleted since
    # to make room on the disk), ingest did not
    if (root / "tierwise.toml").exists() and (single or (root / "blocks").is_dir()):
        print(f"reusing the generated files in {root}", flush=True)
        for leftover in ("warehouse.duckdb", "warehouse.duckdb.wal"):
            (root / leftover).unlink(missing_ok=True)
    elif single:
        shutil.rmtree(root, ignore_errors=True)
        print(f"generating {customers:,} customers into {root}", flush=True)
        child(_GENERATE.format(customers=customers, out=str(root), seed=SEED))
    else:
        shutil.rmtree(root, ignore_errors=True)
        _generate_blocks(root, customers, fold)
    print(f"ingesting {root / 'tierwise.toml'}", flush=True)
    out = child(_INGEST.format(config=str(root / "tierwise.toml")))
    print(f"  ingested in {out['seconds']:.0f} s: {out['rows']}", flush=True)
    (root / "ingest.json").write_text(json.dumps(out, indent=1))
    (root / "warehouse.duckdb").rename(root / "ingested.duckdb")
    return root


def fresh_warehouse(root: Path, *, consume: bool = False) -> Path:
    """Replace the working warehouse by a copy of the pristine one; returns tierwise.toml.

    `consume` moves the pristine file instead (the 100M-line set: two copies and the store do
    not fit on the disk); the next use then ingests again from the cached generator files.
    """
    for leftover in ("warehouse.duckdb", "warehouse.duckdb.wal", "store.db"):
        (root / leftover).unlink(missing_ok=True)
    if consume:
        (root / "ingested.duckdb").rename(root / "warehouse.duckdb")
    else:
        shutil.copyfile(root / "ingested.duckdb", root / "warehouse.duckdb")
    return root / "tierwise.toml"


def run_env(root: Path, *, models: bool = True) -> dict[str, str]:
    """Environment for a `tierwise run` child: its own operational store next to the data
    (runs publish to it), and optionally the models stage switched off.

    Recommendations, behaviour clusters and membership levels are off: the engine benchmark
    measures the classification pipeline the issue defines; recommendations have their own
    (bench/recs.py)."""
    env = {
        "TIERWISE_STORE__URL": f"sqlite:///{root / 'store.db'}",
        "TIERWISE_RECOMMEND__ENABLED": "false",
        "TIERWISE_BEHAVIOUR__ENABLED": "false",
        "TIERWISE_MEMBERSHIP__ENABLED": "false",
    }
    if not models:
        env["TIERWISE_MODELS__ENABLED"] = "false"
    return env


def order_lines(root: Path) -> int:
    """Order lines ingested into the set's warehouse (its generator files may be deleted)."""
    return int(json.loads((root / "ingest.json").read_text())["rows"]["orders"])


def orders_files(root: Path) -> list[Path]:
    return sorted(root.glob("**/orders.parquet"))


def _generate_blocks(root: Path, customers: int, fold: int) -> None:
    """`fold * customers / BLOCK` generator blocks; block i's customer ids get prefix i % groups."""
    groups = -(-customers // BLOCK)
    if groups > 9:
        raise ValueError("at most 9 blocks of customer ids (one-digit prefixes)")
    blocks = groups * fold
    size = customers // groups
    for i in range(blocks):
        out = root / "blocks" / str(i)
        print(f"generating block {i + 1}/{blocks} ({size:,} customers)", flush=True)
        child(_GENERATE.format(customers=size, out=str(out), seed=SEED + i))
        prefix = str(i % groups + 1)
        for file, columns in PARQUET_ID_COLUMNS.items():
            _prefix_parquet(
                out / file, {c: prefix if c == "customer_id" else f"B{i}" for c in columns}
            )
        for file, encoding in CSV_ENCODINGS.items():
            _prefix_csv(out / file, prefix, encoding)
        for extra in ("truth.parquet", "tierwise.toml") if i else ("truth.parquet",):
            (out / extra).unlink()
        if i:
            (out / "products.csv").unlink()
    first = root / "blocks" / "0"
    (first / "products.csv").rename(root / "products.csv")
    text = (first / "tierwise.toml").read_text(encoding="utf-8")
    (first / "tierwise.toml").unlink()

    def to_glob(m: re.Match[str]) -> str:
        file = m.group(1)
        return m.group(0) if file == "products.csv" else f'path = "blocks/*/{file}"'

    text = re.sub(r'^path = "([\w.]+\.(?:csv|parquet))"', to_glob, text, flags=re.M)
    text = drop_sources(text, LARGE_SKIPS)
    note = (
        f"# Benchmark data: {blocks} generator blocks of {size:,} customers (seeds {SEED}.."
        f"{SEED + blocks - 1}), customer ids prefixed 1..{groups} so blocks i and i+{groups} "
        f"share customers. Left out: {', '.join(LARGE_SKIPS)}.\n"
    )
    (root / "tierwise.toml").write_text(note + text, encoding="utf-8")


def drop_sources(text: str, names: tuple[str, ...]) -> str:
    """tierwise.toml text without the `[sources.<name>]` tables; the comment lines right above
    a table header belong to that table."""
    out: list[str] = []
    pending: list[str] = []  # comments and blank lines, kept or dropped with what follows
    skipping = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            pending.append(line)
            continue
        if stripped.startswith("["):
            table = stripped.strip("[]").split(".")
            skipping = table[0] == "sources" and len(table) > 1 and table[1] in names
        if not skipping:
            out += pending
            out.append(line)
        pending = []
    return "".join(out + pending)


def _prefix_parquet(path: Path, prefixes: dict[str, str]) -> None:
    table = pq.read_table(path)
    for column, prefix in prefixes.items():
        i = table.schema.get_field_index(column)
        joined = pc.binary_join_element_wise(pa.scalar(prefix), table[column], "")
        table = table.set_column(i, column, joined)
    pq.write_table(table, path, compression="zstd")


def _prefix_csv(path: Path, prefix: str, encoding: str) -> None:
    """Prefix the first column (the customer id in every generated CSV) of each data row."""
    tmp = path.with_suffix(".tmp")
    with (
        path.open(encoding=encoding, newline="") as src,
        tmp.open("w", encoding=encoding, newline="") as dst,
    ):
        rows = csv.reader(src)
        out = csv.writer(dst, lineterminator="\n")
        out.writerow(next(rows))
        for row in rows:
            row[0] = prefix + row[0]
            out.writerow(row)
    tmp.replace(path)
