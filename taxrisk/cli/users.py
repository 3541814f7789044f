"""``taxrisk users add NAME --role ROLE [--unit UNIT]`` (prints the API token once),
``taxrisk users list`` and ``taxrisk users revoke NAME``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from ._app import app, console


class Role(StrEnum):
    """The roles of ``taxrisk.serving.store.users.ROLES`` (which checks them again)."""

    admin = "admin"
    analyst = "analyst"
    selector = "selector"


users_app = typer.Typer(
    name="users",
    help="API users: add one (its token is printed once), list them, revoke one.",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A unique user name (1 to 100 characters).")],
    role: Annotated[
        Role,
        typer.Option(
            "--role",
            case_sensitive=False,
            help="admin (everything), analyst (reads all units, no case writes), selector "
            "(reads and acts on its unit and the units below it).",
        ),
    ],
    unit: Annotated[
        str | None,
        typer.Option("--unit", help="The selector's unit id (required for a selector)."),
    ] = None,
) -> None:
    """Create a user and print its API token, once, on stdout.

    Only a hash of the token is stored: keep the token now, it cannot be shown again (revoke
    the user and add another if it is lost). The addition is written to the action log.
    Use it as `Authorization: Bearer TOKEN`, or to sign in to the web pages.
    """
    from taxrisk.serving.store.session import open_store
    from taxrisk.serving.store.users import add_user
    from taxrisk.settings import get_settings

    with open_store(get_settings()) as session:
        user, token = add_user(session, name, role.value, unit)
        label = f"{user.name} ({user.role}{', unit ' + user.unit_id if user.unit_id else ''})"
    # committed: only now is the token worth showing
    console.print(f"added user {label}; its API token (shown once):", markup=False)
    typer.echo(token)


@users_app.command("list")
def list_(
    revoked: Annotated[
        bool, typer.Option("--revoked/--active", help="Include revoked users (default).")
    ] = True,
) -> None:
    """List the users: name, role, unit, created, revoked."""
    from taxrisk.serving.store.session import open_store
    from taxrisk.serving.store.users import list_users
    from taxrisk.settings import get_settings

    with open_store(get_settings()) as session:
        rows = [
            (u.name, u.role, u.unit_id or "", f"{u.created_at:%Y-%m-%d %H:%M}", u.revoked_at)
            for u in list_users(session)
            if revoked or u.revoked_at is None
        ]
    table = Table(title=f"users ({len(rows)})")
    for col in ("name", "role", "unit", "created", "revoked"):
        table.add_column(col, no_wrap=True)
    for name, role, unit, created, gone in rows:
        table.add_row(name, role, unit, created, f"{gone:%Y-%m-%d %H:%M}" if gone else "")
    console.print(table)


@users_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The user to revoke.")]) -> None:
    """Revoke a user's token at once (the user stays listed, for the log's sake)."""
    from taxrisk.serving.store.session import open_store
    from taxrisk.serving.store.users import revoke_user
    from taxrisk.settings import get_settings

    with open_store(get_settings()) as session:
        user = revoke_user(session, name)
        label = f"{user.name} ({user.role})"
    console.print(f"revoked user {label}", markup=False)
