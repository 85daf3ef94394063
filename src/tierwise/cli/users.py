"""`tierwise users`: accounts of the API and dashboard, managed by whoever runs the server."""

from __future__ import annotations

from typing import Annotated

import typer

users_app = typer.Typer(help="Sign-in accounts and their roles.", no_args_is_help=True)


@users_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Sign-in name (case-insensitive).")],
    role: Annotated[str, typer.Option("--role", "-r", help="admin, analyst, manager or agent.")],
    team: Annotated[
        str | None, typer.Option(help="Team; a manager sees the customers of its members.")
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="Name shown in the dashboard.")] = None,
) -> None:
    """Create a user with a generated password, printed this once."""
    from tierwise.cli.main import emit, out, state
    from tierwise.services.serving import add_user, opened_store

    with opened_store(state.settings()) as store:
        user, password = add_user(store, username, role, team=team, display_name=display_name)
    if state.json:
        emit(
            {"username": user.username, "role": user.role, "team": user.team, "password": password}
        )
        return
    out.print(f"created {user.username} ({user.role})", highlight=False)
    out.print(f"password (shown only now): {password}", highlight=False, markup=False)


@users_app.command("reset-password")
def reset_password(
    username: Annotated[str, typer.Argument(help="Sign-in name.")],
) -> None:
    """Set a new generated password, printed this once; the user's sessions end."""
    from tierwise.cli.main import emit, out, state
    from tierwise.services.serving import opened_store
    from tierwise.services.serving import reset_password as reset

    with opened_store(state.settings()) as store:
        password = reset(store, username)
    if state.json:
        emit({"username": username, "password": password})
        return
    out.print(f"new password for {username} (shown only now): {password}", markup=False)


@users_app.command("list")
def list_cmd() -> None:
    """Every user with role, team and whether it is disabled."""
    from rich.table import Table

    from tierwise.cli.main import emit, out, state
    from tierwise.services.serving import list_users, opened_store

    with opened_store(state.settings()) as store:
        users = list_users(store)
    if state.json:
        emit(
            [
                {
                    "username": u.username,
                    "display_name": u.display_name,
                    "role": u.role,
                    "team": u.team,
                    "disabled": u.disabled,
                    "created_at": u.created_at.isoformat(),
                }
                for u in users
            ]
        )
        return
    table = Table("username", "display name", "role", "team", "status", "created")
    for u in users:
        table.add_row(
            u.username,
            u.display_name,
            u.role,
            u.team or "",
            "disabled" if u.disabled else "active",
            f"{u.created_at:%Y-%m-%d}",
        )
    out.print(table)


@users_app.command("disable")
def disable(username: Annotated[str, typer.Argument(help="The user to block.")]) -> None:
    """Block sign-in, API tokens and open sessions of a user (the last admin is kept)."""
    from tierwise.cli.main import out, state
    from tierwise.services.serving import disable_user, opened_store

    with opened_store(state.settings()) as store:
        disable_user(store, username)
    if not state.quiet:
        out.print(f"disabled {username}", highlight=False, markup=False)
