"""The JSON twin of every dashboard page, under /api/v1/dashboard: the page and its twin make
the same `Dashboard` call, so both show the same numbers for the same user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import Field

from tierwise.api.auth import UserDep
from tierwise.api.schemas import PLAIN_TEXT, CustomerPage, CustomerQuery, ErrorOut, MigrationQuery
from tierwise.services.dashboard import (
    Customer360,
    Dashboard,
    DataPage,
    LifecyclePage,
    ListFilter,
    Overview,
    RunsPage,
    SegmentsPage,
    ValuePage,
)
from tierwise.services.serving import CustomerFilter

router = APIRouter(
    prefix="/dashboard",
    tags=["dashboard"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)


def get_dashboard(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


DashboardDep = Annotated[Dashboard, Depends(get_dashboard)]


class CustomerListQuery(CustomerQuery):
    """The customer list's query, plus one R×F cell of the segments heatmap."""

    r: int | None = Field(None, ge=1, le=5, description="R score")
    f: int | None = Field(None, ge=1, le=5, description="F score")


def list_filter(query: CustomerListQuery) -> ListFilter:
    base = CustomerFilter(
        segment=query.segment,
        class8=query.class8,
        abc=query.abc,
        tier=query.tier,
        stage=query.stage,
        churn_risk=query.churn_risk,
        q=query.q,
    )
    return ListFilter(base, query.r, query.f)


@router.get("/overview")
def overview(user: UserDep, dashboard: DashboardDep) -> Overview:
    """KPIs with their change since the previous run, the Pareto curve, segments and stages."""
    return dashboard.overview(user)


@router.get("/segments")
def segments(user: UserDep, dashboard: DashboardDep) -> SegmentsPage:
    """The R×F grid and the size, revenue and mean CLV of every class of each dimension."""
    return dashboard.segments(user)


@router.get("/lifecycle")
def lifecycle(
    query: Annotated[MigrationQuery, Query()], user: UserDep, dashboard: DashboardDep
) -> LifecyclePage:
    """Migration since the previous run, cohort retention and stage counts over runs."""
    return dashboard.lifecycle(user, query.dimension)


@router.get("/value")
def value(user: UserDep, dashboard: DashboardDep) -> ValuePage:
    """CLV and profit distributions, high-risk customers with reasons, model validation."""
    return dashboard.value(user)


@router.get("/customers")
def customers(
    query: Annotated[CustomerListQuery, Query()], user: UserDep, dashboard: DashboardDep
) -> CustomerPage:
    """The customer list of the dashboard: /api/v1/customers plus an R×F cell filter."""
    page = dashboard.customers(
        user,
        list_filter(query),
        sort=query.sort,
        descending=query.order == "desc",
        page=query.page,
        page_size=query.page_size,
    )
    return CustomerPage.model_validate(page)


@router.get("/customers/{customer_id}", responses={404: {"model": ErrorOut}})
def customer(
    customer_id: Annotated[str, Path(min_length=1, max_length=128, pattern=PLAIN_TEXT)],
    user: UserDep,
    dashboard: DashboardDep,
) -> Customer360:
    """Customer 360: the masked profile, reasons, order history, interactions and feedback."""
    return dashboard.customer(user, customer_id)


@router.get("/data")
def data(user: UserDep, dashboard: DashboardDep) -> DataPage:
    """The ingest ledger, the quality report and recent rejects (admin, analyst)."""
    return dashboard.data(user)


@router.get("/runs")
def runs(user: UserDep, dashboard: DashboardDep) -> RunsPage:
    """Published runs and the warehouse's run history (errors for admins and analysts)."""
    return dashboard.runs(user)
