"""The `tierwise` command: thin commands over services, Rich output, one-line errors."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tierwise.cli.actions import campaign_app, complaints_app, membership_app, tasks_app
from tierwise.cli.audit import audit_app
from tierwise.cli.exports import export_customers
from tierwise.cli.forget import forget
from tierwise.cli.playbook import budget, playbook_app
from tierwise.cli.recs import evaluate_recs
from tierwise.cli.report import report
from tierwise.cli.serve import serve
from tierwise.cli.users import users_app
from tierwise.core.errors import TierwiseError
from tierwise.core.settings import CONFIG_NAME, Settings
from tierwise.core.vocab import label

app = typer.Typer(
    help="Tierwise: customer tiering and classification (客户分级分类管理).",
    no_args_is_help=True,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)


class State:
    config: Path | None = None
    quiet: bool = False
    json: bool = False

    def settings(self) -> Settings:
        return Settings.load(self.config)


state = State()


@app.callback()
def _options(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="TIERWISE_CONFIG", help=f"Path to {CONFIG_NAME}."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress, only results.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    state.config, state.quiet, state.json = config, quiet, as_json


def main() -> None:
    """Entry point: domain errors become one stderr line and exit code 1."""
    try:
        app()
    except TierwiseError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)


def progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} rows"),
        TimeElapsedColumn(),
        console=err,
        disable=state.quiet or state.json,
        transient=True,
    )


def emit(data: Any) -> None:
    out.print_json(json.dumps(data, ensure_ascii=False, default=str))


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write tierwise.toml.")] = Path(),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented tierwise.toml to start from."""
    target = directory / CONFIG_NAME
    if target.exists() and not force:
        raise TierwiseError(f"{target} exists; pass --force to overwrite it")
    directory.mkdir(parents=True, exist_ok=True)
    template = resources.files("tierwise.cli").joinpath("templates", CONFIG_NAME).read_text("utf-8")
    target.write_text(template, encoding="utf-8")
    if not state.quiet:
        out.print(f"wrote {target}; edit [sources.*] then run: tierwise ingest")


@app.command()
def generate(
    customers: Annotated[int, typer.Option(min=1, help="How many customers.")] = 20_000,
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("demo"),
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 0,
) -> None:
    """Synthetic multi-table data with known ground truth, plus a matching tierwise.toml."""
    from tierwise.services.generate import generate as run_generate

    with progress() as bar:
        task = bar.add_task("generating", total=1.0)
        result = run_generate(
            customers,
            out_dir,
            seed=seed,
            progress=lambda stage, frac: bar.update(task, description=stage, completed=frac),
        )
    if state.json:
        emit(
            {
                "out": str(result.out),
                "config": str(result.config),
                "rows": result.rows,
                "seconds": result.seconds,
            }
        )
        return
    table = Table("table", "rows", title=f"generated in {result.seconds:.1f} s → {result.out}")
    for name, n in result.rows.items():
        table.add_row(name, f"{n:,}")
    out.print(table)


@app.command()
def ingest(
    table: Annotated[
        list[str] | None, typer.Option("--table", "-t", help="Only these canonical tables.")
    ] = None,
) -> None:
    """Load every configured source into the warehouse; rejects go to quarantine."""
    from tierwise.services.ingest import ingest as run_ingest

    settings = state.settings()
    with progress() as bar:
        tasks: dict[str, Any] = {}

        def on_rows(source: str, rows: int) -> None:
            if source not in tasks:
                tasks[source] = bar.add_task(Path(source).name, total=None)
            bar.update(tasks[source], completed=rows)

        report = run_ingest(settings, tables=table, progress=on_rows)
    if state.json:
        emit(report.as_dict())
    elif not state.quiet or report.failed:
        grid = Table(
            "table",
            "source",
            "status",
            "rows in",
            "accepted",
            "rejected",
            "dupes merged",
            "encoding",
            "top reasons",
            title=f"ingest {report.batch_id}",
        )
        for f in report.files:
            reasons = ", ".join(f"{k} {v}" for k, v in list(f.reasons.items())[:3])
            status = {
                "loaded": "[green]loaded",
                "unchanged": "[dim]unchanged",
                "failed": "[red]failed",
            }[f.status]
            grid.add_row(
                f.table_name,
                Path(f.source).name,
                status,
                f"{f.rows_in:,}",
                f"{f.accepted:,}",
                f"{f.rejected:,}",
                f"{f.duplicates_merged:,}",
                f.encoding or "",
                reasons,
            )
        out.print(grid)
        for f in report.files:
            if f.message:
                (err if f.status == "failed" else out).print(f"{Path(f.source).name}: {f.message}")
    if report.failed:
        raise typer.Exit(1)


