"""Validate once: a clean, typed snapshot of a data folder, reused while the folder is unchanged.

:func:`load_validated` is what the commands call (``validate``, ``features``, ``train``,
``score``, the service). The first one validates the folder (:func:`load_folder`) and writes
the snapshot; the later ones open it instead of validating again, and say so in one log line
(``using validated snapshot <fp> from <time>``; :attr:`LoadResult.snapshot`).

Layout, under ``snapshots/`` of the workspace::

    <folder name>-<hash of its absolute path>/<fingerprint>/
        manifest.json       fingerprint, rules version, created_at, the LoadResult's counts
                            and notes (the quality report's inputs), the tables written
        <table>.parquet     the clean table: contract columns typed, known_on, superseded_on

A snapshot is written into ``.partial-<fingerprint>-<pid>`` and renamed to its final name in
one step once every file and the manifest are complete, so a run killed half way leaves only
a partial folder, which is never read (and is removed by the next run once its process is
gone). A directory without a readable manifest of the expected fingerprint and rules version
is never used. Only the newest snapshot of a folder is kept.

Fingerprint (:func:`fingerprint`): over the contract table files the loader reads (never
``truth/`` or unknown files): each file's name, size and modification time (ns), plus a
content hash, of the whole file when it is at most 1 MiB, else of 16 evenly spaced 64 KiB
samples (first and last included); then :data:`~taxrisk.features.loading.rules.RULES_VERSION`
and a hash of the schema. Any rewrite of a file changes its mtime, so it is caught; a change
that keeps a big file's size and mtime and misses the samples is not (``validate`` always
validates afresh and rewrites the snapshot: run it after editing files in place).

Quarantine files and counts that depend on the as-of date (rows not yet known, versions
superseded) are recomputed from the snapshot for each as-of date; the rest is as validated.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from taxrisk.progress import ProgressFn, report

from ..schema import SCHEMAS
from ..tables import Tables, connect, sql_str
from .folder import LoadResult, TableCounts, load_folder
from .quarantine import as_of_counts, file_profile
from .reading import find_tables, ident
from .rules import PARENTS, RULES_VERSION

__all__ = ["Snapshot", "fingerprint", "load_validated", "snapshot_dir"]

log = logging.getLogger("taxrisk.features.loading")
#: The one line that says where the tables came from (the CLI prints it).
announce = logging.getLogger("taxrisk.features.loading.snapshot")

_SMALL = 1 << 20
_SAMPLES = 16
_SAMPLE = 1 << 16
_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Snapshot:
    """Where a load came from: ``fingerprint``, ``path`` of the snapshot, when it was
    ``created`` (UTC), and whether this load ``reused`` it (False: validated now)."""

    fingerprint: str
    path: Path
    created: dt.datetime
    reused: bool

    def describe(self) -> str:
        when = self.created.strftime("%Y-%m-%d %H:%M:%S UTC")
        if self.reused:
            return f"using validated snapshot {self.fingerprint} from {when}"
        return f"validated and wrote snapshot {self.fingerprint} ({when})"


def _file_hash(f: Path, size: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    with f.open("rb") as fh:
        if size <= _SMALL:
            h.update(fh.read())
        else:
            step = (size - _SAMPLE) / (_SAMPLES - 1)
            for i in range(_SAMPLES):
                fh.seek(int(i * step))
                h.update(fh.read(_SAMPLE))
    return h.hexdigest()


def fingerprint(folder: Path) -> str:
    """16 hex digits identifying the folder's contract files and the rules (module docstring)."""
    files, _ = find_tables(Path(folder))
    h = hashlib.blake2b(digest_size=8)
    h.update(f"rules={RULES_VERSION};schema={_schema_hash()}".encode())
    for name in sorted(files):
        f = files[name]
        st = f.stat()
        h.update(f"|{f.name}:{st.st_size}:{st.st_mtime_ns}:{_file_hash(f, st.st_size)}".encode())
    return h.hexdigest()


