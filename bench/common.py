"""Shared benchmark plumbing: machine description, subprocess runs with peak RSS, result files."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent

PACKAGES = (
    "tierwise",
    "duckdb",
    "ibis-framework",
    "pyarrow",
    "pandas",
    "numpy",
    "scipy",
    "pyspark",
    "lifetimes",
    "pymc-marketing",
    "pymc",
    "pytensor",
)


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict[str, object]:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    versions = {}
    for pkg in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
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


_CHILD_EPILOGUE = """
import json as _json
from bench.common import peak_rss_tree_mib as _peak
result["peak_rss_mib"], result["peak_rss_children_mib"] = _peak()
print("__RESULT__ " + _json.dumps(result, default=str), flush=True)
"""


def child(code: str, *, timeout: float | None = None, env: dict[str, str] | None = None) -> dict:
    """Run Python `code` in a fresh interpreter and return the dict it leaves in `result`.

    The code times what it measures itself (imports and setup excluded). `peak_rss_mib` is the
    process's own peak RSS; `peak_rss_children_mib` adds the peaks of processes it started that
    are still alive at the end (the Spark JVM), read before the interpreter exits.
    """
    script = textwrap.dedent(code) + _CHILD_EPILOGUE
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": _pythonpath(), **(env or {})},
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("__RESULT__ ")]
    if proc.returncode or not lines:
        raise RuntimeError(
            f"benchmark process failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    return json.loads(lines[-1].removeprefix("__RESULT__ "))


def _pythonpath() -> str:
    """The repository root first (for `bench`), then whatever the caller had."""
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def _descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
            parents.setdefault(int(fields["PPid"]), []).append(int(status.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _vm_hwm_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_tree_mib() -> tuple[float, float]:
    """(peak RSS of this process, sum of the peak RSS of its live descendants) in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return own, sum(_vm_hwm_mib(p) for p in _descendants(os.getpid()))


def summarise(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def span(samples: list[float], digits: int = 2) -> str:
    """'median (min–max)' for a table cell."""
    s = summarise(samples)
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def alternate(
    contenders: dict[str, Any], repeats: int, *, caps: dict[str, int] | None = None
) -> dict[str, list[dict]]:
    """Call each contender (a no-argument callable returning a dict) in turn, `repeats` rounds;
    `caps` limits slow contenders to fewer rounds (they take part in the first ones).

    Alternating spreads slow drift of the machine (other jobs, page cache, thermal) evenly
    across contenders instead of penalising whichever runs last.
    """
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    for i in range(repeats):
        for name, call in contenders.items():
            if i >= (caps or {}).get(name, repeats):
                continue
            out = call()
            runs[name].append(out)
            print(
                f"  [{i + 1}/{repeats}] {name}: {out.get('seconds', float('nan')):.3f} s",
                flush=True,
            )
    return runs


def header(name: str) -> str:
    m = machine()
    stamp = datetime.now(UTC).isoformat("T", "seconds")
    return (
        f"### {name}\n\n{stamp} · {m['cores']} cores ({m['cpu']}) · {m['ram_gib']} GiB · "
        f"Python {m['python']} · "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())  # type: ignore[union-attr]
        + "\n\n"
    )


def write_results(name: str, rows: list[dict[str, object]], markdown: str, **extra: Any) -> Path:
    """bench/results/<name>.md and .json, both stamped with the machine description."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).isoformat("T", "seconds")
    payload = {"benchmark": name, "at": stamp, "machine": machine(), "rows": rows, **extra}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))
    path = RESULTS / f"{name}.md"
    path.write_text(header(name) + markdown + "\n")
    return path


def now() -> float:
    return time.perf_counter()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cli(
    name: str,
    doc: str | None,
    bench: Callable[[int, int], dict],
    table: Callable[[list[dict]], str],
) -> None:
    """The command line every per-benchmark module shares: sizes, repeats, write the results."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--customers", type=int, nargs="+", default=[100_000])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    results = [bench(c, args.repeats) for c in args.customers]
    md = table(results)
    print(md)
    print("written:", write_results(name, results, md))
