"""``taxrisk cases UNIT`` and ``taxrisk feedback FILE``: a unit's cases; results from a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._app import app, console


def _actor(user: str | None):  # type: ignore[no-untyped-def]
    """The CLI acts as a named user of the store, or as the system (admin rights)."""
    from sqlalchemy import select

    from taxrisk.serving.errors import UserError
    from taxrisk.serving.store.action_log import Actor
    from taxrisk.serving.store.models import User
    from taxrisk.serving.store.session import open_store
    from taxrisk.settings import get_settings

    if user is None:
        return Actor("taxrisk (command line)", "admin")
    with open_store(get_settings()) as s:
        u = s.scalars(select(User).where(User.name == user)).first()
        if u is None or u.revoked_at is not None:
            raise UserError(f"no active user {user!r} (see `taxrisk users list`)")
        return Actor(u.name, u.role, u.unit_id)


@app.command("cases")
def cases(
    unit: Annotated[str, typer.Argument(help="A unit id: its cases and those of the units below.")],
    status: Annotated[str | None, typer.Option("--status", help="Only this state.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 50,
    user: Annotated[
        str | None, typer.Option("--user", help="Act as this user (default: the system).")
    ] = None,
    csv: Annotated[
        bool, typer.Option("--csv", help="Print CSV on stdout instead of a table.")
    ] = False,
) -> None:
    """A unit's cases, best first: case id, taxpayer, rank, expected yield, measure, state."""
    from taxrisk.serving.store import cases as svc
    from taxrisk.serving.store.session import open_store
    from taxrisk.settings import get_settings

    actor = _actor(user)
    with open_store(get_settings()) as s:
        rows, total = svc.list_cases(s, actor, unit, svc.CaseFilter(status=status), limit=limit)
        records = [
            (
                c.case_id,
                c.taxpayer_id,
                c.taxpayer_name,
                c.unit_id,
                str(c.rank),
                f"{c.expected_yield:.0f}",
                c.risk_level,
                c.recommended_measure,
                c.selection,
                c.status,
                c.due_on.isoformat(),
            )
            for c in rows
        ]
    header = ("case_id", "taxpayer_id", "name", "unit_id", "rank", "expected_yield",
              "risk_level", "measure", "selection", "status", "due_on")  # fmt: skip
    if csv:
        import csv as csv_module
        import sys

        writer = csv_module.writer(sys.stdout)
        writer.writerow(header)
        writer.writerows(records)
        return
    table = Table(title=f"cases of {unit} and below: {len(rows)} of {total:,}")
    for col in header:
        table.add_column(col, overflow="fold")
    for rec in records:
        table.add_row(*rec)
    console.print(table)


@app.command("feedback")
def feedback(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="Results as CSV (header) or JSON list."),
    ],
    user: Annotated[
        str | None, typer.Option("--user", help="Record as this user (default: the system).")
    ] = None,
) -> None:
    """Record response results from a file: one row per case.

    Columns: case_id, outcome (no_change/adjusted), measure_taken (outreach, guidance, notice,
    assessment, audit), tax_recovered, late_fees, penalties (yuan, >= 0), notes, covers_from,
    covers_to (YYYY-MM). All rows are checked first and recorded in one transaction: one bad
    row records nothing. Results at or above the approval line wait for a second person.
    """
    from taxrisk.serving.config import config_for
    from taxrisk.serving.feedback import load_feedback_file
    from taxrisk.serving.store import cases as svc
    from taxrisk.serving.store.session import open_store
    from taxrisk.settings import get_settings

    actor = _actor(user)
    pairs = load_feedback_file(file)
    line = config_for(get_settings()).approval.yield_line
    closed = review = 0
    with open_store(get_settings()) as s:
        for case_id, fb in pairs:
            svc.record_feedback(s, actor, case_id, fb, approval_line=line)
            state = svc.get_case(s, actor, case_id).status
            closed += state == "closed"
            review += state == "review"
    console.print(
        f"recorded {len(pairs)} result(s): {closed} closed, {review} awaiting approval",
        markup=False,
    )