def _schema_hash() -> str:
    return hashlib.blake2b(repr(sorted(SCHEMAS.items())).encode(), digest_size=8).hexdigest()


def snapshot_dir(root: Path, folder: Path) -> Path:
    """The folder under ``root`` that holds the snapshots of data folder ``folder``."""
    folder = Path(folder).resolve()
    tag = hashlib.blake2b(str(folder).encode(), digest_size=4).hexdigest()
    return Path(root) / f"{folder.name}-{tag}"


# --------------------------------------------------------------------------------------------


def _counts_json(c: TableCounts) -> dict[str, Any]:
    d = dataclasses.asdict(c)
    d["path"] = str(c.path)
    d["quarantine_file"] = str(c.quarantine_file) if c.quarantine_file else None
    d["ranges"] = {k: [v.isoformat() if v else None for v in pair] for k, pair in c.ranges.items()}
    return d


def _counts_from(d: dict[str, Any]) -> TableCounts:
    d = dict(d)
    d["path"] = Path(d["path"])
    d["quarantine_file"] = Path(d["quarantine_file"]) if d["quarantine_file"] else None
    d["ranges"] = {
        k: tuple(dt.date.fromisoformat(v) if v else None for v in pair)
        for k, pair in d["ranges"].items()
    }
    return TableCounts(**d)


