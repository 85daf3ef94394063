"""The action pages: the 回访 tasks board, complaint tickets with NPS and CSAT, the playbook with
customers per rule, and campaigns with their effect report.

Each page validates its query with the schema of its /api/v1 twin and asks the same service call
(GET /tasks, /complaints, /complaints/sla, /feedback, /playbook, /playbook/rules/{name}/customers,
/campaigns, /campaigns/{id}/effect), so role and scope rules are the services' own: an agent's
board holds their tasks only and someone else's task is a 404 page, like a missing one.
The two forms (a task's outcome, a ticket's status) post back here with the session's CSRF
token and return to the page they were sent from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from tierwise.api.actions import ComplaintQuery, EffectQuery, FeedbackQuery, TaskQuery
from tierwise.api.auth import SESSION_COOKIE, SettingsDep, StoreDep
from tierwise.api.playbook import PageQuery
from tierwise.core.errors import (
    AuthError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    TierwiseError,
)
from tierwise.core.vocab import BY_COLUMN
from tierwise.services import campaigns, complaints, playbook, serving, tasks
from tierwise.services.complaints import FEEDBACK_DIMENSIONS, ComplaintMove, FeedbackStat
from tierwise.services.dashboard import web_viewer
from tierwise.strategy.effect import Comparison, EffectReport, Interval
from tierwise.web import charts
from tierwise.web.charts import AMBER, BLUE, GREEN, GREY, RED, Figure, Gettext
from tierwise.web.i18n import N_, Formatter, Lang
from tierwise.web.routes import LangDep, Page, PageDep, safe_next

router = APIRouter(include_in_schema=False)
Query = TypeVar("Query", bound=BaseModel)

TASK_STATUSES = {
    "open": N_("Open"),
    "escalated": N_("Escalated"),
    "done": N_("Done"),
    "cancelled": N_("Cancelled"),
}
BOARD = (
    ("open", N_("Open"), ("open",)),
    ("escalated", N_("Escalated"), ("escalated",)),
    ("closed", N_("Closed"), ("done", "cancelled")),
)
"""The board's columns: (key, title, task statuses shown in it)."""
COLUMN_SIZE = 20
"""Cards per board column; a column's "all" link lists the rest page by page."""
OUTCOMES = {
    "reached": N_("Reached"),
    "not_reached": N_("Not reached"),
    "won_back": N_("Won back"),
    "lost": N_("Lost"),
}
REASONS = {
    "churn_risk": N_("Churn risk"),
    "complaint": N_("Complaint"),
    "vip_winback_call": N_("VIP win-back call"),
    "winback_call": N_("Win-back call"),
    "onboarding_call": N_("Onboarding call"),
}
"""Reasons of the shipped playbook, churn warnings and complaints; others show as written."""
COMPLAINT_STATUSES = {
    "open": N_("Open"),
    "responded": N_("Responded"),
    "resolved": N_("Solved"),
    "closed": N_("Closed"),
}
COMPLAINT_MOVES = {
    "open": ("responded", "resolved"),
    "responded": ("resolved",),
    "resolved": ("closed", "responded"),
    "closed": (),
}
"""The moves the status form offers, as the ticket flow allows them (resolved → responded
reopens); the service refuses any other with a conflict (409)."""
MOVE_TARGETS: dict[str, ComplaintMove] = {m: m for m in get_args(ComplaintMove)}
"""The statuses a ticket can be moved to, as the form sends them."""
CATEGORIES = {
    "product": N_("Product"),
    "delivery": N_("Delivery"),
    "service": N_("Service"),
    "billing": N_("Billing"),
    "other": N_("Other"),
}
SLA_STATES = {
    "met": N_("Met"),
    "breached": N_("Breached"),
    "pending": N_("Pending"),
    "overdue": N_("Overdue"),
}
PHASES = {"planned": N_("Planned"), "running": N_("Running"), "ended": N_("Ended")}
PURPOSES = {"marketing": N_("Marketing"), "service": N_("Service")}
SERVICE_LEVELS = {"vip": N_("VIP"), "standard": N_("Standard"), "basic": N_("Basic")}
CHANNELS = {
    "phone": N_("Phone"),
    "sms": N_("SMS"),
    "email": N_("Email"),
    "wechat": N_("WeChat"),
    "app_push": N_("App push"),
    "visit": N_("Visit"),
    "self_service": N_("Self-service"),
}
FEEDBACK_BY = {
    "rfm_segment": N_("RFM segment"),
    "rfm_class8": N_("8-class RFM"),
    "abc_class": N_("ABC class"),
    "value_tier": N_("Value tier"),
    "lifecycle_stage": N_("Lifecycle stage"),
    "churn_risk": N_("Churn risk"),
    "membership_level": N_("Membership level"),
}
VOCABULARIES: Mapping[str, Mapping[str, str]] = {
    "task_status": TASK_STATUSES,
    "outcome": OUTCOMES,
    "reason": REASONS,
    "complaint_status": COMPLAINT_STATUSES,
    "category": CATEGORIES,
    "sla": SLA_STATES,
    "phase": PHASES,
    "purpose": PURPOSES,
    "service_level": SERVICE_LEVELS,
    "channel": CHANNELS,
    "feedback_by": FEEDBACK_BY,
}
NEVER = datetime.min.replace(tzinfo=UTC)
NOTE_LIMIT = 2000
"""Longest note or resolution a form may send (the API's limit)."""


