"""Errors raised by the feature layer (loading, validation, indicators).

Hierarchy::

    TaxriskError                 base of every error the CLI and API translate (taxrisk.errors)
    └── DataError                a data folder or one of its tables is unusable
        ├── TableUnreadable      a table cannot be read at all (encoding, binary, empty, ...)
        ├── MissingColumn        a required column is absent
        ├── AmbiguousTable       both NAME.csv and NAME.parquet are present
        └── MissingTable         a required table is absent

Each ``DataError`` carries ``path`` and ``column`` (when one is at fault) and renders as one
line naming them; the CLI prints ``str(error)`` and exits non-zero.
"""

from __future__ import annotations

from pathlib import Path

from taxrisk.errors import TaxriskError

__all__ = [
    "AmbiguousTable",
    "DataError",
    "MissingColumn",
    "MissingTable",
    "TableUnreadable",
    "TaxriskError",  # re-exported: it lives in the leaf module taxrisk.errors
]


class DataError(TaxriskError):
    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.column = column
        self.hint = hint
        where = str(self.path) if self.path is not None else ""
        if column:
            where = f"{where}, column {column!r}" if where else f"column {column!r}"
        text = f"{where}: {message}" if where else message
        if hint:
            text = f"{text} ({hint})"
        super().__init__(text)


class TableUnreadable(DataError):
    pass


class MissingColumn(DataError):
    pass


class AmbiguousTable(DataError):
    pass


class MissingTable(DataError):
    pass
