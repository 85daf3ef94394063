"""`tierwise audit`: checks on the store's hash-chained audit log."""

from __future__ import annotations

import typer

audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)


@audit_app.command("verify")
def verify() -> None:
    """Recompute the hash chain: OK, or the id of the first edited row (exit code 1)."""
    from tierwise.cli.main import emit, err, out, state
    from tierwise.services.serving import opened_store, verify_audit

    with opened_store(state.settings()) as store:
        broken = verify_audit(store)
    if state.json:
        emit({"ok": broken is None, "first_broken_id": broken})
    elif broken is None:
        out.print("OK")
    else:
        err.print(f"audit log broken at row {broken}", highlight=False)
    if broken is not None:
        raise typer.Exit(1)