class _Writer:
    """Writes a snapshot table by table while the folder is validated, into a partial folder
    renamed to ``target`` by :meth:`finish`. A table no other table refers to is released from
    the connection as soon as it is written, so validating holds one big table at a time."""

    def __init__(self, con: ibis.BaseBackend, fp: str, target: Path) -> None:
        self.con, self.fp, self.target = con, fp, target
        target.parent.mkdir(parents=True, exist_ok=True)
        self.partial = target.parent / f".partial-{fp}-{os.getpid()}"
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir()
        self.seconds = 0.0

    def path(self, name: str) -> Path:
        """Where the clean table ``name`` is written (``load_folder``'s ``sink``)."""
        return self.partial / f"{name}.parquet"

    def table(self, name: str, clean: ir.Table, counts: TableCounts) -> None:
        """Once ``name`` is written: its used rows' null counts and date ranges from the file's
        statistics, and its stage released unless a later foreign key needs it."""
        t0 = time.perf_counter()
        out = self.path(name)
        if not counts.null_counts and counts.rows_used:
            counts.null_counts, counts.ranges = file_profile(self.con, out, SCHEMAS[name])
        if name not in PARENTS:
            self.con.raw_sql(f"DROP VIEW IF EXISTS {ident(name)}")
            self.con.raw_sql(f"DROP TABLE IF EXISTS {ident('_stage_' + name)}")
        self.seconds += time.perf_counter() - t0

    def finish(self, result: LoadResult, folder: Path) -> None:
        created = dt.datetime.now(dt.UTC)
        manifest = {
            "fingerprint": self.fp,
            "rules_version": RULES_VERSION,
            "folder": str(folder),
            "created_at": created.isoformat(),
            "tables": list(result.counts),  # load order
            "counts": {n: _counts_json(c) for n, c in result.counts.items()},
            "missing_optional": result.missing_optional,
            "notes": result.notes,
        }
        partial, target = self.partial, self.target
        (partial / _MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if target.exists() and _manifest(target, self.fp) is None:
            shutil.rmtree(target)  # not a complete snapshot: never trusted, replaced
        try:
            partial.rename(target)
        except OSError:  # another run wrote the same snapshot first: keep theirs
            shutil.rmtree(partial, ignore_errors=True)
            if not _manifest(target, self.fp):
                raise
        _prune(target.parent, keep=target.name)


def _prune(parent: Path, keep: str) -> None:
    """Remove older snapshots of the folder, and partial ones whose process is gone."""
    for d in parent.iterdir():
        if d.name == keep or not d.is_dir():
            continue
        if d.name.startswith(".partial-"):
            pid = d.name.rsplit("-", 1)[-1]
            if pid.isdigit() and _alive(int(pid)):
                continue
        shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _manifest(path: Path, fp: str) -> dict[str, Any] | None:
    """The manifest of a complete snapshot of fingerprint ``fp``, else ``None``."""
    try:
        m = json.loads((path / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if m.get("fingerprint") != fp or m.get("rules_version") != RULES_VERSION:
        return None
    if not all((path / f"{n}.parquet").is_file() for n in m.get("tables", [])):
        return None
    return m  # type: ignore[no-any-return]


def _open(
    con: ibis.BaseBackend,
    path: Path,
    manifest: dict[str, Any],
    source: Path,
    as_of: dt.date | None,
    reused: bool,
) -> LoadResult:
    tables = {}
    for name in manifest["tables"]:
        file = path / f"{name}.parquet"
        con.raw_sql(
            f"CREATE OR REPLACE VIEW {ident(name)} AS SELECT * FROM read_parquet({sql_str(file)})"
        )
        tables[name] = con.table(name)
    counts = {n: _counts_from(d) for n, d in manifest["counts"].items()}
    for name, c in counts.items():
        c.not_yet_known, c.superseded = as_of_counts(tables[name], as_of)
    notes = list(manifest["notes"])
    snap = Snapshot(
        fingerprint=manifest["fingerprint"],
        path=path,
        created=dt.datetime.fromisoformat(manifest["created_at"]),
        reused=reused,
    )
    return LoadResult(
        tables=Tables(con=con, tables=tables, source=source, notes=notes),
        counts=counts,
        missing_optional=list(manifest["missing_optional"]),
        as_of=as_of,
        notes=notes,
        snapshot=snap,
    )


def load_validated(
    path: Path,
    *,
    snapshots: Path,
    con: ibis.BaseBackend | None = None,
    as_of: dt.date | None = None,
    quarantine_dir: Path | None = None,
    progress: ProgressFn | None = None,
    fresh: bool = False,
) -> LoadResult:
    """The clean tables of a data folder, from its validated snapshot when one matches.

    ``snapshots``: the workspace folder of snapshots (``Settings.snapshots_dir``). ``fresh``:
    validate even when a snapshot matches (``taxrisk validate`` does), and rewrite it.
    ``quarantine_dir``: where a fresh validation writes its quarantine files (the snapshot's
    are kept where they were written). The result's tables are views over the snapshot's
    Parquet files either way, so a fresh and a reused load give the same tables.
    """
    folder = Path(path).resolve()
    con = con or connect()
    fp = fingerprint(folder)
    target = snapshot_dir(snapshots, folder) / fp
    if not fresh and (manifest := _manifest(target, fp)) is not None:
        report(progress, "load validated snapshot", 0, 1)
        result = _open(con, target, manifest, folder, as_of, reused=True)
        report(progress, "load validated snapshot", 1, 1)
        assert result.snapshot is not None
        announce.info("%s", result.snapshot.describe())
        return result
    # the date-dependent counts are taken from the snapshot below (_open), as when reused
    writer = _Writer(con, fp, target)
    validated = load_folder(
        folder,
        con=con,
        quarantine_dir=quarantine_dir,
        progress=progress,
        profile=False,
        on_table=writer.table,
        sink=writer.path,
    )
    report(progress, "write validated snapshot", 0, 1)
    writer.finish(validated, folder)
    manifest = _manifest(target, fp)
    assert manifest is not None
    for name in list(validated.counts):  # free what is left: the snapshot replaces it
        con.raw_sql(f"DROP VIEW IF EXISTS {ident(name)}")
        con.raw_sql(f"DROP TABLE IF EXISTS {ident('_stage_' + name)}")
    log.info(
        "snapshot files profiled in %.1f s (each table's write is timed above)", writer.seconds
    )
    result = _open(con, target, manifest, folder, as_of, reused=False)
    report(progress, "write validated snapshot", 1, 1)
    assert result.snapshot is not None
    announce.info("%s", result.snapshot.describe())
    return result
