"""`tierwise evaluate-recs`: every recommender next to its baselines on a time split."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer


def evaluate_recs(
    cutoff_days: Annotated[
        int | None,
        typer.Option(min=1, help="Train up to as_of minus this many days, test on the rest."),
    ] = None,
    k: Annotated[int | None, typer.Option(min=1, max=100, help="Cut-off rank.")] = None,
    as_of: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="End of the test period.")
    ] = None,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="JSON report; default rec-evaluation.json by tierwise.toml."),
    ] = None,
) -> None:
    """Precision, recall, NDCG and hit rate @k for repeat and new items, models and baselines."""
    from rich.table import Table

    from tierwise.cli.main import emit, err, out, state
    from tierwise.services.recommend import (
        evaluate_recommenders,
        evaluation_path,
        save_evaluation,
    )
    from tierwise.services.warehouse import connect

    settings = state.settings()
    quiet = state.quiet or state.json
    with nullcontext() if quiet else err.status("evaluating recommenders"):
        report = evaluate_recommenders(
            connect(settings),
            settings,
            as_of=as_of.date() if as_of else None,
            cutoff_days=cutoff_days,
            k=k,
        )
    path = save_evaluation(report, out_file or evaluation_path(settings))
    if state.json:
        emit(report.as_dict() | {"path": str(path)})
        return
    if state.quiet:
        return
    grid = Table(
        "model",
        "items",
        f"precision@{report.k}",
        f"recall@{report.k}",
        f"NDCG@{report.k}",
        "hit rate",
        "customers",
        "coverage",
        "fit s",
        title=(
            f"recommenders: trained to {report.cutoff}, tested to {report.as_of} "
            f"({report.test_customers:,} customers, {report.products:,} products)"
        ),
    )
    for s in report.scores:
        chosen = report.best.get(s.kind) == s.model
        cells = [s.precision, s.recall, s.ndcg, s.hit_rate]
        grid.add_row(
            f"[bold]{s.model} ★[/]" if chosen else s.model,
            s.kind,
            *("n/a" if v is None else f"{v:.3f}" for v in cells),
            f"{s.customers:,}",
            f"{s.coverage:.0%}",
            f"{s.fit_seconds:.2f}",
        )
    out.print(grid)
    out.print(f"★ best by {report.metric}@{report.k}, used in runs · saved {path}")
    for name, why in report.skipped.items():
        err.print(f"[yellow]{name} skipped:[/] {why}", highlight=False)
