"""Ingestion on a real DuckDB file: formats, encodings, no-loss ledger, quarantine, idempotence."""

from __future__ import annotations

import csv
import io
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierwise.core.errors import BusyError, ConfigError
from tierwise.core.settings import Settings
from tierwise.services.ingest import ingest
from tierwise.services.locking import warehouse_lock
from tierwise.services.warehouse import connect

HEADER_ZH = ["客户编号", "订单号", "下单时间", "实付金额", "备注"]
MAPPING_ZH = """
[sources.orders.columns]
customer_id = "客户编号"
order_id = "订单号"
ordered_at = "下单时间"
amount = "实付金额"
"""


def write_config(root: Path, body: str) -> Settings:
    (root / "tierwise.toml").write_text(textwrap.dedent(body), encoding="utf-8")
    return Settings.load(root / "tierwise.toml")


def orders_config(root: Path, path: str, extra: str = MAPPING_ZH) -> Settings:
    return write_config(root, f'[sources.orders]\npath = "{path}"\n{extra}')


def read(settings: Settings, table: str) -> pd.DataFrame:
    con = connect(settings)
    try:
        return con.table(table).to_pandas()
    finally:
        con.disconnect()


def csv_text(rows: list[list[str]], header: list[str] = HEADER_ZH) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


ROWS = [
    ["00123", "SO-1", "2024-03-01 10:15:00", "199.50", "首单"],
    ["+86 13800130042", "SO-2", "2024/03/02", "￥1,200", ""],
    ["110101199001011234", "SO-3", "2024-03-03T08:00:00", "-20", "退货"],
]


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gb18030"), ("gb18030", "gb18030")],
)
def test_csv_encodings_with_chinese_headers(tmp_path, encoding, expected):
    (tmp_path / "orders.csv").write_bytes(csv_text(ROWS).encode(encoding))
    s = orders_config(tmp_path, "orders.csv")
    [f] = ingest(s).files
    assert (f.status, f.encoding, f.rows_in, f.accepted) == ("loaded", expected, 3, 3)
    df = read(s, "orders").sort_values("order_id")
    assert df.customer_id.tolist() == ["00123", "+86 13800130042", "110101199001011234"]
    assert df.amount.tolist() == [199.5, 1200.0, -20.0]
    assert df.ordered_at.dt.strftime("%Y-%m-%d %H:%M").tolist() == [
        "2024-03-01 10:15",
        "2024-03-02 00:00",
        "2024-03-03 08:00",
    ]
    assert df.attributes.tolist() == ['{"备注": "首单"}', '{"备注": ""}', '{"备注": "退货"}']


def test_undecidable_encoding_is_refused_and_nothing_stored(tmp_path):
    (tmp_path / "orders.csv").write_bytes(csv_text(ROWS).encode("utf-8") + b"\xff\xfe\x80\n")
    s = orders_config(tmp_path, "orders.csv")
    [f] = ingest(s).files
    assert f.status == "failed"
    assert "ambiguous_encoding" in f.message and "orders.csv" in f.message
    assert "orders" not in connect(s).list_tables()


