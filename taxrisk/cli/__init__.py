"""The ``taxrisk`` command line (CONTRACT section 2).

Thin: each command lives in its own module here, parses its options, builds the settings and
calls the library. Library errors (:class:`~taxrisk.errors.TaxriskError`) become one
line on stderr and exit code 1; anything else unexpected becomes one line and exit code 2
(``TAXRISK_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import os
import sys

import typer

from ._app import app

# Each module registers its command on `app`. A command is listed here only once it works.
from . import cases, demo_data, evaluate, features, runs, score, train, validate, verify_log  # noqa: F401  isort: skip
from . import effectiveness  # noqa: F401  isort: skip
from . import report  # noqa: F401  isort: skip
from . import serve, users  # noqa: F401  isort: skip
from . import indicators  # noqa: F401  isort: skip

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    from taxrisk.errors import TaxriskError

    try:
        app(standalone_mode=False)
    except TaxriskError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # usage errors carry their own message and exit code
        # typer bundles its own click: its usage errors are TyperExceptions with show()
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if isinstance(exc, typer.TyperException) and callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        if os.environ.get("TAXRISK_DEBUG"):
            raise
        typer.echo(f"error: unexpected {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)
