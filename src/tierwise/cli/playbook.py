"""`tierwise playbook check|apply` and `tierwise budget`: thin commands over the services."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

playbook_app = typer.Typer(
    help="Playbooks: rules turning profiles into actions.", no_args_is_help=True
)


def _actions(rule: Any) -> str:
    parts = []
    if rule.account_manager:
        parts.append("account manager")
    if rule.contact:
        parts.append(f"{rule.contact.channel} every {rule.contact.every_days} d")
    if rule.offer:
        unit = "%" if rule.offer.kind == "percent" else " coupon"
        parts.append(f"{rule.offer.value:g}{unit}")
    if rule.recommend_products:
        parts.append("recommendations")
    if rule.task:
        parts.append(f"task {rule.task.reason}")
    return ", ".join(parts)


@playbook_app.command("check")
def check(file: Annotated[Path, typer.Argument(help="A playbook YAML file.")]) -> None:
    """Validate a playbook and show, for each rule, a profile it would apply to."""
    from tierwise.cli.main import emit, err, out, state
    from tierwise.services.playbook import check_playbook

    result = check_playbook(file, state.settings())
    pb, reach = result.playbook, result.reach
    if state.json:
        emit(
            {
                "source": pb.source,
                "digest": pb.digest,
                "rules": [
                    {"name": r.name, "line": r.line, "witness": reach.witnesses[r.name]}
                    for r in pb.rules
                ],
                "unreachable": reach.unreachable,
                "settled": reach.settled,
            }
        )
    else:
        table = Table("line", "rule", "service", "when", "actions", "reachable", title=pb.source)
        for r in pb.rules:
            reached = "yes" if reach.witnesses[r.name] is not None else "[red]no[/]"
            table.add_row(
                str(r.line),
                r.name,
                f"{r.service_level} ({pb.sla_hours[r.service_level]:g} h)",
                r.when_text or "(every customer)",
                _actions(r),
                reached,
            )
        out.print(table)
    if reach.unreachable:
        verdict = "never apply" if reach.settled else "were not shown to apply (search incomplete)"
        err.print(f"rules that {verdict}: {', '.join(reach.unreachable)}", highlight=False)
        if reach.settled:
            raise typer.Exit(1)
    elif not state.json and not state.quiet:
        out.print(f"OK: {len(pb.rules)} rules, each applies to some customer")


@playbook_app.command("apply")
def apply(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count; change nothing.")] = False,
) -> None:
    """Apply the configured playbook to the current run: customers per rule and 回访 tasks."""
    from tierwise.cli.main import emit, out, state
    from tierwise.services.exports import LOCAL_OPERATOR
    from tierwise.services.playbook import apply_configured
    from tierwise.services.serving import opened_store

    settings = state.settings()
    with opened_store(settings) as store:
        pb, result = apply_configured(settings, store, LOCAL_OPERATOR, dry_run=dry_run)
    rows = [*result.rules, result.churn_warnings]
    if state.json:
        emit(
            {
                "run_id": result.run_id,
                "playbook": result.digest,
                "dry_run": result.dry_run,
                "customers": result.customers,
                "unmatched": result.unmatched,
                "rules": [
                    {
                        "rule": r.name,
                        "customers": r.customers,
                        "tasks_created": r.tasks_created,
                        "tasks_open": r.tasks_open,
                    }
                    for r in rows
                ],
                "profiles_updated": result.profiles_updated,
            }
        )
        return
    if result.run_id is None:
        out.print("no published run: nothing to apply")
        return
    title = f"{pb.source} on run {result.run_id}" + (" (dry run)" if dry_run else "")
    table = Table("rule", "customers", "tasks created", "already open", title=title)
    for r in rows:
        created = "—" if dry_run else f"{r.tasks_created:,}"
        table.add_row(r.name, f"{r.customers:,}", created, "—" if dry_run else f"{r.tasks_open:,}")
    table.add_row("(no rule)", f"{result.unmatched:,}", "", "")
    out.print(table)
    if not dry_run and not state.quiet:
        out.print(
            f"{result.tasks_created:,} tasks created, {result.profiles_updated:,} profiles updated"
        )


def budget(
    amount: Annotated[float, typer.Option("--budget", min=0, help="Campaign budget.")],
    cost: Annotated[float, typer.Option(help="Cost of treating one customer.")] = 20.0,
    effect: Annotated[
        float, typer.Option(help="Share of would-be churners a treatment keeps (0-1].")
    ] = 0.1,
    capacity: Annotated[
        int | None, typer.Option(min=0, help="Chosen customers each account manager can take.")
    ] = None,
    top: Annotated[int, typer.Option(min=0, help="Chosen customers to list.")] = 10,
) -> None:
    """Whom to treat within a budget (P(churn) × effect × CLV − cost), against two baselines."""
    from tierwise.cli.main import emit, out, state
    from tierwise.services.budget import plan_budget
    from tierwise.services.exports import LOCAL_OPERATOR
    from tierwise.services.serving import opened_store

    with opened_store(state.settings()) as store:
        plan = plan_budget(
            store,
            LOCAL_OPERATOR,
            budget=amount,
            cost=cost,
            effect=effect,
            capacity=capacity,
            top=top,
        )
    if state.json:
        emit(asdict(plan))
        return
    table = Table(
        "strategy",
        "customers",
        "spent",
        "expected value",
        title=f"budget {amount:,.0f} at {cost:g} each, effect {effect:g} (run {plan.run_id})",
    )
    for s in [plan.plan, *plan.baselines]:
        table.add_row(s.strategy, f"{s.customers:,}", f"{s.spent:,.2f}", f"{s.expected_value:,.2f}")
    table.add_row("LP bound", "", "", f"{plan.lp_bound:,.2f}")
    out.print(table)
    out.print(f"optimality gap ≤ {plan.gap:.2%} · {plan.candidates:,} customers scored")
    if plan.managers:
        busiest = max(plan.managers, key=lambda m: m.assigned)
        kept = sum(m.own for m in plan.managers)
        out.print(
            f"{len(plan.managers)} managers (capacity {capacity}): {kept:,} customers keep their "
            f"own manager, busiest {busiest.manager} with {busiest.assigned}, "
            f"{plan.queued:,} to the queue"
        )
    if plan.top:
        chosen = Table("customer", "P(churn)", "CLV", "expected value", "manager")
        for c in plan.top:
            chosen.add_row(
                c.customer_id,
                f"{c.churn_probability:.2f}",
                f"{c.clv:,.2f}",
                f"{c.expected_value:,.2f}",
                c.assigned_to or "—",
            )
        out.print(chosen)
