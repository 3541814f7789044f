"""``taxrisk report CASE_ID --out FILE.html|.pdf``: the explanation report of one referral."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import app, console

#: the command line reads every case: it acts as the system, with admin rights
REPORT_ACTOR_NAME = "system"


@app.command("report")
def report(
    case_id: Annotated[str, typer.Argument(help="The case id (see `taxrisk cases UNIT`).")],
    out: Annotated[
        Path,
        typer.Option(
            "--out", dir_okay=False, help="Where to write it: FILE.html or FILE.pdf (by suffix)."
        ),
    ],
    lang: Annotated[
        str, typer.Option("--lang", help="Language of the report: zh (default) or en.")
    ] = "zh",
) -> None:
    """Write the explanation report of one referral (风险应对任务说明书): the taxpayer, why it
    was chosen, the contributions waterfall, industry-model estimates, the peer comparison,
    the recommended measure and the officer's guide per fired indicator, the model version
    and run. HTML and PDF come from one template; the PDF embeds the CJK font."""
    from taxrisk.serving.reports.render import render_report
    from taxrisk.serving.store.action_log import Actor
    from taxrisk.serving.store.session import open_store
    from taxrisk.settings import get_settings

    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("html", "pdf"):
        raise typer.BadParameter(
            f"expected a file name ending in .html or .pdf, got {out.name!r}", param_hint="--out"
        )
    if lang not in ("zh", "en"):
        raise typer.BadParameter(f"expected zh or en, got {lang!r}", param_hint="--lang")
    settings = get_settings()
    actor = Actor(REPORT_ACTOR_NAME, "admin")
    with (
        console.status(f"rendering the {fmt.upper()} report of {case_id}"),
        open_store(settings) as session,
    ):
        body = render_report(session, actor, case_id, settings, fmt, lang=lang)  # type: ignore[arg-type]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(body)
    console.print(f"report: {out} ({len(body):,} bytes)", markup=False)
