"""`tierwise export customers`: the API's customer export as a file, run as the local operator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from tierwise.core.vocab import AbcClass, ChurnRisk, Class8, Stage, ValueTier


def export_customers(
    out_file: Annotated[Path, typer.Option("--out", help=".csv or .xlsx")],
    purpose: Annotated[
        str,
        typer.Option(
            help="analysis, or marketing: only consenting customers, none opted out or erased."
        ),
    ] = "analysis",
    segment: Annotated[str | None, typer.Option(help="An rfm_segment code.")] = None,
    class8: Annotated[Class8 | None, typer.Option()] = None,
    abc: Annotated[AbcClass | None, typer.Option()] = None,
    tier: Annotated[ValueTier | None, typer.Option()] = None,
    stage: Annotated[Stage | None, typer.Option()] = None,
    churn_risk: Annotated[ChurnRisk | None, typer.Option()] = None,
    q: Annotated[str | None, typer.Option(help="Substring of the customer id or name.")] = None,
) -> None:
    """Customers of the current published run, with the same filters as the list (audited)."""
    from tierwise.cli.main import emit, out, state
    from tierwise.core.errors import InvalidInputError
    from tierwise.services.exports import LOCAL_OPERATOR
    from tierwise.services.exports import export_customers as export
    from tierwise.services.serving import CustomerFilter, opened_store

    if purpose not in ("analysis", "marketing"):
        raise InvalidInputError(f"--purpose {purpose!r}: use analysis or marketing")
    chosen: Literal["analysis", "marketing"] = "marketing" if purpose == "marketing" else "analysis"
    where = CustomerFilter(
        segment=segment,
        class8=class8 and class8.value,
        abc=abc and abc.value,
        tier=tier and tier.value,
        stage=stage and stage.value,
        churn_risk=churn_risk and churn_risk.value,
        q=q,
    )
    with opened_store(state.settings()) as store:
        result = export(store, LOCAL_OPERATOR, where, purpose=chosen, out=out_file)
    if state.json:
        emit(
            {
                "path": str(result.path),
                "rows": result.rows,
                "run_id": result.run_id,
                "sha256": result.sha256,
            }
        )
    elif not state.quiet:
        of_run = f"run {result.run_id}" if result.run_id else "no published run"
        out.print(
            f"wrote {result.rows:,} customers ({of_run}) to {result.path}",
            highlight=False,
            markup=False,
        )
