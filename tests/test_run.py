"""`tierwise run` snapshots on a real DuckDB file: switch only after checks, survive SIGKILL."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tierwise.core.errors import ContractError, DataError
from tierwise.core.settings import Settings
from tierwise.services.export import export_profiles, neutralise
from tierwise.services.ingest import ingest
from tierwise.services.run import RUNS, check_contracts, current_run, run, snapshot_table
from tierwise.services.warehouse import connect


def orders_parquet(path: Path, customers: int, lines: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01T00:00:00")
    cust = rng.integers(0, customers, lines)
    pq.write_table(
        pa.table(
            {
                "customer_id": [f"{c:06d}" for c in cust],
                "order_id": [f"SO{i}" for i in range(lines)],
                "ordered_at": start + rng.integers(0, 700 * 86400, lines).astype("timedelta64[s]"),
                "amount": np.round(rng.gamma(2.0, 50.0, lines), 2),
            }
        ),
        path,
    )


def project(root: Path, customers: int = 300, lines: int = 3000) -> Settings:
    orders_parquet(root / "orders.parquet", customers, lines)
    (root / "tierwise.toml").write_text('[sources.orders]\npath = "orders.parquet"\n')
    s = Settings.load(root / "tierwise.toml")
    ingest(s)
    return s


def profiles(s: Settings, run_id: str) -> pd.DataFrame:
    con = connect(s)
    return con.table(snapshot_table("profiles", run_id)).to_pandas().sort_values("customer_id")


def test_run_switches_current_and_records_itself(tmp_path):
    s = project(tmp_path)
    first = run(s)
    latest = pd.read_parquet(tmp_path / "orders.parquet").ordered_at.max().date()
    assert first.as_of == latest  # default: the date of the latest order
    con = connect(s)
    assert current_run(con) == (first.run_id, first.as_of)
    second = run(s, as_of=date(2025, 6, 30))
    assert current_run(con)[0] == second.run_id
    assert second.previous_run_id == first.run_id
    runs = con.table(RUNS).to_pandas().set_index("run_id")
    assert runs.loc[[first.run_id, second.run_id], "status"].tolist() == ["succeeded"] * 2
    assert runs.loc[second.run_id, "customers"] == 300
    assert set(
        pd.read_json(
            pd.io.common.StringIO(runs.loc[second.run_id, "stage_seconds"]), typ="series"
        ).index
    ) >= {"profiles", "checks", "migration", "cohorts"}
    migration = con.table(snapshot_table("migration", second.run_id)).to_pandas()
    stage = migration[migration.dimension == "lifecycle_stage"]
    assert stage.customers.sum() == 300  # every customer of the new run has a from-stage


def test_run_without_orders_is_a_clear_error(tmp_path):
    (tmp_path / "tierwise.toml").write_text("")
    with pytest.raises(DataError, match="tierwise ingest"):
        run(Settings.load(tmp_path / "tierwise.toml"))


def test_contract_checks_refuse_broken_snapshots(tmp_path):
    s = project(tmp_path, customers=20, lines=100)
    con = connect(s)
    good = con.table(snapshot_table("profiles", run(s).run_id))
    check_contracts(good, segments={r.segment for r in s.scoring.scheme_rules()})
    dup = good.union(good.limit(1))
    with pytest.raises(ContractError, match="duplicate customer_id: 1"):
        check_contracts(dup, segments={r.segment for r in s.scoring.scheme_rules()})
    bad = good.mutate(r_score=good.r_score + 5)
    with pytest.raises(ContractError, match=r"r_score outside 1\.\.5"):
        check_contracts(bad, segments={r.segment for r in s.scoring.scheme_rules()})
    with pytest.raises(ContractError, match="unknown rfm_segment"):
        check_contracts(good, segments={"only_this"})


KILLER = """
import sys
from tierwise.core.settings import Settings
from tierwise.services.run import run
run(Settings.load(sys.argv[1]), on_stage=lambda name: print(name, flush=True))
"""


def test_killed_run_leaves_previous_snapshot_and_next_run_succeeds(tmp_path):
    s = project(tmp_path, customers=50_000, lines=600_000)
    before = run(s)
    snapshot = profiles(s, before.run_id)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLER, str(tmp_path / "tierwise.toml")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "profiles"  # it is writing the new snapshot now
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    con = connect(s)
    assert current_run(con)[0] == before.run_id
    pd.testing.assert_frame_equal(profiles(s, before.run_id), snapshot)
    con.disconnect()
    after = run(s)
    con = connect(s)
    runs = con.table(RUNS).to_pandas().set_index("run_id")
    killed = runs[~runs.index.isin([before.run_id, after.run_id])]
    assert killed.status.tolist() == ["interrupted"]
    assert not any(killed.index[0] in t for t in con.list_tables())
    assert current_run(con)[0] == after.run_id
    assert len(profiles(s, after.run_id)) == len(snapshot)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".xlsx"])
def test_export_profiles_contract(tmp_path, suffix):
    s = project(tmp_path, customers=40, lines=200)
    result = run(s)
    out = tmp_path / f"profiles{suffix}"
    exported = export_profiles(connect(s), out, run_id=None)
    buyers = pd.read_parquet(tmp_path / "orders.parquet").customer_id.nunique()
    assert exported.rows == buyers and exported.run_id == result.run_id
    if suffix == ".csv":
        df = pd.read_csv(out, dtype={"customer_id": str})
    elif suffix == ".parquet":
        df = pd.read_parquet(out)
    else:
        df = pd.read_excel(out, dtype={"customer_id": str})
    assert list(df.columns[:19]) == [
        "customer_id",
        "first_order_at",
        "last_order_at",
        "orders",
        "revenue",
        "avg_order_value",
        "recency_days",
        "tenure_days",
        "r_score",
        "f_score",
        "m_score",
        "rfm_code",
        "rfm_segment",
        "rfm_class8",
        "abc_class",
        "value_tier",
        "lifecycle_stage",
        "profit",
        "is_unprofitable",
    ]
    assert df.customer_id.str.len().eq(6).all()  # leading zeros kept
    assert not out.with_name(out.name + ".partial").exists()


def test_export_of_another_run_and_unknown_run(tmp_path):
    s = project(tmp_path, customers=30, lines=150)
    old = run(s, as_of=date(2024, 6, 30))
    run(s)
    out = tmp_path / "old.parquet"
    export_profiles(connect(s), out, as_of=date(2024, 6, 30))
    assert pd.read_parquet(out).orders.sum() == profiles(s, old.run_id).orders.sum()
    with pytest.raises(DataError, match="no successful run"):
        export_profiles(connect(s), out, run_id="nope")


def test_spreadsheet_cells_are_neutralised(tmp_path):
    table = pa.table(
        {
            "name": ['=HYPERLINK("x")', "+86 138", "-2", "@SUM", "\tx", "\rx", "ok"],
            "n": [-1.5, 2, 3, 4, 5, 6, 7],
        }
    )
    out = neutralise(table)
    assert out.column("name").to_pylist() == [
        '\'=HYPERLINK("x")',
        "'+86 138",
        "'-2",
        "'@SUM",
        "'\tx",
        "'\rx",
        "ok",
    ]
    assert out.column("n").to_pylist() == [-1.5, 2, 3, 4, 5, 6, 7]  # numbers stay numbers
    path = tmp_path / "x.csv"
    import pyarrow.csv as pacsv

    pacsv.write_csv(out, path)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[1][0] == '\'=HYPERLINK("x")'
