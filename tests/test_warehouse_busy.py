"""A warehouse another process holds open is a clear, retryable refusal, not a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tierwise.core.errors import BusyError
from tierwise.core.settings import Settings
from tierwise.services.warehouse import connect

HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE t (a INTEGER)")
print("holding", flush=True)
sys.stdin.read()
"""


def test_a_warehouse_held_by_another_process_is_busy(tmp_path: Path):
    path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with pytest.raises(BusyError, match="in use by another process"):
            connect(Settings(root=tmp_path))
    finally:
        holder.kill()
        holder.wait()
    connect(Settings(root=tmp_path)).disconnect()  # free again once the holder is gone
