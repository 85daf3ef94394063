"""Shared benchmark plumbing: machine description, subprocess runs with peak RSS, result files."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
DATA = Path(__file__).parent / "data"


def machine() -> dict[str, object]:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    versions = {}
    for pkg in ("tierwise", "duckdb", "ibis-framework", "pyarrow", "pandas", "pyspark"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def timed_subprocess(code: str) -> tuple[float, float, str]:
    """Run Python code in a fresh process: (seconds, peak RSS in MiB, its stdout)."""
    wrapper = (
        "import resource, sys, time\n"
        "t0 = time.perf_counter()\n"
        f"{code}\n"
        "dt = time.perf_counter() - t0\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(f'__BENCH__ {dt} {rss}')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper], capture_output=True, text=True, check=False
    )
    if proc.returncode:
        raise RuntimeError(f"benchmark process failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("__BENCH__"))
    _, dt, rss = line.split()
    return float(dt), float(rss), proc.stdout


def summarise(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def write_results(name: str, rows: list[dict[str, object]], markdown: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).isoformat("T", "seconds")
    payload = {"benchmark": name, "at": stamp, "machine": machine(), "rows": rows}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))
    m = machine()
    header = (
        f"# {name}\n\n{stamp} · {m['cores']} cores · {m['ram_gib']} GiB · Python {m['python']} · "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())  # type: ignore[union-attr]
        + "\n\n"
    )
    path = RESULTS / f"{name}.md"
    path.write_text(header + markdown + "\n")
    return path


def now() -> float:
    return time.perf_counter()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
