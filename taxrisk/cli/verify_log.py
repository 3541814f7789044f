"""``taxrisk verify-log [--anchor SEQ:HASH]``: check the case store's action log chain."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from ._app import app, console

_ANCHOR = re.compile(r"^(\d+):([0-9a-f]{64})$")


def _parse_anchor(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    m = _ANCHOR.match(value.strip().lower())
    if not m:
        raise typer.BadParameter(
            f"expected SEQ:HASH (an entry number and 64 hex digits), got {value!r}",
            param_hint="--anchor",
        )
    return int(m.group(1)), m.group(2)


@app.command("verify-log")
def verify_log(
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            help="A head recorded earlier, SEQ:HASH (as printed by this command): the entry "
            "SEQ must still carry HASH. Detects a cut-off tail, which the chain alone cannot.",
        ),
    ] = None,
) -> None:
    """Verify the action log of the case store (TAXRISK_DATABASE_URL or the workspace's
    cases.db): recompute every entry's SHA-256 chain.

    Prints the number of entries checked and the head (SEQ:HASH: write it down elsewhere and
    pass it back with --anchor later) and exits 0; on a broken chain prints one line naming
    the first bad entry and what happened to it (edited, inserted, deleted) and exits 1.
    """
    from sqlalchemy.engine import make_url

    from taxrisk.serving.errors import ChainBroken, ServingError
    from taxrisk.serving.store.action_log import verify
    from taxrisk.serving.store.session import current_revision, make_engine, session_factory
    from taxrisk.settings import get_settings

    wanted = _parse_anchor(anchor)
    settings = get_settings()
    url = make_url(settings.cases_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
        raise ServingError(f"no case store at {url.database} (set TAXRISK_DATABASE_URL?)")
    engine = make_engine(settings)
    try:
        if current_revision(engine) is None:
            raise ServingError(
                f"the case store at {url.render_as_string()} has no tables (no run or user yet)"
            )
        with session_factory(engine)() as session:
            result = verify(session, anchor=wanted)
    finally:
        engine.dispose()
    if not result.ok:
        raise ChainBroken(
            f"action log broken at entry {result.first_bad_seq} ({result.problem}): "
            f"{result.message}",
            seq=result.first_bad_seq,
        )
    console.print(f"{result.entries} entries verified", markup=False)
    console.print(f"head: {result.head_seq}:{result.head_hash}", markup=False, soft_wrap=True)
