"""The Typer application and the output helpers shared by the commands."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

app = typer.Typer(
    name="taxrisk",
    help="Risk scoring and dispatch for tax administrations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

console = Console(stderr=True)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log details."),
    indicator_config: Annotated[
        Path | None,
        typer.Option(
            "--indicator-config",
            help="TOML overriding the indicator thresholds and parameters for this command "
            "(default: TAXRISK_INDICATOR_CONFIG; see `taxrisk indicators`).",
        ),
    ] = None,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from .indicators import install_indicator_config

    install_indicator_config(indicator_config)
    # one plain line saying where the data came from ("using validated snapshot ...")
    announce = logging.getLogger("taxrisk.features.loading.snapshot")
    if not any(isinstance(h, _ConsoleLine) for h in announce.handlers):
        announce.addHandler(_ConsoleLine())
        announce.setLevel(logging.INFO)
        announce.propagate = False


class _ConsoleLine(logging.Handler):
    """A log record as one plain line on the console (stderr, resolved when printing)."""

    def emit(self, record: logging.LogRecord) -> None:
        console.print(record.getMessage(), markup=False, soft_wrap=True, highlight=False)


def parse_date(value: str, option: str = "--as-of") -> dt.date:
    """An ISO date from the command line, or a one-line usage error."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"expected an ISO date YYYY-MM-DD, got {value!r}", param_hint=option
        ) from None


def progress() -> Progress:
    """A rich progress display on stderr (transient: it leaves the summary, not the bars)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


class ProgressBar:
    """Adapts library ``progress(step, done, total)`` callbacks to one rich bar per step."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.tasks: dict[str, object] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.bar.add_task(step, total=total)
        self.bar.update(self.tasks[step], completed=done, total=total)  # type: ignore[arg-type]
