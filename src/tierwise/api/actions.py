"""From tiers to action: follow-up tasks, complaint tickets and feedback, membership levels and
campaigns with their effect, under /api/v1.

Routes only translate HTTP to service calls; the services apply the role and scope rules (agents
see their own tasks, tickets and customers; anything else is 404 like a missing record), so the
dashboard pages calling the same services show exactly what these endpoints return.
"""

from __future__ import annotations

import os
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import FileResponse
from pydantic import Field, StringConstraints
from starlette.background import BackgroundTask

from tierwise.api.auth import BAD_BODY, SettingsDep, StoreDep, UserDep
from tierwise.api.exports import MEDIA_TYPES
from tierwise.api.schemas import (
    MAX_PAGE_SIZE,
    PLAIN_TEXT,
    CustomerFilterQuery,
    ErrorOut,
    Input,
    Output,
    ShortText,
)
from tierwise.core.settings import ComplaintCategory
from tierwise.services import campaigns, complaints, membership, tasks
from tierwise.services.complaints import FeedbackDimension
from tierwise.services.serving import CustomerFilter

router = APIRouter(
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}}
)

Note = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$")]
"""Free text typed by people: newlines allowed, NUL never."""
CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=PLAIN_TEXT)]
RecordId = Annotated[int, Path(ge=1, le=2**31 - 1)]


# --- tasks ------------------------------------------------------------------------------------


class TaskQuery(Input):
    status: Literal["open", "escalated", "done", "cancelled"] | None = None
    assignee: ShortText | None = None
    customer_id: CustomerId | None = None
    reason: ShortText | None = None
    overdue: bool | None = Field(None, description="true: active tasks past due.")
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(50, ge=1, le=MAX_PAGE_SIZE)


class TaskPublic(Output):
    id: int
    customer_id: str
    reason: str
    rule: str | None
    assignee: str | None
    queue: str | None
    status: str
    outcome: str | None
    note: str | None
    due_at: datetime | None
    created_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    escalated_to: str | None
    escalated_at: datetime | None
    overdue: bool


class TaskPage(Output):
    items: list[TaskPublic]
    total: int
    counts: dict[str, int] = Field(description="Visible tasks per status, ignoring `status`.")
    page: int
    page_size: int


class TaskCreate(Input):
    customer_id: CustomerId
    reason: ShortText
    assignee: ShortText | None = Field(None, description="Default: the account manager.")
    due_at: datetime | None = Field(None, description="Default: now + tasks.due_hours.")
    note: Note | None = None


class TaskCreated(Output):
    task: TaskPublic
    created: bool = Field(description="False: the open task for this customer and reason.")


class TaskOutcomeCreate(Input):
    outcome: Literal["reached", "not_reached", "won_back", "lost"]
    note: Note | None = None


class EscalationPublic(Output):
    task_id: int
    escalated_to: str | None
    queue: str | None


class EscalationResult(Output):
    escalated: list[EscalationPublic]


class ChurnTasksPublic(Output):
    run_id: str | None
    customers: int
    created: int


@router.get("/tasks", tags=["tasks"])
def list_tasks(query: Annotated[TaskQuery, Query()], user: UserDep, store: StoreDep) -> TaskPage:
    """The caller's tasks (the tasks board), oldest due first."""
    where = tasks.TaskFilter(
        status=query.status,
        assignee=query.assignee,
        customer_id=query.customer_id,
        reason=query.reason,
        overdue=query.overdue,
    )
    page = tasks.list_tasks(store, user, where, page=query.page, page_size=query.page_size)
    return TaskPage.model_validate(page)


