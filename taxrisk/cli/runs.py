"""``taxrisk runs [show RUN_ID]``: the published scoring runs and their monitoring."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ._app import app, console

runs_app = typer.Typer(help="Published scoring runs: counts, timings and monitoring.")
app.add_typer(runs_app, name="runs")


@runs_app.callback(invoke_without_command=True)
def runs_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest runs to list.")] = 20,
) -> None:
    """List the published scoring runs, newest first (the first is the current run)."""
    if ctx.invoked_subcommand is not None:
        return
    from sqlalchemy import select

    from taxrisk.serving.store.models import ScoringRun
    from taxrisk.serving.store.session import open_store
    from taxrisk.settings import get_settings

    with open_store(get_settings()) as s:
        runs = s.scalars(
            select(ScoringRun).order_by(ScoringRun.published_at.desc()).limit(limit)
        ).all()
        table = Table(title="scoring runs (newest first)")
        for col in (
            "run",
            "as of",
            "model",
            "scored",
            "cases",
            "exploration",
            "overflow",
            "seconds",
            "shifted features",
        ):
            table.add_column(col)
        for r in runs:
            shifted = r.monitoring.get("vs_previous", {}).get("shifted")
            table.add_row(
                r.run_id,
                r.as_of.isoformat(),
                str(r.model_version),
                f"{r.counts.get('scored', 0):,}",
                f"{r.counts.get('model', 0) + r.counts.get('exploration', 0):,}",
                f"{r.counts.get('exploration', 0):,}",
                f"{r.counts.get('overflow', 0):,}",
                f"{r.timings.get('total', 0):.1f}",
                "-" if shifted is None else str(shifted),
            )
    console.print(table)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="A run id (see `taxrisk runs`).")],
    top: Annotated[int, typer.Option("--top", min=1, help="Most shifted features shown.")] = 10,
) -> None:
    """One run: counts, timings, units (capacity, assigned, shadow price), PSI, selection rates."""
    from sqlalchemy import select

    from taxrisk.serving.errors import RunNotFound
    from taxrisk.serving.store.models import RunUnit, ScoringRun
    from taxrisk.serving.store.session import open_store
    from taxrisk.settings import get_settings

    with open_store(get_settings()) as s:
        r = s.get(ScoringRun, run_id)
        if r is None:
            raise RunNotFound(f"no scoring run {run_id!r} (see `taxrisk runs`)")
        console.print(
            f"run {r.run_id}: as of {r.as_of}, model {r.model_uri} (v{r.model_version}), "
            f"config {r.config_version}, data {r.data_dir} [{r.data_fingerprint[:12]}]",
            markup=False,
        )
        console.print(
            "counts: " + ", ".join(f"{k} {v:,}" for k, v in r.counts.items()), markup=False
        )
        console.print(
            "seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in r.timings.items()), markup=False
        )
        units = Table(title="units")
        for col in (
            "unit",
            "capacity",
            "assigned",
            "exploration",
            "overflow",
            "expected yield",
            "shadow price",
        ):
            units.add_column(col, justify="right")
        for u in s.scalars(
            select(RunUnit).where(RunUnit.run_id == run_id).order_by(RunUnit.shadow_price.desc())
        ):
            units.add_row(
                u.unit_id,
                str(u.capacity),
                str(u.assigned),
                str(u.exploration),
                str(u.overflow),
                f"{u.expected_yield:,.0f}",
                f"{u.shadow_price:,.0f}",
            )
        console.print(units)
        mon = r.monitoring
        for key, title in (
            ("vs_previous", "PSI against the previous run"),
            ("vs_training", "PSI against the model's training data"),
        ):
            if key not in mon:
                console.print(f"{title}: not available", markup=False)
                continue
            m = mon[key]
            console.print(
                f"{title} ({m['against']}): {m['shifted']} shifted (>= 0.25), "
                f"{m['moderate']} moderate of {m['features']}; most shifted: "
                + ", ".join(f"{f} {v:.3f}" for f, v in list(m["psi"].items())[:top]),
                markup=False,
            )
        if "score_psi_vs_previous" in mon:
            console.print(
                f"PSI of the score against the previous run: {mon['score_psi_vs_previous']:.3f}",
                markup=False,
            )
        rates = Table(title="selection rates")
        for col in ("dimension", "group", "population", "selected", "rate"):
            rates.add_column(col)
        for row in mon.get("selection_rates", []):
            rates.add_row(
                str(row["dimension"]),
                str(row["group"]),
                f"{row['population']:,}",
                f"{row['selected']:,}",
                f"{row['rate']:.2%}",
            )
        console.print(rates)
