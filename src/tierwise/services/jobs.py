"""Runs started from the API: the warehouse lock is taken while the request waits, so a busy
warehouse is refused at once, and the run itself goes on in a background thread.

Outcomes are kept in memory for polling; a restart forgets them (the warehouse's runs table keeps
the history). The thread is not a daemon: stopping the server waits for a started run to end.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from tierwise.core.errors import BusyError, ConflictError, NotFoundError, TierwiseError
from tierwise.core.settings import Settings
from tierwise.services.access import Viewer, require_operator
from tierwise.services.locking import warehouse_lock
from tierwise.services.run import run_holding_lock
from tierwise.services.serving import Store
from tierwise.store.audit import audit
from tierwise.store.models import utcnow

log = logging.getLogger(__name__)

JobStatus = Literal["running", "succeeded", "failed"]


@dataclass(frozen=True)
class RunJob:
    job_id: str
    started_by: str
    started_at: datetime
    status: JobStatus = "running"
    finished_at: datetime | None = None
    run_id: str | None = None
    error: str | None = None


class RunJobs:
    """The background runs of one API process."""

    def __init__(self) -> None:
        self._jobs: dict[str, RunJob] = {}
        self._guard = threading.Lock()

    def start(self, settings: Settings, store: Store, viewer: Viewer) -> RunJob:
        """Take the warehouse lock (ConflictError when a run or ingest holds it), audit the
        start as `run`, and run in a thread that releases the lock when it ends."""
        require_operator(viewer, "start runs")
        held = contextlib.ExitStack()
        try:
            held.enter_context(warehouse_lock(settings.resolve(settings.warehouse.path), "run"))
        except BusyError as e:
            raise ConflictError(str(e)) from e
        try:
            job = RunJob(uuid.uuid4().hex, viewer.username, utcnow())
            with store.write.begin() as session:
                audit(session, viewer.username, "run", f"job:{job.job_id}")
            self._set(job)
            threading.Thread(
                target=self._work, args=(job, settings, held), name=f"run-{job.job_id[:8]}"
            ).start()
        except BaseException:
            held.close()
            raise
        return job

    def get(self, job_id: str) -> RunJob:
        with self._guard:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no run job {job_id!r}")
        return job

    def _set(self, job: RunJob) -> None:
        with self._guard:
            self._jobs[job.job_id] = job

    def _work(self, job: RunJob, settings: Settings, held: contextlib.ExitStack) -> None:
        with held:
            try:
                result = run_holding_lock(settings)
            except TierwiseError as e:
                done = replace(job, status="failed", error=str(e))
            except Exception as e:  # a bug: logged in full, the poller sees only its type
                log.exception("run job %s failed", job.job_id)
                done = replace(job, status="failed", error=f"internal error ({type(e).__name__})")
            else:
                done = replace(job, status="succeeded", run_id=result.run_id)
        self._set(replace(done, finished_at=utcnow()))