@router.post(
    "/tasks",
    tags=["tasks"],
    status_code=status.HTTP_201_CREATED,
    responses={
        **BAD_BODY,
        200: {"model": TaskCreated, "description": "The open task already there."},
    },
)
def create_task(
    body: TaskCreate, user: UserDep, store: StoreDep, settings: SettingsDep, response: Response
) -> TaskCreated:
    """Open a follow-up for a customer the caller may read (200 with the open one if any)."""
    task, created = tasks.create_task(
        store,
        settings,
        user,
        body.customer_id,
        body.reason,
        assignee=body.assignee,
        due_at=body.due_at,
        note=body.note,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return TaskCreated(task=TaskPublic.model_validate(task), created=created)


@router.post("/tasks/escalate", tags=["tasks"])
def escalate_tasks(user: UserDep, store: StoreDep, settings: SettingsDep) -> EscalationResult:
    """Escalate overdue open tasks to their team's manager (admin, analyst)."""
    return EscalationResult.model_validate(tasks.escalate_overdue(store, settings, user))


@router.post("/tasks/churn", tags=["tasks"])
def churn_tasks(user: UserDep, store: StoreDep, settings: SettingsDep) -> ChurnTasksPublic:
    """Open churn follow-ups for customers at a configured churn risk (admin, analyst)."""
    return ChurnTasksPublic.model_validate(tasks.create_churn_tasks(store, settings, user))


@router.get("/tasks/{task_id}", tags=["tasks"])
def get_task(task_id: RecordId, user: UserDep, store: StoreDep) -> TaskPublic:
    return TaskPublic.model_validate(tasks.get_task(store, user, task_id))


@router.post(
    "/tasks/{task_id}/outcome", tags=["tasks"], responses={**BAD_BODY, 409: {"model": ErrorOut}}
)
def record_outcome(
    task_id: RecordId, body: TaskOutcomeCreate, user: UserDep, store: StoreDep
) -> TaskPublic:
    """Close a task with the call's outcome; 409 if it is closed already."""
    return TaskPublic.model_validate(
        tasks.record_outcome(store, user, task_id, body.outcome, note=body.note)
    )


# --- complaints and feedback ------------------------------------------------------------------


class ComplaintQuery(Input):
    status: Literal["open", "responded", "resolved", "closed"] | None = None
    category: ComplaintCategory | None = None
    owner: ShortText | None = None
    customer_id: CustomerId | None = None
    unresolved: bool | None = None
    breached: bool | None = Field(None, description="true: a deadline was missed.")
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(50, ge=1, le=MAX_PAGE_SIZE)


class ComplaintPublic(Output):
    id: int
    customer_id: str
    source: str
    category: str
    channel: str | None
    description: str | None
    owner: str | None
    status: str
    opened_at: datetime
    first_response_due_at: datetime
    resolution_due_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    resolution: str | None
    created_by: str
    task_id: int | None
    first_response_sla: Literal["met", "breached", "pending", "overdue"]
    resolution_sla: Literal["met", "breached", "pending", "overdue"]


class ComplaintPage(Output):
    items: list[ComplaintPublic]
    total: int
    counts: dict[str, int]
    page: int
    page_size: int


class ComplaintCreate(Input):
    customer_id: CustomerId
    category: ComplaintCategory
    description: Note | None = None
    channel: ShortText | None = None
    owner: ShortText | None = Field(None, description="Default: the account manager.")


class ComplaintStatusUpdate(Input):
    status: Literal["responded", "resolved", "closed"] = Field(
        description="responded on a resolved ticket reopens it."
    )
    resolution: Note | None = None


class ComplaintAssign(Input):
    owner: ShortText


class ImportQuery(Input):
    since: date | None = None


class ImportPublic(Output):
    rows: int
    created: int
    resolved: int
    raised: int = Field(description="Churn risks raised again for open tickets of the app.")


class SlaCountsPublic(Output):
    met: int
    breached: int
    pending: int
    overdue: int
    met_rate: float | None


class SlaSummaryPublic(Output):
    tickets: int
    first_response: SlaCountsPublic
    resolution: SlaCountsPublic


class SlaReportPublic(Output):
    now: datetime
    overall: SlaSummaryPublic
    by_category: dict[str, SlaSummaryPublic]
    open: int


class SlaQuery(Input):
    since: datetime | None = None


class FeedbackQuery(Input):
    by: FeedbackDimension | Literal["month"] = "rfm_segment"


class FeedbackStatPublic(Output):
    key: str | None
    responses: int
    csat_responses: int
    csat_mean: float | None
    csat_satisfied: float | None = Field(description="Share of CSAT answers of 4 or 5.")
    nps_responses: int
    nps: float | None = Field(description="% promoters (9-10) minus % detractors (0-6).")


class FeedbackTablePublic(Output):
    run_id: str | None
    dimension: str
    rows: list[FeedbackStatPublic]


@router.get("/complaints", tags=["complaints"])
def list_complaints(
    query: Annotated[ComplaintQuery, Query()], user: UserDep, store: StoreDep
) -> ComplaintPage:
    """The caller's complaint tickets, newest first, with their SLA states."""
    where = complaints.ComplaintFilter(
        status=query.status,
        category=query.category,
        owner=query.owner,
        customer_id=query.customer_id,
        unresolved=query.unresolved,
        breached=query.breached,
    )
    return ComplaintPage.model_validate(
        complaints.list_complaints(store, user, where, page=query.page, page_size=query.page_size)
    )


@router.post(
    "/complaints", tags=["complaints"], status_code=status.HTTP_201_CREATED, responses=BAD_BODY
)
def create_complaint(
    body: ComplaintCreate, user: UserDep, store: StoreDep, settings: SettingsDep
) -> ComplaintPublic:
    """Open a ticket for a customer the caller may read: deadlines, a follow-up task, and the
    customer's churn risk raised."""
    return ComplaintPublic.model_validate(
        complaints.create_complaint(
            store,
            settings,
            user,
            body.customer_id,
            body.category,
            description=body.description,
            channel=body.channel,
            owner=body.owner,
        )
    )


@router.get("/complaints/sla", tags=["complaints"])
def complaint_sla(
    query: Annotated[SlaQuery, Query()], user: UserDep, store: StoreDep
) -> SlaReportPublic:
    """First-response and resolution deadlines met, missed and pending, per category."""
    return SlaReportPublic.model_validate(complaints.sla_report(store, user, since=query.since))


@router.post("/complaints/import", tags=["complaints"])
def import_complaints(
    query: Annotated[ImportQuery, Query()], user: UserDep, store: StoreDep, settings: SettingsDep
) -> ImportPublic:
    """Tickets from the warehouse's complaint interactions (admin, analyst)."""
    return ImportPublic.model_validate(
        complaints.import_complaints(settings, store, user, since=query.since)
    )


@router.get("/complaints/{complaint_id}", tags=["complaints"])
def get_complaint(complaint_id: RecordId, user: UserDep, store: StoreDep) -> ComplaintPublic:
    return ComplaintPublic.model_validate(complaints.get_complaint(store, user, complaint_id))


@router.post(
    "/complaints/{complaint_id}/status",
    tags=["complaints"],
    responses={**BAD_BODY, 409: {"model": ErrorOut}},
)
def move_complaint(
    complaint_id: RecordId, body: ComplaintStatusUpdate, user: UserDep, store: StoreDep
) -> ComplaintPublic:
    """open → responded → resolved → closed (409 for a move the flow does not allow)."""
    return ComplaintPublic.model_validate(
        complaints.move_complaint(
            store, user, complaint_id, body.status, resolution=body.resolution
        )
    )


@router.post("/complaints/{complaint_id}/assign", tags=["complaints"], responses=BAD_BODY)
def assign_complaint(
    complaint_id: RecordId, body: ComplaintAssign, user: UserDep, store: StoreDep
) -> ComplaintPublic:
    return ComplaintPublic.model_validate(
        complaints.assign_complaint(store, user, complaint_id, body.owner)
    )


@router.get("/feedback", tags=["complaints"])
def feedback(
    query: Annotated[FeedbackQuery, Query()], user: UserDep, store: StoreDep, settings: SettingsDep
) -> FeedbackTablePublic:
    """NPS and CSAT of the caller's customers per segment (or membership level), or per month."""
    if query.by == "month":
        table = complaints.feedback_trend(settings, store, user)
    else:
        table = complaints.feedback_by(settings, store, user, query.by)
    return FeedbackTablePublic.model_validate(table)


# --- membership -------------------------------------------------------------------------------


class LevelPublic(Output):
    code: str
    name: str
    customers: int
    in_grace: int
    min_value: float | None = Field(description="Null for a level no longer configured.")


class LevelSummaryPublic(Output):
    run_id: str | None
    basis: Literal["spend", "points"]
    levels: list[LevelPublic]


class EvaluationPublic(Output):
    id: str
    run_id: str | None
    as_of: date
    basis: str
    evaluated_at: datetime
    customers: int
    joined: int
    upgrades: int
    downgrades: int
    in_grace: int


class HistoryPublic(Output):
    changed_on: date
    change: Literal["join", "upgrade", "downgrade"]
    from_level: str | None
    to_level: str
    value: float


class CustomerMembershipPublic(Output):
    customer_id: str
    level: str | None
    level_name: str | None
    since: date | None
    grace_until: date | None
    value: float | None
    next_level: str | None
    to_next_level: float | None
    history: list[HistoryPublic]


@router.get("/membership/levels", tags=["membership"])
def membership_levels(user: UserDep, store: StoreDep, settings: SettingsDep) -> LevelSummaryPublic:
    """Members per level among the caller's customers, with each level's threshold."""
    summary = membership.level_summary(settings, store, user)
    thresholds = {x.code: x.min_value for x in membership.levels(settings)}
    return LevelSummaryPublic(
        run_id=summary.run_id,
        basis=settings.membership.basis,
        levels=[
            LevelPublic(
                code=x.code,
                name=x.name,
                customers=x.customers,
                in_grace=x.in_grace,
                min_value=thresholds.get(x.code),
            )
            for x in summary.levels
        ],
    )


@router.get("/membership/evaluations", tags=["membership"])
def membership_evaluations(
    _user: UserDep, store: StoreDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[EvaluationPublic]:
    """Evaluations (one per run) with upgrade and downgrade counts, newest first; counted over
    every customer, like the segment migration."""
    return [
        EvaluationPublic.model_validate(e)
        for e in membership.evaluation_history(store, limit=limit)
    ]


@router.get("/membership/customers/{customer_id}", tags=["membership"])
def customer_membership(
    customer_id: Annotated[str, Path(min_length=1, max_length=128, pattern=PLAIN_TEXT)],
    user: UserDep,
    store: StoreDep,
    settings: SettingsDep,
) -> CustomerMembershipPublic:
    """A customer's level, distance to the next one and history; 404 outside the caller's scope."""
    return CustomerMembershipPublic.model_validate(
        membership.customer_membership(settings, store, user, customer_id)
    )


# --- campaigns --------------------------------------------------------------------------------


class CampaignCreate(CustomerFilterQuery):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=PLAIN_TEXT)]
    action: Note = Field(description="What the treated customers get, e.g. a 20元 coupon.")
    starts_on: date
    days: int = Field(ge=1, le=3660, description="Length of the window; it ends on day `days`.")
    purpose: Literal["marketing", "service"] = "marketing"
    control_share: float = Field(0.10, gt=0, lt=1)
    seed: ShortText | None = Field(None, description="Default: random, stored with the campaign.")
    cost_per_contact: float = Field(0.0, ge=0, le=1e9)
    margin_rate: float = Field(1.0, ge=0, le=1)


