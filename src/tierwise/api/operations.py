"""Runs started over the API, run-level aggregates (segment migration, cohort retention) and the
data-quality report.

Migration and cohort tables are counts over every customer of a run, with no customer rows, so
they are not narrowed to the caller's scope; the quality report describes whole source tables
and is for admins and analysts only, like starting a run.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from tierwise.api.auth import SettingsDep, StoreDep, UserDep, current_user
from tierwise.api.schemas import (
    PLAIN_TEXT,
    CohortTable,
    ErrorOut,
    MigrationQuery,
    MigrationTable,
    QualityPublic,
    RunJobPublic,
)
from tierwise.services import serving
from tierwise.services.jobs import RunJobs

router = APIRouter(responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}})


def get_run_jobs(request: Request) -> RunJobs:
    jobs: RunJobs = request.app.state.run_jobs
    return jobs


RunJobsDep = Annotated[RunJobs, Depends(get_run_jobs)]


@router.post(
    "/runs",
    tags=["runs"],
    status_code=status.HTTP_202_ACCEPTED,
    responses={409: {"model": ErrorOut, "description": "A run or ingest holds the warehouse."}},
)
def start_run(
    user: UserDep, store: StoreDep, settings: SettingsDep, jobs: RunJobsDep, response: Response
) -> RunJobPublic:
    """Start a run in the background (admin, analyst); poll the job at `Location`."""
    job = jobs.start(settings, store, user)
    response.headers["Location"] = f"/api/v1/runs/jobs/{job.job_id}"
    return RunJobPublic.model_validate(job)


@router.get(
    "/runs/jobs/{job_id}",
    tags=["runs"],
    dependencies=[Depends(current_user)],
    responses={404: {"model": ErrorOut}},
)
def run_job(
    job_id: Annotated[str, Path(min_length=1, max_length=64, pattern=PLAIN_TEXT)],
    jobs: RunJobsDep,
) -> RunJobPublic:
    """A run started through this server: running, succeeded (with its run id) or failed."""
    return RunJobPublic.model_validate(jobs.get(job_id))


@router.get("/lifecycle/migration", tags=["segments"], dependencies=[Depends(current_user)])
def migration(query: Annotated[MigrationQuery, Query()], store: StoreDep) -> MigrationTable:
    """Customers moving from one value of a dimension to another since the previous run."""
    return MigrationTable.model_validate(serving.migration(store, query.dimension))


@router.get("/cohorts", tags=["segments"], dependencies=[Depends(current_user)])
def cohorts(store: StoreDep) -> CohortTable:
    """Share of each first-order-month cohort ordering again N months later."""
    return CohortTable.model_validate(serving.cohorts(store))


@router.get("/quality", tags=["quality"])
def quality(user: UserDep, settings: SettingsDep) -> QualityPublic:
    """The data-quality report of the last ingest (admin, analyst)."""
    return QualityPublic(report=serving.quality(settings, user))