@app.command("run")
def run_cmd(
    as_of: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Inclusive end date.")
    ] = None,
) -> None:
    """Score every customer into a new snapshot; `current` moves only when checks pass."""
    from tierwise.services.run import run, summary
    from tierwise.services.warehouse import connect

    settings = state.settings()
    with progress() as bar:
        task = bar.add_task("run", total=None)
        result = run(
            settings,
            as_of=as_of.date() if as_of else None,
            on_stage=lambda name: bar.update(task, description=name),
        )
    s = summary(connect(settings), result.run_id)
    if state.json:
        emit(s | {"as_of": result.as_of, "stage_seconds": result.stage_seconds})
        return
    if state.quiet:
        return
    out.print(
        f"run {result.run_id} as of {result.as_of}: {s['customers']:,} customers "
        f"({sum(result.stage_seconds.values()):.1f} s)"
    )
    for column in ("rfm_segment", "rfm_class8", "lifecycle_stage", "value_tier", "churn_risk"):
        clv = s["clv_by_segment"] if column == "rfm_segment" and s["clv_by_segment"] else None
        grid = Table(column, "customers", "share", *(["CLV total"] if clv else []))
        for name, n in s[column].items():
            shown = f"{label(column, name)} {label(column, name, 'zh')}"
            if name == "(none)":
                shown = "— (no orders)"
            extra = [f"{clv.get(name, 0):,.0f}"] if clv else []
            grid.add_row(shown, f"{n:,}", f"{n / s['customers']:.1%}", *extra)
        out.print(grid)
    abc = Table("ABC class", "customers", "revenue share")
    for name, v in s["abc"].items():
        abc.add_row(name, f"{v['customers']:,}", f"{v['revenue_share']:.1%}")
    out.print(abc)
    _print_models(result.models)


def _print_models(models: Any) -> None:
    """What the models learned and how churn validated against its baselines."""
    if models.purchase:
        params = ", ".join(f"{k} {v:.3g}" for k, v in models.purchase["params"].items())
        out.print(f"purchase model {models.purchase['model']}: {params}")
    if models.spend:
        params = ", ".join(f"{k} {v:.3g}" for k, v in models.spend["params"].items())
        out.print(f"spend model gamma-gamma: {params}")
    if models.churn:
        c = models.churn
        grid = Table(
            "churn scorer",
            "ROC-AUC",
            "PR-AUC",
            "top-decile lift",
            "calibration error",
            title=f"churn validation at {c['validated_at']} ({c['window_days']}-day window)",
        )
        for name, m in c["validation"].items():
            cells = [m.get(k) for k in ("roc_auc", "pr_auc", "top_decile_lift", "ece")]
            grid.add_row(name, *("—" if v is None else f"{v:.3f}" for v in cells))
        out.print(grid)
    for part, why in models.skipped.items():
        err.print(f"[yellow]{part} model skipped:[/] {why}", highlight=False)