class CampaignPublic(Output):
    id: int
    name: str
    action: str
    purpose: str
    filters: dict[str, Any]
    run_id: str
    starts_on: date
    ends_on: date
    phase: Literal["planned", "running", "ended"]
    control_share: float
    seed: str
    cost_per_contact: float
    margin_rate: float
    created_by: str
    created_at: datetime
    treatment: int
    control: int


class CampaignExportQuery(Input):
    format: Literal["csv", "xlsx"] = "csv"


class EffectQuery(Input):
    interim: bool = Field(False, description="Report before the window has ended.")
    confidence: float = Field(0.95, ge=0.5, le=0.999)


class IntervalPublic(Output):
    estimate: float
    low: float | None
    high: float | None


class ComparisonPublic(Output):
    treated: float | None
    control: float | None
    difference: IntervalPublic | None
    relative_lift: float | None


class EffectReportPublic(Output):
    treated: int
    control: int
    confidence: float
    retention: ComparisonPublic
    orders: ComparisonPublic
    revenue: ComparisonPublic
    incremental_revenue: IntervalPublic | None
    cost: float
    incremental_margin: IntervalPublic | None
    roi: IntervalPublic | None


class CampaignEffectPublic(Output):
    campaign: CampaignPublic
    complete: bool = Field(description="False: an interim look, the window is still open.")
    report: EffectReportPublic


