"""Customers, segments and runs of the current published run, as the caller may see them.

Routes only translate HTTP to service calls; scoping and masking happen in the services, so the
dashboard pages that call the same services show exactly what these endpoints return.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from tierwise.api.auth import SettingsDep, StoreDep, UserDep, current_user
from tierwise.api.schemas import (
    PLAIN_TEXT,
    CustomerCount,
    CustomerDetail,
    CustomerFilterQuery,
    CustomerPage,
    CustomerQuery,
    ErasureReceipt,
    ErrorOut,
    RunPublic,
    SegmentTable,
)
from tierwise.services import erase, serving

router = APIRouter(responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}})


def customer_filter(query: CustomerFilterQuery) -> serving.CustomerFilter:
    return serving.CustomerFilter(
        segment=query.segment,
        class8=query.class8,
        abc=query.abc,
        tier=query.tier,
        stage=query.stage,
        churn_risk=query.churn_risk,
        q=query.q,
    )


@router.get("/customers", tags=["customers"])
def list_customers(
    query: Annotated[CustomerQuery, Query()], user: UserDep, store: StoreDep
) -> CustomerPage:
    """List and search the caller's customers, one page at a time."""
    page = serving.list_customers(
        store,
        user,
        customer_filter(query),
        sort=query.sort,
        descending=query.order == "desc",
        page=query.page,
        page_size=query.page_size,
    )
    return CustomerPage.model_validate(page)


@router.get("/customer-count", tags=["customers"])
def count_customers(
    query: Annotated[CustomerFilterQuery, Query()], user: UserDep, store: StoreDep
) -> CustomerCount:
    """How many of the caller's customers match the filters."""
    return CustomerCount.model_validate(
        serving.count_customers(store, user, customer_filter(query))
    )


@router.get("/customers/{customer_id}", tags=["customers"], responses={404: {"model": ErrorOut}})
def get_customer(
    customer_id: Annotated[str, Path(min_length=1, max_length=128, pattern=PLAIN_TEXT)],
    user: UserDep,
    store: StoreDep,
) -> CustomerDetail:
    """The whole profile of one customer; customers outside the caller's scope are 404."""
    return CustomerDetail.model_validate(serving.customer_detail(store, user, customer_id))


@router.delete("/customers/{customer_id}", tags=["customers"], responses={404: {"model": ErrorOut}})
def erase_customer(
    customer_id: Annotated[str, Path(min_length=1, max_length=128, pattern=PLAIN_TEXT)],
    user: UserDep,
    store: StoreDep,
    settings: SettingsDep,
    request: Request,
) -> ErasureReceipt:
    """Erase the person everywhere, for good (admin); returns the receipt."""
    receipt = erase.forget_as(settings, store, user, customer_id)
    request.app.state.dashboard.invalidate()  # its kept totals still counted the person
    return ErasureReceipt.model_validate(receipt)


@router.get("/segments", tags=["segments"])
def segments(user: UserDep, store: StoreDep) -> SegmentTable:
    """Size, revenue and mean CLV per RFM segment, class8, ABC class, tier and stage."""
    return SegmentTable.model_validate(serving.segments(store, user))


@router.get("/runs", tags=["runs"], dependencies=[Depends(current_user)])
def runs(store: StoreDep) -> list[RunPublic]:
    """Published runs, newest first; the current one is flagged."""
    return [RunPublic.model_validate(r) for r in serving.list_runs(store)]
