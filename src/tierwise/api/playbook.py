"""The playbook (customers per rule, applying it) and budget plans.

Anyone signed in sees the playbook with the counts of their own customers per rule; applying it
changes every customer and opens tasks, so only admins and analysts may; budget plans read the
planner's customers, so admins, analysts and managers may plan, agents not.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import Field

from tierwise.api.auth import BAD_BODY, SettingsDep, StoreDep, UserDep
from tierwise.api.schemas import MAX_PAGE_SIZE, CustomerPublic, ErrorOut, Input, Output
from tierwise.services import budget as budget_service
from tierwise.services import playbook as playbook_service
from tierwise.strategy.playbook import TaskTemplate

router = APIRouter(responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}})

RuleName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]


# --- schemas -----------------------------------------------------------------------------------


class ContactPublic(Output):
    channel: str
    every_days: int


class OfferPublic(Output):
    kind: str = Field(description="coupon (an amount off) or percent")
    value: float


class TaskTemplatePublic(Output):
    reason: str
    queue: str | None
    due_hours: float | None = Field(description="Hours from creation until due.")


class RulePublic(Output):
    name: str
    description: str | None
    when: str | None = Field(description="The condition; null: every customer.")
    service_level: str
    sla_hours: float
    account_manager: bool
    contact: ContactPublic | None
    offer: OfferPublic | None
    recommend_products: bool
    task: TaskTemplatePublic | None
    customers: int = Field(description="Your customers this rule applies to in the current run.")


class ChurnWarningPublic(Output):
    when: str
    task: TaskTemplatePublic
    customers: int


class PlaybookPublic(Output):
    run_id: str | None
    source: str
    digest: str
    rules: list[RulePublic]
    unmatched: int
    churn_warning: ChurnWarningPublic | None
    task_candidates: int


class RuleCustomersPage(Output):
    run_id: str | None
    rule: str
    items: list[CustomerPublic]
    total: int
    page: int
    page_size: int


class PageQuery(Input):
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(50, ge=1, le=MAX_PAGE_SIZE)


class PlaybookApplyCreate(Input):
    dry_run: bool = False


class RuleOutcomePublic(Output):
    name: str
    customers: int
    tasks_created: int
    tasks_open: int


class PlaybookApplyPublic(Output):
    run_id: str | None
    digest: str
    dry_run: bool
    customers: int
    rules: list[RuleOutcomePublic]
    unmatched: int
    churn_warnings: RuleOutcomePublic
    tasks_created: int
    profiles_updated: int


class BudgetPlanCreate(Input):
    budget: float = Field(ge=0, le=1e12)
    cost: float = Field(gt=0, le=1e9, description="Cost of treating one customer.")
    effect: float = Field(gt=0, le=1, description="Share of would-be churners a treatment keeps.")
    capacity: int | None = Field(
        None, ge=0, le=1_000_000, description="Chosen customers each account manager can take."
    )
    top: int = Field(20, ge=0, le=MAX_PAGE_SIZE, description="Chosen customers to list.")


class StrategyResultPublic(Output):
    strategy: str
    customers: int
    spent: float
    expected_value: float


class ManagerLoadPublic(Output):
    manager: str
    capacity: int
    assigned: int
    own: int


class ChosenCustomerPublic(Output):
    customer_id: str
    churn_probability: float
    clv: float
    expected_value: float
    account_manager: str | None
    assigned_to: str | None


class BudgetPlanPublic(Output):
    run_id: str | None
    budget: float
    cost: float
    effect: float
    candidates: int
    plan: StrategyResultPublic
    lp_bound: float = Field(description="No plan within the budget can be expected to save more.")
    gap: float = Field(description="(lp_bound - plan) / lp_bound: the most the plan can miss.")
    baselines: list[StrategyResultPublic]
    managers: list[ManagerLoadPublic]
    queued: int
    top: list[ChosenCustomerPublic]


# --- routes ------------------------------------------------------------------------------------


def _task(task: TaskTemplate, due_hours: float | None) -> TaskTemplatePublic:
    return TaskTemplatePublic(reason=task.reason, queue=task.queue, due_hours=due_hours)


@router.get("/playbook", tags=["playbook"])
def get_playbook(user: UserDep, store: StoreDep, settings: SettingsDep) -> PlaybookPublic:
    """The configured playbook, each rule with how many of your customers it applies to."""
    pb = playbook_service.load_playbook(settings)
    view = playbook_service.overview(store, user, pb)
    warning = pb.churn_warning
    return PlaybookPublic(
        run_id=view.run_id,
        source=FilePath(view.source).name,
        digest=view.digest,
        rules=[
            RulePublic(
                name=v.rule.name,
                description=v.rule.description,
                when=v.rule.when_text,
                service_level=v.rule.service_level,
                sla_hours=v.sla_hours,
                account_manager=v.rule.account_manager,
                contact=ContactPublic.model_validate(v.rule.contact) if v.rule.contact else None,
                offer=OfferPublic.model_validate(v.rule.offer) if v.rule.offer else None,
                recommend_products=v.rule.recommend_products,
                task=_task(v.rule.task, v.due_hours) if v.rule.task else None,
                customers=v.customers,
            )
            for v in view.rules
        ],
        unmatched=view.unmatched,
        churn_warning=ChurnWarningPublic(
            when=warning.when_text,
            task=_task(warning.task, pb.churn_due_hours()),
            customers=view.churn_warnings,
        )
        if warning is not None
        else None,
        task_candidates=view.task_candidates,
    )


@router.get(
    "/playbook/rules/{name}/customers", tags=["playbook"], responses={404: {"model": ErrorOut}}
)
def rule_customers(
    name: RuleName,
    query: Annotated[PageQuery, Query()],
    user: UserDep,
    store: StoreDep,
    settings: SettingsDep,
) -> RuleCustomersPage:
    """Your customers a rule applies to in the current run, one page at a time."""
    pb = playbook_service.load_playbook(settings)
    page = playbook_service.rule_customers(
        store, user, pb, name, page=query.page, page_size=query.page_size
    )
    return RuleCustomersPage.model_validate(page)


@router.post("/playbook/apply", tags=["playbook"], responses=BAD_BODY)
def apply_playbook(
    body: PlaybookApplyCreate, user: UserDep, store: StoreDep, settings: SettingsDep
) -> PlaybookApplyPublic:
    """Apply the playbook to the current run: keep each customer's rule, open tasks (admin,
    analyst). A dry run only counts."""
    _, result = playbook_service.apply_configured(settings, store, user, dry_run=body.dry_run)
    return PlaybookApplyPublic.model_validate(result)


@router.post("/budget/plan", tags=["playbook"], responses=BAD_BODY)
def plan_budget(body: BudgetPlanCreate, user: UserDep, store: StoreDep) -> BudgetPlanPublic:
    """Whom to treat within a budget, by expected incremental value P(churn) × effect × CLV −
    cost, next to the top-churn-risk and top-CLV strategies (admin, analyst, manager)."""
    plan = budget_service.plan_budget(
        store,
        user,
        budget=body.budget,
        cost=body.cost,
        effect=body.effect,
        capacity=body.capacity,
        top=body.top,
    )
    return BudgetPlanPublic.model_validate(plan)
