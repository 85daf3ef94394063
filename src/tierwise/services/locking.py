"""One writer at a time per warehouse: ingests and runs take an exclusive lock file.

A second writer is refused at once with who holds the lock, instead of interleaving writes.
The operating system drops the lock when the holder exits, even on SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from tierwise.core.errors import BusyError


@contextlib.contextmanager
def warehouse_lock(warehouse: Path, what: str) -> Iterator[None]:
    path = warehouse.with_name(warehouse.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            raise BusyError(
                f"{warehouse} is busy: {holder}; nothing was written, try again when it ends"
            ) from None
        os.ftruncate(fd, 0)
        info = {
            "what": what,
            "pid": os.getpid(),
            "since": datetime.now(UTC).isoformat("T", "seconds"),
        }
        os.write(fd, json.dumps(info).encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        info = {}
    if not info:
        return "another ingest or run holds it"
    return f"{info.get('what', 'a job')} (pid {info.get('pid')}) since {info.get('since')}"