# --- helpers -----------------------------------------------------------------------------------


def _named(page: Page) -> Callable[[str, str | None], str]:
    """`named(vocabulary, code)`: a code's name in the page's language, else the code itself."""

    def named(vocabulary: str, code: str | None) -> str:
        if code is None:
            return "—"
        message = VOCABULARIES[vocabulary].get(code)
        return page._(message) if message else code

    return named


def _error(page: Page, exc: TierwiseError) -> Response:
    """The error page; a state that forbids the change (a closed task) is a conflict (409)."""
    if isinstance(exc, ConflictError):
        return page.render("error.html", status=409, status_code=409, message=str(exc))
    return page.error(exc)


def _show(page: Page, template: str, build: Callable[[], Mapping[str, Any]]) -> Response:
    try:
        context = build()
    except TierwiseError as e:
        return _error(page, e)
    return page.render(template, named=_named(page), **context)


def _params(request: Request) -> dict[str, str]:
    """The query's filled-in parameters (an empty select means "any")."""
    return {k: v for k, v in request.query_params.items() if v != ""}


def _validated(page: Page, schema: type[Query], params: Mapping[str, Any]) -> Query:
    try:
        return schema.model_validate(params)
    except ValidationError as e:
        fields = ", ".join(str(err["loc"][0]) for err in e.errors() if err["loc"]) or "?"
        raise InvalidInputError(page._("Invalid filter: %(fields)s", fields=fields)) from None


def _linker(path: str, params: Mapping[str, str]) -> Callable[..., str]:
    """`link(**changes)`: this list with some parameters changed (None drops one)."""

    def link(**changes: Any) -> str:
        merged = {k: v for k, v in ({**params, **changes}).items() if v not in (None, "")}
        return path + ("?" + urlencode(merged) if merged else "")

    return link


def _posted(
    request: Request,
    store: serving.Store,
    lang: Lang,
    csrf_token: str,
    next: str,
    change: Callable[[Page], None],
) -> Response:
    """Make a form's change for the signed-in user if the form carries the session's CSRF
    token, then go back to `next` (303); without a session, sign in first."""
    target = safe_next(next)
    secret = request.cookies.get(SESSION_COOKIE)
    try:
        if not secret:
            raise AuthError("not signed in")
        page = Page(request, lang, web_viewer(store, secret))
    except AuthError:
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
    request.state.username = page.user.username
    try:
        serving.principal_for_session(store, secret, state_changing=True, csrf_token=csrf_token)
    except PermissionDeniedError:
        message = page._("The form expired. Reload the page and try again.")
        return page.render("error.html", status=403, status_code=403, message=message)
    try:
        change(page)
    except TierwiseError as e:
        return _error(page, e)
    return RedirectResponse(target, status_code=303)


