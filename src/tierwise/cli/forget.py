"""`tierwise forget`: erase one person (PIPL / GDPR right to erasure) and print the receipt."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer


def forget(
    customer_id: Annotated[str, typer.Argument(help="The customer's id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a customer's personal data from the store and the warehouse, for good.

    Their phone and e-mail stay on the suppression list (as hashes), so a later ingest rejects
    them with reason `erased_subject`. Remove them from your source files as well.
    """
    from tierwise.cli.main import emit, out, state
    from tierwise.services.erase import forget as erase
    from tierwise.services.serving import opened_store

    if not yes and not state.json:
        typer.confirm(f"Erase customer {customer_id} everywhere, for good?", abort=True)
    with opened_store(state.settings()) as store:
        receipt = erase(state.settings(), store, customer_id, actor="cli")
    if state.json:
        emit(asdict(receipt))
        return
    out.print(f"erased customer {receipt.customer_id} at {receipt.erased_at:%Y-%m-%d %H:%M:%S} UTC")
    for where, rows in (("store", receipt.store_rows), ("warehouse", receipt.warehouse_rows)):
        listed = ", ".join(f"{table} {n:,}" for table, n in rows.items() if n) or "nothing"
        out.print(f"  {where}: deleted rows: {listed}", highlight=False)
    out.print(
        f"  reject lines blanked: {receipt.redacted_rejects:,}; "
        f"contacts suppressed: {receipt.suppressed_contacts}; subject {receipt.subject[:16]}…",
        highlight=False,
    )
