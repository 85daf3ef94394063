"""`tierwise tasks|complaints|membership|campaign`: follow-ups, complaint tickets, membership
levels and campaigns, run as the local operator (an admin named `cli` in the audit log)."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tierwise.core.vocab import AbcClass, ChurnRisk, Class8, Stage, ValueTier

tasks_app = typer.Typer(help="Follow-up tasks (回访).", no_args_is_help=True)
complaints_app = typer.Typer(
    help="Complaint tickets and feedback (NPS, CSAT).", no_args_is_help=True
)
membership_app = typer.Typer(help="Membership levels (会员等级).", no_args_is_help=True)
campaign_app = typer.Typer(
    help="Campaigns with a control group, and their effect.", no_args_is_help=True
)

DAY = typer.Option(formats=["%Y-%m-%d"])


def _plain(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def _emit_or(data: Any, table: Table | None = None, line: str | None = None) -> None:
    """JSON with --json, else the table or the line (nothing with --quiet)."""
    from tierwise.cli.main import emit, out, state

    if state.json:
        emit(_plain(data) if not isinstance(data, list) else [_plain(d) for d in data])
    elif not state.quiet:
        if table is not None:
            out.print(table)
        if line is not None:
            out.print(line, highlight=False, markup=False)


def _when(value: datetime | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value.astimezone(UTC):%Y-%m-%d %H:%M}Z"
    return value.isoformat()


def _store() -> Any:
    from tierwise.cli.main import state
    from tierwise.services.serving import opened_store

    return opened_store(state.settings())


def _operator() -> Any:
    from tierwise.services.exports import LOCAL_OPERATOR

    return LOCAL_OPERATOR


# --- tasks ------------------------------------------------------------------------------------


def _task_table(items: list[Any], title: str) -> Table:
    table = Table(
        "id", "customer", "reason", "assignee / queue", "status", "due", "outcome", title=title
    )
    for t in items:
        due = _when(t.due_at) + (" (overdue)" if t.overdue else "")
        who = t.assignee or (f"({t.queue})" if t.queue else "")
        if t.escalated_to:
            who += f" → {t.escalated_to}"
        table.add_row(str(t.id), t.customer_id, t.reason, who, t.status, due, t.outcome or "")
    return table


@tasks_app.command("list")
def tasks_list(
    status: Annotated[str | None, typer.Option(help="open, escalated, done or cancelled.")] = None,
    assignee: Annotated[str | None, typer.Option()] = None,
    customer: Annotated[str | None, typer.Option(help="A customer id.")] = None,
    reason: Annotated[str | None, typer.Option()] = None,
    overdue: Annotated[
        bool | None, typer.Option("--overdue/--not-overdue", help="Only (not) past due.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """Tasks, oldest due first."""
    from tierwise.services.tasks import TaskFilter, list_tasks

    where = TaskFilter(
        status=status, assignee=assignee, customer_id=customer, reason=reason, overdue=overdue
    )
    with _store() as store:
        page = list_tasks(store, _operator(), where, page_size=limit)
    counts = ", ".join(f"{k} {v:,}" for k, v in page.counts.items())
    _emit_or(page, _task_table(page.items, f"{page.total:,} tasks ({counts})"))


@tasks_app.command("add")
def tasks_add(
    customer: Annotated[str, typer.Argument(help="A customer id.")],
    reason: Annotated[str, typer.Option(help="Why to call, e.g. birthday, churn_risk.")],
    assignee: Annotated[str | None, typer.Option(help="Default: the account manager.")] = None,
    due_hours: Annotated[
        float | None, typer.Option(min=0, help="Default: tasks.due_hours.")
    ] = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Open a follow-up task (the open one is kept if the customer has one for this reason)."""
    from tierwise.cli.main import state
    from tierwise.services.tasks import create_task

    settings = state.settings()
    due = datetime.now(UTC) + timedelta(hours=due_hours) if due_hours is not None else None
    with _store() as store:
        task, created = create_task(
            store, settings, _operator(), customer, reason, assignee=assignee, due_at=due, note=note
        )
    verb = "opened" if created else "already open:"
    _emit_or(
        {"task": _plain(task), "created": created},
        line=f"{verb} task {task.id} for {task.customer_id} ({task.assignee or task.queue})",
    )