@router.get("/campaigns", tags=["campaigns"])
def list_campaigns(user: UserDep, store: StoreDep) -> list[CampaignPublic]:
    """Campaigns the caller may see (admins and analysts all, managers their own), newest first."""
    return [CampaignPublic.model_validate(c) for c in campaigns.list_campaigns(store, user)]


@router.post(
    "/campaigns",
    tags=["campaigns"],
    status_code=status.HTTP_201_CREATED,
    responses={
        **BAD_BODY,
        409: {"model": ErrorOut, "description": "No customer the campaign may reach."},
    },
)
def create_campaign(body: CampaignCreate, user: UserDep, store: StoreDep) -> CampaignPublic:
    """Draw the target list from the caller's customers and split off the control group."""
    spec = campaigns.CampaignSpec(
        name=body.name,
        action=body.action,
        starts_on=body.starts_on,
        ends_on=body.starts_on + timedelta(days=body.days - 1),
        where=CustomerFilter(
            segment=body.segment,
            class8=body.class8,
            abc=body.abc,
            tier=body.tier,
            stage=body.stage,
            churn_risk=body.churn_risk,
            q=body.q,
        ),
        purpose=body.purpose,
        control_share=body.control_share,
        seed=body.seed,
        cost_per_contact=body.cost_per_contact,
        margin_rate=body.margin_rate,
    )
    return CampaignPublic.model_validate(campaigns.create_campaign(store, user, spec))