def test_xlsx_keeps_ids_as_text(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    ws = book.active
    ws.append(HEADER_ZH)
    ws.append(["00123", "SO-1", "2024-03-01", 10.5, "x"])
    ws.append([4567, 20240302001, "2024-03-02", 3, None])  # numeric cells in id columns
    ws.append([89, "SO-3", "2024-03-03", 1, None])
    ws.cell(row=4, column=1).number_format = "000000"  # shown as 000089 in Excel
    book.save(tmp_path / "orders.xlsx")
    s = orders_config(tmp_path, "orders.xlsx")
    [f] = ingest(s).files
    assert (f.status, f.accepted, f.rejected) == ("loaded", 3, 0)
    df = read(s, "orders").sort_values("_line")
    assert df.customer_id.tolist() == ["00123", "4567", "000089"]
    assert df.order_id.tolist() == ["SO-1", "20240302001", "SO-3"]
    assert df._line.tolist() == [2, 3, 4]


def test_parquet_with_native_types(tmp_path):
    table = pa.table(
        {
            "customer_id": pa.array([1, 2], pa.int64()),
            "order_id": ["a", "b"],
            "ordered_at": pa.array(pd.to_datetime(["2024-01-01 09:00", "2024-01-02 10:00"])),
            "amount": [1.5, 2.5],
        }
    )
    pq.write_table(table, tmp_path / "orders.parquet")
    s = orders_config(tmp_path, "orders.parquet", extra="")
    [f] = ingest(s).files
    assert (f.accepted, f.rejected) == (2, 0)
    df = read(s, "orders").sort_values("order_id")
    assert df.customer_id.tolist() == ["1", "2"]
    assert df.ordered_at.tolist() == [
        pd.Timestamp("2024-01-01 09:00"),
        pd.Timestamp("2024-01-02 10:00"),
    ]


def test_database_table_source(tmp_path):
    import duckdb

    db = tmp_path / "crm.duckdb"
    with duckdb.connect(str(db)) as c:
        c.execute(
            "create table sales as select '007' as cid, 'o1' as order_id, "
            "timestamp '2024-05-01 12:00:00' as ordered_at, 9.5::double as amount"
        )
    s = write_config(
        tmp_path,
        f"""
        [sources.orders]
        format = "table"
        connection = "duckdb://{db}"
        table = "sales"
        [sources.orders.columns]
        customer_id = "cid"
        """,
    )
    [f] = ingest(s).files
    assert (f.status, f.accepted) == ("loaded", 1), f.message
    assert read(s, "orders").customer_id.tolist() == ["007"]


def defective_rows(n: int, seed: int) -> tuple[list[str], dict[int, str], int]:
    """n data lines, ~5 % with assorted defects. Returns lines, {line: reason}, duplicates."""
    rng = random.Random(seed)
    lines: list[str] = []
    bad: dict[int, str] = {}
    dupes = 0
    while len(lines) < n:
        line_no = len(lines) + 2
        month, day = rng.randint(1, 9), rng.randint(10, 19)
        row = [
            f"{rng.randrange(10**6):07d}",
            f"SO{line_no}",
            f"2024-0{month}-{day}",
            f"{rng.uniform(-5, 500):.2f}",
            "ok",
        ]
        defect = rng.choice(["missing_id", "bad_date", "bad_amount", "future", "columns", "dup"])
        if rng.random() >= 0.05:
            defect = None
        if defect == "dup" and lines and (line_no - 1) not in bad:
            lines.append(lines[-1])
            dupes += 1
            continue
        if defect == "missing_id":
            row[0], bad[line_no] = "  ", "missing_value"
        elif defect == "bad_date":
            row[2], bad[line_no] = "2024-02-30", "bad_date"
        elif defect == "bad_amount":
            row[3], bad[line_no] = "12,3a", "bad_number"
        elif defect == "future":
            row[2], bad[line_no] = "2999-01-01", "future_date"
        elif defect == "columns":
            row, bad[line_no] = row[:3], "wrong_column_count"
        lines.append(csv_text([row], header=[]).lstrip("\n"))
    return lines, bad, dupes


def test_ten_thousand_rows_with_defects_reconcile_exactly(tmp_path):
    lines, bad, dupes = defective_rows(10_000, seed=1)
    (tmp_path / "orders.csv").write_text(csv_text([]) + "".join(lines), encoding="utf-8")
    s = orders_config(tmp_path, "orders.csv")
    [f] = ingest(s).files
    assert f.rows_in == 10_000
    assert f.rows_in == f.accepted + f.rejected + f.duplicates_merged
    assert (f.rejected, f.duplicates_merged) == (len(bad), dupes)
    assert f.accepted == len(read(s, "orders"))
    q = read(s, "_quarantine")
    assert dict(zip(q.line, q.reason, strict=True)) == bad
    assert q.source.str.endswith("orders.csv").all() and q.raw.str.len().gt(0).all()
    assert set(q.column_name.dropna()) <= {"customer_id", "ordered_at", "amount"}
    stored_lines = set(read(s, "orders")._line)
    assert stored_lines.isdisjoint(bad)


def test_quoted_newlines_keep_exact_line_numbers(tmp_path):
    text = csv_text([["1", "o1", "2024-01-01", "5", "two\nlines"], ["2", "o2", "nope", "5", "x"]])
    (tmp_path / "orders.csv").write_text(text, encoding="utf-8")
    s = orders_config(tmp_path, "orders.csv")
    [f] = ingest(s).files
    assert (f.accepted, f.rejected) == (1, 1)
    q = read(s, "_quarantine")
    assert q.line.tolist() == [4] and q.reason.tolist() == ["bad_date"]


def test_reingest_is_idempotent_and_overlap_merges(tmp_path):
    (tmp_path / "orders.csv").write_text(csv_text(ROWS), encoding="utf-8")
    s = orders_config(tmp_path, "orders.csv")
    ingest(s)
    [again] = ingest(s).files
    assert again.status == "unchanged" and "0 rows added" in again.message
    more = [*ROWS, ["999", "SO-9", "2024-03-09", "5", ""]]
    (tmp_path / "orders.csv").write_text(csv_text(more), encoding="utf-8")
    [changed] = ingest(s).files
    assert (changed.rows_in, changed.accepted, changed.duplicates_merged) == (4, 1, 3)
    assert len(read(s, "orders")) == 4
    ledger = read(s, "_ingest_ledger")
    assert ledger.status.tolist().count("loaded") == 2


def test_missing_mapped_column_names_file_and_column(tmp_path):
    (tmp_path / "orders.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    s = orders_config(tmp_path, "orders.csv")
    [f] = ingest(s).files
    assert f.status == "failed"
    assert "orders.csv: line 1" in f.message and "客户编号" in f.message


def test_config_errors_name_key_and_file(tmp_path):
    (tmp_path / "tierwise.toml").write_text("[scoring]\nabc_cut = [0.7, 0.9]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        Settings.load(tmp_path / "tierwise.toml")
    assert "tierwise.toml: scoring.abc_cut: unknown key" in str(e.value)
    (tmp_path / "tierwise.toml").write_text('[sources.orderz]\npath = "x.csv"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sources\.orderz: unknown table"):
        Settings.load(tmp_path / "tierwise.toml")


def test_env_overrides_file(tmp_path, monkeypatch):
    s = orders_config(tmp_path, "orders.csv")
    assert s.warehouse.path.name == "warehouse.duckdb"
    monkeypatch.setenv("TIERWISE_WAREHOUSE__PATH", "other.duckdb")
    monkeypatch.setenv("TIERWISE_SCORING__ABC_CUTS", "[0.6, 0.8]")
    s = Settings.load(tmp_path / "tierwise.toml")
    assert s.warehouse.path.name == "other.duckdb" and s.scoring.abc_cuts == (0.6, 0.8)


def test_concurrent_ingest_is_refused_while_another_holds_the_warehouse(tmp_path):
    (tmp_path / "orders.csv").write_text(csv_text(ROWS), encoding="utf-8")
    s = orders_config(tmp_path, "orders.csv")
    wpath = s.resolve(s.warehouse.path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path\n"
            "from tierwise.services.locking import warehouse_lock\n"
            f"with warehouse_lock(Path({str(wpath)!r}), 'ingest'):\n"
            "    print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError, match=rf"busy: ingest \(pid {holder.pid}\)"):
            ingest(s)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    [f] = ingest(s).files
    assert f.accepted == 3
    with warehouse_lock(wpath, "run"), pytest.raises(BusyError):  # same process, second holder
        ingest(s)


ID_CHARS = (
    st.text(alphabet="0123456789+- ", min_size=1, max_size=20)
    .map(str.strip)
    .filter(lambda v: v != "" and v[0] in "0+")
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ids=st.lists(ID_CHARS, min_size=1, max_size=20, unique=True))
def test_identifiers_survive_as_strings(tmp_path_factory, ids):
    root = tmp_path_factory.mktemp("ids")
    rows = [[cid, f"{cid}-o", "2024-01-01", "1", ""] for cid in ids]
    (root / "orders.csv").write_text(csv_text(rows), encoding="utf-8")
    s = orders_config(root, "orders.csv")
    [f] = ingest(s).files
    assert f.accepted == len(ids), f
    df = read(s, "orders")
    assert sorted(df.customer_id) == sorted(ids)
    assert sorted(df.order_id) == sorted(f"{c}-o" for c in ids)


def test_quality_report_counts_orphans_outliers_and_reasons(tmp_path):
    rows = [[f"c{i}", f"o{i}", "2024-01-01", "10", ""] for i in range(40)]
    rows += [
        ["c1", "big", "2024-01-02", "100000", ""],
        ["zz", "o-orphan", "2024-01-02", "-3", ""],
        ["c2", "bad", "x", "1", ""],
    ]
    (tmp_path / "orders.csv").write_text(csv_text(rows), encoding="utf-8")
    (tmp_path / "customers.csv").write_text(
        "customer_id,name\n" + "".join(f"c{i},n{i}\n" for i in range(40)), encoding="utf-8"
    )
    s = write_config(
        tmp_path,
        f"""
        [sources.customers]
        path = "customers.csv"
        [sources.orders]
        path = "orders.csv"
        {MAPPING_ZH}""",
    )
    ingest(s)
    from tierwise.services.quality import latest_report

    report = latest_report(connect(s))
    o = report["tables"]["orders"]
    assert o["rows"] == 42 and o["return_lines"] == 1
    assert o["amount_outliers"]["count"] == 2  # 100000 and -3 lie outside the fences (IQR 0)
    assert o["orphan_orders"] == {"lines": 1, "customers": 1}
    assert o["reject_reasons"] == {"bad_date": 1}
    assert o["completeness"]["customer_id"] == 1.0 and o["completeness"]["product_id"] == 0.0
    assert report["tables"]["customers"]["completeness"]["name"] == 1.0


def test_amount_quartiles_of_many_lines_come_from_a_repeatable_sample(tmp_path, monkeypatch):
    from tierwise.services import quality

    rows = [[f"c{i % 50}", f"o{i}", "2024-01-01", str(i), ""] for i in range(1, 1001)]
    (tmp_path / "orders.csv").write_text(csv_text(rows), encoding="utf-8")
    s = write_config(tmp_path, f'[sources.orders]\npath = "orders.csv"\n{MAPPING_ZH}')
    ingest(s)
    con = connect(s)
    exact = quality.quality_report(con)["tables"]["orders"]
    assert exact["amount_outliers"]["fences"] == [-1247.75, 2248.75]  # q1 250.75, q3 750.25
    monkeypatch.setattr(quality, "QUARTILE_LINES", 100)
    sampled = quality.quality_report(con)["tables"]["orders"]
    assert (
        sampled["amount_outliers"]
        == quality.quality_report(con)["tables"]["orders"]["amount_outliers"]
    )
    assert sampled["amount_outliers"]["fences"] != exact["amount_outliers"]["fences"]
    assert sampled["rows"] == 1000  # every other count still covers every line