def _note(page: Page, text: str) -> str | None:
    text = text.strip()
    if len(text) > NOTE_LIMIT or "\x00" in text:
        raise InvalidInputError(page._("The note is too long (at most 2,000 characters)."))
    return text or None


# --- tasks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    items: list[tasks.TaskView]
    total: int
    more: str | None
    """The column's own list when it holds more than the board shows."""


def _board(
    page: Page, store: serving.Store, query: TaskQuery, link: Callable[..., str]
) -> list[Column]:
    columns = []
    for key, title, statuses in BOARD:
        items: list[tasks.TaskView] = []
        total = 0
        for status in statuses:
            found = tasks.list_tasks(
                store, page.user, _task_filter(query, status), page=1, page_size=COLUMN_SIZE
            )
            items += found.items
            total += found.total
        if len(statuses) > 1:  # done and cancelled together: the latest closed first
            items.sort(key=lambda t: t.closed_at or NEVER, reverse=True)
        more = link(status=statuses[0], page=None) if total > len(items[:COLUMN_SIZE]) else None
        columns.append(Column(key, page._(title), items[:COLUMN_SIZE], total, more))
    return columns


def _task_filter(query: TaskQuery, status: str | None) -> tasks.TaskFilter:
    return tasks.TaskFilter(
        status=status,
        assignee=query.assignee,
        customer_id=query.customer_id,
        reason=query.reason,
        overdue=query.overdue,
    )