@tasks_app.command("done")
def tasks_done(
    task_id: Annotated[int, typer.Argument()],
    outcome: Annotated[str, typer.Option(help="reached, not_reached, won_back or lost.")],
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Record the outcome of a call and close the task."""
    from tierwise.services.tasks import record_outcome

    with _store() as store:
        task = record_outcome(store, _operator(), task_id, outcome, note=note)
    _emit_or(task, line=f"task {task.id} done: {task.outcome}")


@tasks_app.command("escalate")
def tasks_escalate() -> None:
    """Escalate overdue open tasks to their team's manager (or the escalation queue); for cron."""
    from tierwise.cli.main import state
    from tierwise.services.tasks import escalate_overdue

    with _store() as store:
        result = escalate_overdue(store, state.settings(), _operator())
    _emit_or(result, line=f"escalated {len(result.escalated):,} overdue tasks")


@tasks_app.command("churn")
def tasks_churn() -> None:
    """Open a churn follow-up for every customer at a configured churn risk (tasks.churn_risks)."""
    from tierwise.cli.main import state
    from tierwise.services.tasks import create_churn_tasks

    with _store() as store:
        result = create_churn_tasks(store, state.settings(), _operator())
    _emit_or(
        result,
        line=f"{result.created:,} new tasks for {result.customers:,} customers "
        f"at risk (run {result.run_id})",
    )


# --- complaints -------------------------------------------------------------------------------


@complaints_app.command("import")
def complaints_import(
    since: Annotated[datetime | None, DAY] = None,
) -> None:
    """Tickets from the warehouse's complaint interactions (again and again, no duplicates)."""
    from tierwise.cli.main import state
    from tierwise.services.complaints import import_complaints

    with _store() as store:
        result = import_complaints(
            state.settings(), store, _operator(), since=since.date() if since else None
        )
    _emit_or(
        result,
        line=f"{result.rows:,} complaint rows: {result.created:,} new tickets, "
        f"{result.resolved:,} resolved since the last import, "
        f"{result.raised:,} churn risks raised for open tickets",
    )


@complaints_app.command("list")
def complaints_list(
    status: Annotated[str | None, typer.Option(help="open, responded, resolved, closed.")] = None,
    category: Annotated[str | None, typer.Option()] = None,
    owner: Annotated[str | None, typer.Option()] = None,
    customer: Annotated[str | None, typer.Option()] = None,
    breached: Annotated[bool | None, typer.Option("--breached/--within-sla")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """Tickets, newest first, with their SLA states."""
    from tierwise.services.complaints import ComplaintFilter, list_complaints

    where = ComplaintFilter(
        status=status, category=category, owner=owner, customer_id=customer, breached=breached
    )
    with _store() as store:
        page = list_complaints(store, _operator(), where, page_size=limit)
    table = Table(
        "id",
        "customer",
        "category",
        "owner",
        "status",
        "opened",
        "response SLA",
        "resolution SLA",
        title=f"{page.total:,} complaints",
    )
    for c in page.items:
        table.add_row(
            str(c.id),
            c.customer_id,
            c.category,
            c.owner or "",
            c.status,
            _when(c.opened_at),
            c.first_response_sla,
            c.resolution_sla,
        )
    _emit_or(page, table)


@complaints_app.command("add")
def complaints_add(
    customer: Annotated[str, typer.Argument()],
    category: Annotated[str, typer.Option(help="One of complaints.categories.")],
    description: Annotated[str | None, typer.Option()] = None,
    channel: Annotated[str | None, typer.Option()] = None,
    owner: Annotated[str | None, typer.Option(help="Default: the account manager.")] = None,
) -> None:
    """Open a ticket: deadlines, a follow-up task, and the customer's churn risk raised."""
    from tierwise.cli.main import state
    from tierwise.services.complaints import create_complaint

    with _store() as store:
        c = create_complaint(
            store,
            state.settings(),
            _operator(),
            customer,
            category,
            description=description,
            channel=channel,
            owner=owner,
        )
    _emit_or(
        c,
        line=f"complaint {c.id}: respond by {_when(c.first_response_due_at)}, "
        f"resolve by {_when(c.resolution_due_at)}",
    )


@complaints_app.command("set-status")
def complaints_set_status(
    complaint_id: Annotated[int, typer.Argument()],
    status: Annotated[
        str,
        typer.Argument(
            help="responded, resolved or closed (responded on a resolved ticket reopens it)."
        ),
    ],
    resolution: Annotated[str | None, typer.Option(help="What was done (when resolving).")] = None,
) -> None:
    """Move a ticket along open → responded → resolved → closed."""
    from tierwise.core.errors import InvalidInputError
    from tierwise.services.complaints import move_complaint

    if status not in ("responded", "resolved", "closed"):
        raise InvalidInputError(f"status {status!r}: use responded, resolved or closed")
    with _store() as store:
        c = move_complaint(
            store,
            _operator(),
            complaint_id,
            status,  # type: ignore[arg-type]
            resolution=resolution,
        )
    _emit_or(c, line=f"complaint {c.id} is {c.status}")


@complaints_app.command("assign")
def complaints_assign(
    complaint_id: Annotated[int, typer.Argument()],
    owner: Annotated[str, typer.Argument(help="A user name.")],
) -> None:
    """Give a ticket to another owner."""
    from tierwise.services.complaints import assign_complaint

    with _store() as store:
        c = assign_complaint(store, _operator(), complaint_id, owner)
    _emit_or(c, line=f"complaint {c.id} now owned by {c.owner}")


@complaints_app.command("sla")
def complaints_sla(
    since: Annotated[datetime | None, DAY] = None,
) -> None:
    """First-response and resolution deadlines met, missed and pending, per category."""
    from tierwise.services.complaints import sla_report

    start = since.replace(tzinfo=UTC) if since else None
    with _store() as store:
        report = sla_report(store, _operator(), since=start)
    table = Table(
        "category",
        "tickets",
        "response met",
        "late",
        "overdue",
        "resolution met",
        "late",
        "overdue",
        title=f"complaint SLAs ({report.open:,} unresolved)",
    )
    rows = [*report.by_category.items(), ("all", report.overall)]
    for name, s in rows:
        f, r = s.first_response, s.resolution
        table.add_row(
            name,
            f"{s.tickets:,}",
            _rate(f.met_rate),
            f"{f.breached:,}",
            f"{f.overdue:,}",
            _rate(r.met_rate),
            f"{r.breached:,}",
            f"{r.overdue:,}",
        )
    _emit_or(report, table)


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


@complaints_app.command("nps")
def complaints_nps(
    by: Annotated[
        str,
        typer.Option(
            help="rfm_segment, rfm_class8, abc_class, value_tier, lifecycle_stage, "
            "churn_risk, membership_level, or month (over time)."
        ),
    ] = "rfm_segment",
) -> None:
    """NPS and CSAT from survey answers, per segment or per month."""
    from tierwise.cli.main import state
    from tierwise.core.errors import InvalidInputError
    from tierwise.services.complaints import FEEDBACK_DIMENSIONS, feedback_by, feedback_trend

    settings = state.settings()
    with _store() as store:
        if by == "month":
            result = feedback_trend(settings, store, _operator())
        elif by in FEEDBACK_DIMENSIONS:
            result = feedback_by(settings, store, _operator(), by)  # type: ignore[arg-type]
        else:
            raise InvalidInputError(f"--by {by!r}: use month or {', '.join(FEEDBACK_DIMENSIONS)}")
    table = Table(
        by,
        "answers",
        "CSAT mean",
        "CSAT % (4–5)",
        "NPS answers",
        "NPS",
        title=f"feedback (run {result.run_id})",
    )
    for s in result.rows:
        table.add_row(
            s.key or "(none)",
            f"{s.responses:,}",
            "" if s.csat_mean is None else f"{s.csat_mean:.2f}",
            _rate(s.csat_satisfied),
            f"{s.nps_responses:,}",
            "" if s.nps is None else f"{s.nps:+.0f}",
        )
    _emit_or(result, table)


# --- membership -------------------------------------------------------------------------------


@membership_app.command("evaluate")
def membership_evaluate(
    as_of: Annotated[datetime | None, DAY] = None,
) -> None:
    """Evaluate every customer's level now (runs do this by themselves)."""
    from tierwise.cli.main import state
    from tierwise.services.membership import evaluate_now

    result = evaluate_now(state.settings(), as_of.date() if as_of else None)
    _emit_or(
        result,
        line=f"{result.customers:,} customers at {result.as_of}: "
        f"{result.joined:,} joined, {result.upgrades:,} up, "
        f"{result.downgrades:,} down, {result.in_grace:,} in grace",
    )


@membership_app.command("levels")
def membership_levels() -> None:
    """Members per level, with the thresholds."""
    from tierwise.cli.main import state
    from tierwise.services.membership import level_summary, levels

    settings = state.settings()
    with _store() as store:
        summary = level_summary(settings, store, _operator())
    basis = settings.membership.basis
    thresholds = {x.code: x.min_value for x in levels(settings)}
    table = Table(
        "level",
        "name",
        f"from ({basis})",
        "customers",
        "in grace",
        title=f"membership (run {summary.run_id})",
    )
    for x in summary.levels:
        low = thresholds.get(x.code)
        table.add_row(
            x.code,
            x.name,
            "" if low is None else f"{low:,.0f}",
            f"{x.customers:,}",
            f"{x.in_grace:,}",
        )
    _emit_or(summary, table)


@membership_app.command("show")
def membership_show(customer: Annotated[str, typer.Argument()]) -> None:
    """A customer's level, distance to the next one, and history."""
    from tierwise.cli.main import state
    from tierwise.services.membership import customer_membership

    with _store() as store:
        m = customer_membership(state.settings(), store, _operator(), customer)
    table = Table("on", "change", "from", "to", "value", title=f"{customer}: {m.level_name or '-'}")
    for h in m.history:
        table.add_row(
            h.changed_on.isoformat(), h.change, h.from_level or "", h.to_level, f"{h.value:,.2f}"
        )
    to_next = f"{m.to_next_level:,.2f} more reaches {m.next_level}" if m.next_level else ""
    _emit_or(m, table, to_next or None)


@membership_app.command("history")
def membership_history(limit: Annotated[int, typer.Option(min=1)] = 20) -> None:
    """Evaluations with their upgrade and downgrade counts, newest first."""
    from tierwise.services.membership import evaluation_history

    with _store() as store:
        rows = evaluation_history(store, limit=limit)
    table = Table("as_of", "run", "customers", "joined", "upgrades", "downgrades", "in grace")
    for e in rows:
        table.add_row(
            e.as_of.isoformat(),
            e.run_id or "",
            f"{e.customers:,}",
            f"{e.joined:,}",
            f"{e.upgrades:,}",
            f"{e.downgrades:,}",
            f"{e.in_grace:,}",
        )
    _emit_or(rows, table)


# --- campaigns --------------------------------------------------------------------------------


@campaign_app.command("create")
def campaign_create(
    name: Annotated[str, typer.Option()],
    action: Annotated[str, typer.Option(help="What the treated customers get, e.g. '20元券'.")],
    start: Annotated[datetime, DAY],
    end: Annotated[datetime, DAY],
    purpose: Annotated[str, typer.Option(help="marketing (consent needed) or service.")] = (
        "marketing"
    ),
    control_share: Annotated[float, typer.Option(min=0.001, max=0.999)] = 0.10,
    seed: Annotated[str | None, typer.Option(help="Default: random (stored).")] = None,
    cost_per_contact: Annotated[float, typer.Option(min=0)] = 0.0,
    margin_rate: Annotated[float, typer.Option(min=0, max=1)] = 1.0,
    segment: Annotated[str | None, typer.Option(help="An rfm_segment code.")] = None,
    class8: Annotated[Class8 | None, typer.Option()] = None,
    abc: Annotated[AbcClass | None, typer.Option()] = None,
    tier: Annotated[ValueTier | None, typer.Option()] = None,
    stage: Annotated[Stage | None, typer.Option()] = None,
    churn_risk: Annotated[ChurnRisk | None, typer.Option()] = None,
) -> None:
    """Draw a target list from the current run and split off a random control group."""
    from tierwise.services.campaigns import CampaignSpec, create_campaign
    from tierwise.services.serving import CustomerFilter

    where = CustomerFilter(
        segment=segment,
        class8=class8 and class8.value,
        abc=abc and abc.value,
        tier=tier and tier.value,
        stage=stage and stage.value,
        churn_risk=churn_risk and churn_risk.value,
    )
    spec = CampaignSpec(
        name=name,
        action=action,
        starts_on=start.date(),
        ends_on=end.date(),
        where=where,
        purpose=purpose,
        control_share=control_share,
        seed=seed,
        cost_per_contact=cost_per_contact,
        margin_rate=margin_rate,
    )
    with _store() as store:
        c = create_campaign(store, _operator(), spec)
    _emit_or(
        c,
        line=f"campaign {c.id}: {c.treatment:,} to contact, {c.control:,} held out (seed {c.seed})",
    )


@campaign_app.command("list")
def campaign_list() -> None:
    """Campaigns, newest first."""
    from tierwise.services.campaigns import list_campaigns

    with _store() as store:
        rows = list_campaigns(store, _operator())
    table = Table("id", "name", "window", "phase", "treatment", "control", "purpose")
    for c in rows:
        table.add_row(
            str(c.id),
            c.name,
            f"{c.starts_on} → {c.ends_on}",
            c.phase,
            f"{c.treatment:,}",
            f"{c.control:,}",
            c.purpose,
        )
    _emit_or(rows, table)


@campaign_app.command("export")
def campaign_export(
    campaign_id: Annotated[int, typer.Argument()],
    out_file: Annotated[Path, typer.Option("--out", help=".csv or .xlsx")],
) -> None:
    """The treatment arm for a CRM or marketing tool (consent checked again; audited)."""
    from tierwise.services.campaigns import export_campaign

    with _store() as store:
        result = export_campaign(store, _operator(), campaign_id, out_file)
    _emit_or(
        {
            "path": str(result.path),
            "rows": result.rows,
            "run_id": result.run_id,
            "sha256": result.sha256,
        },
        line=f"wrote {result.rows:,} customers to {result.path}",
    )


def _interval(i: Any, fmt: str = "{:,.2f}") -> str:
    if i is None:
        return ""
    if i.low is None:
        return fmt.format(i.estimate)
    return f"{fmt.format(i.estimate)} [{fmt.format(i.low)}, {fmt.format(i.high)}]"


@campaign_app.command("effect")
def campaign_effect(
    campaign_id: Annotated[int, typer.Argument()],
    interim: Annotated[bool, typer.Option(help="Look before the window ends.")] = False,
    confidence: Annotated[float, typer.Option(min=0.5, max=0.999)] = 0.95,
) -> None:
    """Treated vs control retention, orders and revenue, incremental revenue and ROI."""
    from tierwise.cli.main import state
    from tierwise.services.campaigns import campaign_effect as effect

    with _store() as store:
        result = effect(
            state.settings(),
            store,
            _operator(),
            campaign_id,
            confidence=confidence,
            interim=interim,
        )
    r = result.report
    title = (
        f"campaign {campaign_id}: {r.treated:,} treated vs {r.control:,} control, "
        f"{confidence:.0%} intervals" + ("" if result.complete else " (interim)")
    )
    table = Table("per customer", "treated", "control", "difference", title=title)
    for name, comp, fmt in (
        ("retention", r.retention, "{:.1%}"),
        ("orders", r.orders, "{:.3f}"),
        ("revenue", r.revenue, "{:,.2f}"),
    ):
        table.add_row(
            name,
            "" if comp.treated is None else fmt.format(comp.treated),
            "" if comp.control is None else fmt.format(comp.control),
            _interval(comp.difference, fmt),
        )
    roi = _interval(r.roi, "{:.1%}") or "n/a (no cost)"
    _emit_or(
        result,
        table,
        f"incremental revenue {_interval(r.incremental_revenue)}; cost {r.cost:,.2f}; ROI {roi}",
    )
