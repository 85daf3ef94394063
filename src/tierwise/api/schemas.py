"""Request and response bodies of /api/v1: one Base/Create/Public family per entity.

Inputs forbid unknown fields, so a client cannot slip in `role` or `user_id` (mass assignment),
and their text fields refuse control characters, NUL and unpaired surrogates, which neither
database stores.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tierwise.core.vocab import AbcClass, ChurnRisk, Class8, Stage, ValueTier
from tierwise.services.serving import MigrationDimension, SortKey

PLAIN_TEXT = r"^[^\x00-\x1f\x7f]*$"
"""No control characters; also rejects strings that are not valid Unicode."""

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=PLAIN_TEXT)]
SearchText = Annotated[str, StringConstraints(max_length=100, pattern=PLAIN_TEXT)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^\x00]*$")]

MAX_PAGE_SIZE = 200


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorOut(Output):
    detail: str


class Health(Output):
    status: Literal["ok"] = "ok"


# --- users and sign-in -------------------------------------------------------------------


class UserBase(Output):
    username: str
    display_name: str
    role: str
    team: str | None


class UserPublic(UserBase):
    permissions: list[str]


class LoginCreate(Input):
    username: ShortText
    password: Password


class LoginPublic(Output):
    user: UserPublic
    csrf_token: str = Field(description="Send as X-CSRF-Token with cookie-authenticated POSTs.")
    expires_at: datetime


# --- API tokens ---------------------------------------------------------------------------


class TokenBase(BaseModel):
    name: ShortText


class TokenCreate(TokenBase, Input):
    ttl_days: int | None = Field(90, ge=1, le=3650, description="Days to live; null: never.")


class TokenPublic(TokenBase, Output):
    id: int
    prefix: str
    created_at: datetime
    expires_at: datetime | None


class TokenListed(TokenPublic):
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="The secret, shown only in this response.")


# --- customers ----------------------------------------------------------------------------


class CustomerFilterQuery(Input):
    segment: ShortText | None = Field(None, description="rfm_segment code")
    class8: Class8 | None = None
    abc: AbcClass | None = None
    tier: ValueTier | None = None
    stage: Stage | None = None
    churn_risk: ChurnRisk | None = None
    q: SearchText | None = Field(
        None, description="Substring of the customer id (or the name, with pii:read)."
    )


class CustomerQuery(CustomerFilterQuery):
    sort: SortKey = "customer_id"
    order: Literal["asc", "desc"] = "asc"
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(50, ge=1, le=MAX_PAGE_SIZE)


class CustomerBase(Output):
    customer_id: str
    name: str | None
    phone: str | None
    email: str | None
    rfm_segment: str | None
    rfm_class8: str | None
    abc_class: str | None
    value_tier: str | None
    lifecycle_stage: str | None
    churn_risk: str | None
    account_manager: str | None
    revenue: float | None
    orders: int | None
    recency_days: int | None
    clv: float | None
    churn_probability: float | None
    profit: float | None
    consent_marketing: bool | None


class CustomerPublic(CustomerBase):
    """A list row; name, phone and email are masked without pii:read."""


class CustomerPage(Output):
    run_id: str | None
    items: list[CustomerPublic]
    total: int
    page: int
    page_size: int


class CustomerCount(Output):
    run_id: str | None
    total: int


class CustomerDetail(Output):
    run_id: str
    as_of: date
    profile: dict[str, Any] = Field(description="Every published field; personal data masked.")


class ErasureReceipt(Output):
    customer_id: str
    subject: str = Field(
        description="sha256 of the id, as the audit log and suppression list keep it."
    )
    erased_at: datetime
    store_rows: dict[str, int] = Field(description="Rows deleted per store table.")
    warehouse_rows: dict[str, int] = Field(description="Rows deleted per warehouse table.")
    redacted_rejects: int = Field(description="Reject lines whose raw text was blanked.")
    suppressed_contacts: int = Field(description="Phones and e-mails put on the suppression list.")


# --- segments and runs --------------------------------------------------------------------


class SegmentStat(Output):
    key: str | None = Field(description="The code; null for customers without one (no orders).")
    customers: int
    share: float
    revenue: float | None
    mean_clv: float | None


class SegmentTable(Output):
    run_id: str | None
    customers: int
    dimensions: dict[str, list[SegmentStat]]


class RunPublic(Output):
    run_id: str
    as_of: date
    status: str
    published_at: datetime | None
    customers: int
    is_current: bool


class RunJobPublic(Output):
    """A run started through the API; poll it until `status` is no longer `running`."""

    job_id: str
    started_by: str
    started_at: datetime
    status: Literal["running", "succeeded", "failed"]
    finished_at: datetime | None
    run_id: str | None = Field(description="The run's id once it succeeded.")
    error: str | None


# --- run-level aggregates and data quality ------------------------------------------------


class MigrationQuery(Input):
    dimension: MigrationDimension = "lifecycle_stage"


class MigrationRow(Output):
    from_value: str = Field(description='"(none)" for customers without a value.')
    to_value: str
    customers: int
    rate: float | None


class MigrationTable(Output):
    """Counted over every customer of the run: not narrowed to the caller's scope."""

    run_id: str | None
    dimension: str
    rows: list[MigrationRow]


class CohortRow(Output):
    cohort_month: date
    month_offset: int
    cohort_size: int
    active_customers: int
    retention: float | None


class CohortTable(Output):
    """Counted over every customer of the run: not narrowed to the caller's scope."""

    run_id: str | None
    rows: list[CohortRow]


class QualityPublic(Output):
    report: dict[str, Any] | None = Field(description="The last ingest's report; null before any.")


# --- exports ------------------------------------------------------------------------------


class CustomerExportQuery(CustomerFilterQuery):
    format: Literal["csv", "xlsx"] = "csv"
    purpose: Literal["analysis", "marketing"] = Field(
        "analysis",
        description="marketing: only customers who consented and are neither opted out nor erased.",
    )