@router.get("/campaigns/{campaign_id}", tags=["campaigns"])
def get_campaign(campaign_id: RecordId, user: UserDep, store: StoreDep) -> CampaignPublic:
    return CampaignPublic.model_validate(campaigns.get_campaign(store, user, campaign_id))


@router.get(
    "/campaigns/{campaign_id}/export",
    tags=["campaigns"],
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}},
)
def export_campaign(
    campaign_id: RecordId,
    query: Annotated[CampaignExportQuery, Query()],
    user: UserDep,
    store: StoreDep,
) -> FileResponse:
    """The treatment arm as CSV or Excel for a CRM or marketing tool (consent-filtered, audited)."""
    fd, name = tempfile.mkstemp(prefix="tierwise-campaign-", suffix=f".{query.format}")
    os.close(fd)
    path = FilePath(name)
    try:
        result = campaigns.export_campaign(store, user, campaign_id, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[query.format],
        filename=f"campaign-{campaign_id}-treatment.{query.format}",
        headers={"X-Content-SHA256": result.sha256},
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


@router.get(
    "/campaigns/{campaign_id}/effect", tags=["campaigns"], responses={409: {"model": ErrorOut}}
)
def campaign_effect(
    campaign_id: RecordId,
    query: Annotated[EffectQuery, Query()],
    user: UserDep,
    store: StoreDep,
    settings: SettingsDep,
) -> CampaignEffectPublic:
    """Treated vs control retention, orders and revenue with confidence intervals, incremental
    revenue and ROI; 409 before the window ends unless `interim`."""
    return CampaignEffectPublic.model_validate(
        campaigns.campaign_effect(
            settings,
            store,
            user,
            campaign_id,
            confidence=query.confidence,
            interim=query.interim,
        )
    )