@router.get("/tasks")
def tasks_page(request: Request, page: PageDep, store: StoreDep) -> Response:
    params = _params(request)

    def build() -> dict[str, Any]:
        query = _validated(page, TaskQuery, params)
        link = _linker("/tasks", params)
        context: dict[str, Any] = {
            "query": query,
            "params": params,
            "link": link,
            "outcomes": OUTCOMES,
            "may_filter_assignee": page.user.role != "agent",
        }
        if query.status is None:
            context["columns"] = _board(page, store, query, link)
        else:
            listed = tasks.list_tasks(
                store,
                page.user,
                _task_filter(query, query.status),
                page=query.page,
                page_size=query.page_size,
            )
            context["listed"] = listed
            context["pages"] = max(1, -(-listed.total // query.page_size))
        return context

    return _show(page, "tasks.html", build)


@router.get("/tasks/{task_id}")
def task_page(task_id: str, page: PageDep, store: StoreDep) -> Response:
    return _show(
        page,
        "tasks.html",
        lambda: {
            "task": tasks.get_task(store, page.user, _record_id(task_id, "task")),
            "outcomes": OUTCOMES,
        },
    )


@router.post("/tasks/{task_id}/outcome")
def record_outcome(
    task_id: str,
    request: Request,
    store: StoreDep,
    lang: LangDep,
    outcome: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/tasks",
) -> Response:
    def change(page: Page) -> None:
        if outcome not in OUTCOMES:
            raise InvalidInputError(page._("Choose the outcome of the call."))
        number = _record_id(task_id, "task")
        tasks.record_outcome(store, page.user, number, outcome, note=_note(page, note))

    return _posted(request, store, lang, csrf_token, next, change)


# --- complaints --------------------------------------------------------------------------------


@router.get("/complaints")
def complaints_page(
    request: Request, page: PageDep, store: StoreDep, settings: SettingsDep
) -> Response:
    params = _params(request)

    def build() -> dict[str, Any]:
        query = _validated(page, ComplaintQuery, {k: v for k, v in params.items() if k != "by"})
        by = _validated(page, FeedbackQuery, {"by": params.get("by", "rfm_segment")}).by
        where = complaints.ComplaintFilter(
            status=query.status,
            category=query.category,
            owner=query.owner,
            customer_id=query.customer_id,
            unresolved=query.unresolved,
            breached=query.breached,
        )
        listed = complaints.list_complaints(
            store, page.user, where, page=query.page, page_size=query.page_size
        )
        sla = complaints.sla_report(store, page.user)
        dimension = "rfm_segment" if by == "month" else by
        per_segment = complaints.feedback_by(settings, store, page.user, dimension)
        per_month = complaints.feedback_trend(settings, store, page.user)
        figures = {}
        if per_segment.rows:
            figures["feedback-segments"] = feedback_bars(
                per_segment.rows, dimension, page.fmt, page._
            )
        if per_month.rows:
            figures["feedback-months"] = feedback_trend(per_month.rows, page._)
        return {
            "query": query,
            "params": params,
            "link": _linker("/complaints", params),
            "listed": listed,
            "pages": max(1, -(-listed.total // query.page_size)),
            "sla": sla,
            "dimension": dimension,
            "dimensions": FEEDBACK_DIMENSIONS,
            "per_segment": per_segment,
            "per_month": per_month,
            "figures": figures,
            "moves": COMPLAINT_MOVES,
            "feedback_key": lambda key: _feedback_label(dimension, key, page.fmt, page._),
        }

    return _show(page, "complaints.html", build)


@router.post("/complaints/{complaint_id}/status")
def move_complaint(
    complaint_id: str,
    request: Request,
    store: StoreDep,
    lang: LangDep,
    status: Annotated[str, Form()] = "",
    resolution: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/complaints",
) -> Response:
    def change(page: Page) -> None:
        target = MOVE_TARGETS.get(status)
        if target is None:
            raise InvalidInputError(page._("Choose the new status of the ticket."))
        number = _record_id(complaint_id, "complaint")
        complaints.move_complaint(
            store, page.user, number, target, resolution=_note(page, resolution)
        )

    return _posted(request, store, lang, csrf_token, next, change)


def _feedback_label(dimension: str, key: str | None, fmt: Formatter, _: Gettext) -> str:
    if key is None:
        return _("None (no orders)") if dimension in BY_COLUMN else _("None")
    return fmt.label(dimension, key) if dimension in BY_COLUMN else key


def feedback_bars(
    rows: Sequence[FeedbackStat], dimension: str, fmt: Formatter, _: Gettext
) -> Figure:
    """NPS (bars, −100..100) and the share of satisfied CSAT answers (markers) per segment."""
    labels = [_feedback_label(dimension, r.key, fmt, _) for r in rows]
    answers = [r.responses for r in rows]
    return {
        "data": [
            {
                "type": "bar",
                "x": labels,
                "y": [r.nps for r in rows],
                "name": "NPS",
                "marker": {"color": [GREEN if (r.nps or 0) >= 0 else RED for r in rows]},
                "customdata": answers,
                "hovertemplate": "%{x}: NPS %{y:.1f} (%{customdata} "
                + _("answers")
                + ")<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "markers",
                "x": labels,
                "y": [None if r.csat_satisfied is None else 100 * r.csat_satisfied for r in rows],
                "yaxis": "y2",
                "name": _("CSAT (share satisfied)"),
                "marker": {"color": BLUE, "size": 11, "symbol": "diamond"},
                "hovertemplate": "%{x}: CSAT %{y:.0f}%<extra></extra>",
            },
        ],
        "layout": charts._layout(
            height=340,
            margin={"b": 96, "r": 56, "t": 36},
            xaxis={"automargin": True},
            yaxis={"title": {"text": "NPS"}, "range": [-100, 100], "zeroline": True},
            yaxis2={
                "title": {"text": _("CSAT (share satisfied)")},
                "range": [0, 100],
                "ticksuffix": "%",
                "overlaying": "y",
                "side": "right",
                "showgrid": False,
            },
            legend={"y": 1.12},
        ),
    }


def feedback_trend(rows: Sequence[FeedbackStat], _: Gettext) -> Figure:
    """NPS and the share of satisfied CSAT answers per month of the answer."""
    months = [r.key for r in rows]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": months,
                "y": [r.nps for r in rows],
                "name": "NPS",
                "line": {"color": AMBER},
                "connectgaps": True,
                "hovertemplate": "%{x|%Y-%m}: NPS %{y:.1f}<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": months,
                "y": [None if r.csat_satisfied is None else 100 * r.csat_satisfied for r in rows],
                "yaxis": "y2",
                "name": _("CSAT (share satisfied)"),
                "line": {"color": BLUE},
                "connectgaps": True,
                "hovertemplate": "%{x|%Y-%m}: CSAT %{y:.0f}%<extra></extra>",
            },
        ],
        "layout": charts._layout(
            height=300,
            margin={"r": 56, "t": 36},
            xaxis={"type": "date", "tickformat": "%Y-%m"},
            legend={"y": 1.12},
            yaxis={"title": {"text": "NPS"}, "range": [-100, 100], "zeroline": True},
            yaxis2={
                "title": {"text": _("CSAT (share satisfied)")},
                "range": [0, 100],
                "ticksuffix": "%",
                "overlaying": "y",
                "side": "right",
                "showgrid": False,
            },
        ),
    }


# --- playbook ----------------------------------------------------------------------------------


@router.get("/playbook")
def playbook_page(
    request: Request, page: PageDep, store: StoreDep, settings: SettingsDep
) -> Response:
    params = _params(request)

    def build() -> dict[str, Any]:
        rule = params.pop("rule", None)
        query = _validated(page, PageQuery, params)
        book = playbook.load_playbook(settings)
        context: dict[str, Any] = {
            "overview": playbook.overview(store, page.user, book),
            "chosen": None,
        }
        if rule is not None:  # an unknown name is a 404, like the API's
            chosen = playbook.rule_customers(
                store, page.user, book, rule, page=query.page, page_size=query.page_size
            )
            context |= {
                "chosen": chosen,
                "pages": max(1, -(-chosen.total // query.page_size)),
                "link": _linker("/playbook", {**params, "rule": rule}),
            }
        return context

    return _show(page, "playbook.html", build)


# --- campaigns ---------------------------------------------------------------------------------

CONFIDENCES = (0.9, 0.95, 0.99)


@router.get("/campaigns")
def campaigns_page(page: PageDep, store: StoreDep) -> Response:
    return _show(
        page, "campaigns.html", lambda: {"campaigns": campaigns.list_campaigns(store, page.user)}
    )


@router.get("/campaigns/{campaign_id}")
def campaign_page(
    campaign_id: str, request: Request, page: PageDep, store: StoreDep, settings: SettingsDep
) -> Response:
    params = _params(request)

    def build() -> dict[str, Any]:
        query = _validated(page, EffectQuery, params)
        number = _record_id(campaign_id, "campaign")
        campaign = campaigns.get_campaign(store, page.user, number)
        effect = None
        if campaign.phase != "planned":  # a window not yet started has nothing to measure
            effect = campaigns.campaign_effect(
                settings, store, page.user, number, confidence=query.confidence, interim=True
            )
        figures = {"effect": effect_chart(effect.report, page._)} if effect else {}
        return {
            "campaign": campaign,
            "effect": effect,
            "figures": figures,
            "confidence": query.confidence,
            "confidences": CONFIDENCES,
            "scale_interval": _times,
        }

    return _show(page, "campaign.html", build)


def _record_id(raw: str, kind: str) -> int:
    """A record id from a page URL; anything else is a missing record (404), not a 422."""
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) < 2**31:
        raise NotFoundError(f"no {kind} {raw!r}")
    return int(raw)


def effect_chart(report: EffectReport, _: Gettext) -> Figure:
    """One panel per outcome: the treated and control means as bars, and their difference with
    its confidence interval as an error bar, in the outcome's own unit (retention in %)."""
    panels = (
        (_("Retention"), report.retention, 100.0, "%"),
        (_("Orders per customer"), report.orders, 1.0, ""),
        (_("Revenue per customer"), report.revenue, 1.0, ""),
    )
    width, gap = 0.28, 0.08
    arms = [_("Treated"), _("Control")]
    difference = _("Difference")
    traces: list[dict[str, Any]] = []
    axes: dict[str, Any] = {}
    annotations = []
    for i, (title, comparison, scale, suffix) in enumerate(panels):
        n = "" if i == 0 else str(i + 1)
        traces.append(
            {
                "type": "bar",
                "x": arms,
                "y": [_scaled(comparison.treated, scale), _scaled(comparison.control, scale)],
                "marker": {"color": [BLUE, GREY]},
                "xaxis": f"x{n}",
                "yaxis": f"y{n}",
                "showlegend": False,
                "hovertemplate": "%{x}: %{y:,.2f}" + suffix + "<extra>" + title + "</extra>",
            }
        )
        diff = _difference_trace(comparison, scale, suffix, difference)
        if diff is not None:
            traces.append(diff | {"xaxis": f"x{n}", "yaxis": f"y{n}"})
        start = i * (width + gap)
        axes[f"xaxis{n}"] = {
            "domain": [start, start + width],
            "anchor": f"y{n}",
            "type": "category",
            "categoryarray": [*arms, difference],
            "categoryorder": "array",
        }
        axes[f"yaxis{n}"] = {
            "anchor": f"x{n}",
            "ticksuffix": suffix,
            "zeroline": True,
            "zerolinecolor": "#64748b",
            "gridcolor": "#e2e8f0",
        }
        annotations.append(
            {
                "text": f"<b>{title}</b>",
                "x": start + width / 2,
                "y": 1.0,
                "xref": "paper",
                "yref": "paper",
                "yanchor": "bottom",
                "showarrow": False,
            }
        )
    return {
        "data": traces,
        "layout": charts._layout(
            height=340, margin={"t": 36}, showlegend=False, annotations=annotations, **axes
        ),
    }


def _times(interval: Interval, factor: float) -> Interval:
    """An interval in another unit (a share as a percentage)."""
    low, high = _scaled(interval.low, factor), _scaled(interval.high, factor)
    return Interval(interval.estimate * factor, low, high)


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale


def _difference_trace(
    comparison: Comparison, scale: float, suffix: str, name: str
) -> dict[str, Any] | None:
    """Treated − control as a diamond with its confidence interval (none below two customers
    in an arm); green when the interval lies above zero, red below, amber across."""
    interval = comparison.difference
    if interval is None:
        return None
    estimate = interval.estimate * scale
    colour = AMBER
    error: dict[str, Any] = {"visible": False}
    bounds = ""
    if interval.low is not None and interval.high is not None:
        low, high = interval.low * scale, interval.high * scale
        colour = GREEN if low > 0 else RED if high < 0 else AMBER
        error = {
            "type": "data",
            "symmetric": False,
            "array": [high - estimate],
            "arrayminus": [estimate - low],
            "color": colour,
            "thickness": 2,
            "width": 8,
        }
        bounds = f" [{low:+,.2f}{suffix}, {high:+,.2f}{suffix}]"
    return {
        "type": "scatter",
        "mode": "markers",
        "x": [name],
        "y": [estimate],
        "error_y": error,
        "marker": {"color": colour, "size": 12, "symbol": "diamond"},
        "showlegend": False,
        "hovertemplate": "%{x}: %{y:+,.2f}" + suffix + bounds + "<extra></extra>",
    }