@app.command()
def evaluate(
    calibration_end: Annotated[
        datetime, typer.Option(formats=["%Y-%m-%d"], help="Fit on orders up to this date.")
    ],
    holdout_end: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="End of the holdout; default: latest order."),
    ] = None,
    model: Annotated[str, typer.Option(help="bgnbd, paretonbd or mbgnbd.")] = "bgnbd",
) -> None:
    """Holdout test of the purchase model against a naive baseline."""
    from tierwise.services.evaluate import evaluate_holdout, format_report
    from tierwise.services.warehouse import connect

    report = evaluate_holdout(
        connect(state.settings()),
        calibration_end=calibration_end.date(),
        holdout_end=holdout_end.date() if holdout_end else None,
        model=model,
    )
    if state.json:
        emit(report.as_dict())
        return
    header, *rows = format_report(report)
    grid = Table(
        *header,
        title=f"holdout {report.as_dict()['calibration_end']} → {report.as_dict()['holdout_end']}",
    )
    for row in rows:
        grid.add_row(*row)
    out.print(grid)


app.command()(serve)
app.add_typer(users_app, name="users")


@app.command()
def publish(
    run_id: Annotated[str | None, typer.Option("--run", help="A run id; default: current.")] = None,
) -> None:
    """Publish a finished run to the operational store again (runs publish by themselves)."""
    from tierwise.services.run import republish

    done = republish(state.settings(), run_id)
    if not state.quiet:
        out.print(f"published run {done}")


export_app = typer.Typer(help="Write customer data to files.", no_args_is_help=True)
app.add_typer(export_app, name="export")
export_app.command("customers")(export_customers)
app.add_typer(audit_app, name="audit")
app.add_typer(tasks_app, name="tasks")
app.add_typer(complaints_app, name="complaints")
app.add_typer(membership_app, name="membership")
app.add_typer(campaign_app, name="campaign")
app.add_typer(playbook_app, name="playbook")
app.command()(budget)
app.command()(forget)
app.command("evaluate-recs")(evaluate_recs)
app.command()(report)


@export_app.command("profiles")
def export_profiles_cmd(
    out_file: Annotated[Path, typer.Option("--out", help=".csv, .parquet or .xlsx")],
    run_id: Annotated[str | None, typer.Option("--run", help="A run id.")] = None,
    as_of: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="The latest run at this date.")
    ] = None,
) -> None:
    """One row per customer of the current (or chosen) snapshot."""
    from tierwise.services.export import export_profiles
    from tierwise.services.warehouse import connect

    result = export_profiles(
        connect(state.settings()), out_file, run_id=run_id, as_of=as_of.date() if as_of else None
    )
    if state.json:
        emit({"path": str(result.path), "rows": result.rows, "run_id": result.run_id})
    elif not state.quiet:
        out.print(f"wrote {result.rows:,} profiles of run {result.run_id} to {result.path}")


@app.command()
def quality() -> None:
    """Data-quality report: completeness, duplicates, outliers, orphans, reject reasons."""
    from tierwise.services.quality import quality_report
    from tierwise.services.warehouse import connect

    report = quality_report(connect(state.settings()))
    if state.json:
        emit(report)
        return
    grid = Table(
        "table",
        "rows",
        "date range",
        "least complete",
        "dupes merged",
        "rejected",
        "top reject reasons",
        title="data quality",
    )
    for name, t in report["tables"].items():
        comp = t.get("completeness", {})
        worst = sorted(comp.items(), key=lambda kv: kv[1] if kv[1] is not None else 0)[:2]
        ing = t.get("ingest", {})
        grid.add_row(
            name,
            f"{t['rows']:,}",
            " → ".join(d[:10] for d in t.get("date_range", []) if d),
            ", ".join(f"{c} {v:.0%}" for c, v in worst if v is not None),
            f"{ing.get('duplicates_merged', 0):,}",
            f"{ing.get('rejected', 0):,}",
            ", ".join(f"{k} {v}" for k, v in t.get("reject_reasons", {}).items()),
        )
    out.print(grid)
    o = report["tables"].get("orders")
    if o:
        orphan = o.get("orphan_orders", {})
        out.print(
            f"orders: {o['orders']:,} orders from {o['customers']:,} customers · "
            f"{o['amount_outliers']['count']:,} amount outliers · {o['return_lines']:,} return "
            f"lines · {orphan.get('lines', 0):,} orphan lines "
            f"({orphan.get('customers', 0):,} customers not in customers)"
        )
