"""The `tierwise` command as a user runs it: a real process, real files, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tierwise.core.settings import Settings


def tierwise(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierwise", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_init_writes_a_loadable_commented_config(tmp_path):
    done = tierwise("init", str(tmp_path / "proj"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "proj" / "tierwise.toml").read_text(encoding="utf-8")
    assert "客户编号" in text and "# " in text
    s = Settings.load(tmp_path / "proj" / "tierwise.toml")
    assert s.sources["orders"].path == "data/orders.csv"
    again = tierwise("init", str(tmp_path / "proj"), cwd=tmp_path)
    assert again.returncode == 1 and "--force" in again.stderr


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[warehouse]\nengine = 'oracle'\n", "tierwise.toml: warehouse.engine: Input should be"),
        ("[scoring\n", "tierwise.toml: Expected ']'"),
        ("[sources.orders]\nformat = 'csv'\n", "sources.orders: a file source needs `path`"),
    ],
)
def test_config_errors_are_one_clear_line(tmp_path, toml, message):
    (tmp_path / "tierwise.toml").write_text(toml, encoding="utf-8")
    done = tierwise("quality", cwd=tmp_path)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_ingest_run_export_from_the_command_line(tmp_path):
    (tmp_path / "orders.csv").write_text(
        "customer_id,order_id,ordered_at,amount\n"
        "007,a,2024-01-01,10\n007,b,2024-02-01,20\n008,c,2024-02-03,5\n009,d,oops,1\n",
        encoding="utf-8",
    )
    (tmp_path / "tierwise.toml").write_text('[sources.orders]\npath = "orders.csv"\n')
    done = tierwise("--json", "ingest", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [f] = json.loads(done.stdout)["files"]
    assert (f["rows_in"], f["accepted"], f["rejected"]) == (4, 3, 1)
    assert f["reasons"] == {"bad_date": 1}
    done = tierwise("--json", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["customers"] == 2 and summary["as_of"] == "2024-02-03"  # 009 was rejected
    done = tierwise("export", "profiles", "--out", "p.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[1].startswith('"007"')
    missing = tierwise("export", "profiles", "--out", "p.csv", "--run", "nope", cwd=tmp_path)
    assert missing.returncode == 1 and "no successful run" in missing.stderr
