"""Reading one table file: finding the files, sniffing the format, the encoding and the header.

``NAME.csv`` (UTF-8, a BOM is accepted, header row, every column read as text so that bad
values are seen rather than coerced away) or ``NAME.parquet`` (any column types). The
``truth/`` subfolder is never read; unknown files are ignored with a note.

Stop cases (a :class:`~taxrisk.features.errors.DataError`, one line naming file and column):
both ``NAME.csv`` and ``NAME.parquet``, empty file, binary data posing as CSV, not UTF-8 (with
the ``iconv -f GBK`` hint), an empty or duplicated header, a malformed CSV line, an unreadable
Parquet file.

SQL is built with quoted identifiers (:func:`ident`) and quoted literals (:func:`sql_str`)
everywhere: a folder or file name with a quote or a space reads like any other.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path

import ibis
import ibis.expr.types as ir

from ..errors import AmbiguousTable, MissingTable, TableUnreadable
from ..schema import SCHEMAS
from ..tables import sql_str

__all__ = ["duckdb_message", "find_tables", "ident", "register_raw", "sql_str"]

_HEAD_BYTES = 1 << 16
_GBK_HINT = "not UTF-8; if it is GBK convert with iconv -f GBK -t UTF-8"


def find_tables(path: Path) -> tuple[dict[str, Path], list[str]]:
    """Contract table name -> file in ``path``, and notes on files that were ignored.

    Raises :class:`AmbiguousTable` when both ``NAME.csv`` and ``NAME.parquet`` exist. Never
    looks into subfolders (``truth/`` in particular).
    """
    path = Path(path)
    if not path.is_dir():
        raise MissingTable("not a folder", path=path)
    found: dict[str, Path] = {}
    notes: list[str] = []
    for f in sorted(path.iterdir()):
        if f.is_dir() or f.name.startswith((".", "_")):
            continue
        stem, suffix = f.stem, f.suffix.lower()
        if suffix not in (".csv", ".parquet") or stem not in SCHEMAS:
            notes.append(f"ignored unknown file {f.name}")
            continue
        if stem in found:
            raise AmbiguousTable(
                f"both {found[stem].name} and {f.name} are present; keep one", path=f
            )
        found[stem] = f
    return found, notes


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head or head.startswith(b"PAR1"):
        return True
    controls = sum(1 for b in head[:4096] if b < 9 or 13 < b < 32 or b == 127)
    return controls > max(2, len(head[:4096]) // 100)


def _bad_utf8_column(head: bytes, header: list[str]) -> tuple[int, str | None]:
    """(1-based line, column) of the first invalid UTF-8 byte in ``head``."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return 0, None
    except UnicodeDecodeError as exc:
        pos = exc.start
    line_start = head.rfind(b"\n", 0, pos) + 1
    line_no = head.count(b"\n", 0, pos) + 1
    before = head[line_start:pos].decode("utf-8", errors="replace")
    fields = next(csv.reader([before + "x"]), [])
    idx = max(len(fields) - 1, 0)
    return line_no, header[idx] if line_no > 1 and idx < len(header) else None


def _csv_header(file: Path) -> list[str] | None:
    """Column names of a CSV file, or ``None`` when it has a header and nothing else.

    Raises :class:`TableUnreadable` for empty, binary or non-UTF-8 files.
    """
    with file.open("rb") as fh:
        head = fh.read(_HEAD_BYTES)
    if not head.strip():
        raise TableUnreadable("empty file", path=file)
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8) :]
    if _looks_binary(head):
        hint = "it looks like Parquet: name it .parquet" if head.startswith(b"PAR1") else None
        raise TableUnreadable("binary data, not a CSV text file", path=file, hint=hint)
    first = head.split(b"\n", 1)[0]
    try:
        header_text = first.decode("utf-8")
    except UnicodeDecodeError:
        raise TableUnreadable(f"line 1: {_GBK_HINT}", path=file) from None
    header = [h.strip() for h in next(csv.reader(io.StringIO(header_text)), [])]
    if not any(header):
        raise TableUnreadable("empty header line", path=file)
    # a trailing comma leaves an unnamed column: name it so that it can be read (and ignored)
    header = [h or f"_unnamed_{i + 1}" for i, h in enumerate(header)]
    line_no, column = _bad_utf8_column(head, header)
    if line_no:
        raise TableUnreadable(f"line {line_no}: {_GBK_HINT}", path=file, column=column)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise TableUnreadable(
            "column appears more than once in the header", path=file, column=dupes[0]
        )
    return header


def duckdb_message(exc: Exception) -> str:
    text = str(exc)
    m = re.search(r"CSV Error on Line: (\d+)", text)
    line = f"line {m.group(1)}: " if m else ""
    if "not utf-8" in text.lower() or "invalid unicode" in text.lower():
        return f"{line}{_GBK_HINT}"
    m2 = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if m2:
        return f"{line}expected {m2.group(1)} fields, found {m2.group(2)}"
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"{line}{first}"


def register_raw(con: ibis.BaseBackend, name: str, file: Path) -> tuple[ir.Table, list[str]]:
    """A view ``_raw_<name>`` over the file (not yet scanned) and its column names."""
    view = f"_raw_{name}"
    if file.suffix.lower() == ".csv":
        header = _csv_header(file)
        assert header is not None
        cols = "{" + ", ".join(f"{sql_str(h)}: 'VARCHAR'" for h in header) + "}"
        source = (
            f"read_csv({sql_str(file)}, auto_detect=false, header=true, delim=',', "
            f"quote='\"', escape='\"', columns={cols}, strict_mode=true)"
        )
    else:
        with file.open("rb") as fh:
            magic = fh.read(4)
        if not magic:
            raise TableUnreadable("empty file", path=file)
        if magic != b"PAR1":
            raise TableUnreadable("not a Parquet file", path=file)
        source = f"read_parquet({sql_str(file)})"
    try:
        con.raw_sql(f"CREATE OR REPLACE TEMP VIEW {ident(view)} AS SELECT * FROM {source}")
        raw = con.table(view)
    except Exception as exc:  # duckdb raises its own hierarchy
        raise TableUnreadable(duckdb_message(exc), path=file) from exc
    return raw, list(raw.columns)
