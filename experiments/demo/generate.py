"""Generate a synthetic city: every contract table plus ``truth/gaps``, chunk by chunk."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Literal

import pyarrow as pa

from taxrisk.errors import TaxriskError
from taxrisk.progress import ProgressFn, report

from . import planted as planted_mod
from .activity import draw_activity
from .audits import audits_table
from .declarations import file_returns
from .evasion import draw_evasion
from .events import draw_events
from .industries import industries_table, industry_norms_table
from .invoices import build_invoices
from .returns import cit_table, filing_dates, local_table, truth_table, vat_table
from .styles import CONTRACT_NORMS, STYLES, Style
from .thirdparty import (
    electricity_table,
    operations_table,
    property_table,
    registrations_table,
    social_table,
)
from .timeline import Timeline
from .world import Chunk, build_units, draw_taxpayers, taxpayers_table
from .writer import OPTIONAL, SCHEMAS_ARROW, TableWriter

__all__ = ["CHUNK_SIZE", "DEFAULT_END", "DemoDataError", "generate"]

log = logging.getLogger(__name__)

#: Taxpayers per chunk: bounds memory (about 1 GB a chunk at 36 months) at any scale.
CHUNK_SIZE = 25_000
#: The last month of the default world (fixed, so a seed always gives the same world).
DEFAULT_END = "2025-12"


class DemoDataError(TaxriskError):
    """Bad arguments to the generator (the message says which and what is allowed)."""


def _chunk_job(job: tuple) -> tuple[dict[str, pa.Table], dict[str, float]]:
    """Build every table of one chunk (runs in a worker process for large worlds)."""
    c, taxpayers, tl, seed, units, drop, style = job
    lo = c * CHUNK_SIZE
    ch = Chunk(index=c, lo=lo, n=min(CHUNK_SIZE, taxpayers - lo), tl=tl, seed=seed, style=style)
    draw_taxpayers(ch, units)
    if c == 0:
        planted_mod.plant_registry(ch)
    draw_activity(ch)
    draw_evasion(ch)
    draw_events(ch)
    if c == 0:
        planted_mod.plant_activity(ch)
    file_returns(ch)
    filing_dates(ch)
    out: dict[str, pa.Table] = {"invoices": build_invoices(ch)}
    for name, build in _BUILDERS:
        if name not in drop:
            out[name] = build(ch)
    stats = {
        "gap": float(ch.mo["gap"].sum()),
        "due": float(ch.mo["due"].sum()),
        "evaders": int(ch.tp["evader"].sum()),
        "active_end": int(ch.mo["active"][:, -1].sum()),
    }
    return out, stats


_BUILDERS = (
    ("taxpayers", taxpayers_table), ("vat_returns", vat_table), ("cit_returns", cit_table),
    ("local_tax_returns", local_table), ("electricity", electricity_table),
    ("social_insurance", social_table), ("registrations", registrations_table),
    ("property", property_table), ("operations", operations_table), ("audits", audits_table),
    ("truth/gaps", truth_table),
)  # fmt: skip
_ORDER = ("taxpayers", "vat_returns", "cit_returns", "local_tax_returns", "invoices", "electricity",
          "social_insurance", "registrations", "property", "operations", "audits", "truth/gaps")  # fmt: skip


def _ordered(
    pool: ProcessPoolExecutor, jobs: list[tuple], window: int
) -> Iterator[tuple[dict[str, pa.Table], dict[str, float]]]:
    """Results of ``jobs`` in order, keeping at most ``window`` chunks in flight (bounded memory)."""
    pending: deque[Future] = deque()
    it = iter(jobs)
    for job in it:
        pending.append(pool.submit(_chunk_job, job))
        if len(pending) >= window:
            break
    while pending:
        result = pending.popleft().result()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(pool.submit(_chunk_job, nxt))
        yield result


def _consume(results: Iterator[tuple[dict[str, pa.Table], dict[str, float]]], writer: TableWriter,
             acc: dict[str, float], progress: ProgressFn | None, n_chunks: int) -> None:  # fmt: skip
    for c, (tables, stats) in enumerate(results):
        for name in _ORDER:
            if name in tables:
                writer.write(name, tables[name])
        for k, v in stats.items():
            acc[k] += v
        log.info("chunk %d/%d written", c + 1, n_chunks)
        report(progress, "generating taxpayers", c + 1, n_chunks)


def generate(
    out: Path,
    *,
    taxpayers: int = 2000,
    months: int = 36,
    seed: int = 0,
    end: str = DEFAULT_END,
    fmt: Literal["parquet", "csv"] = "parquet",
    drop: Sequence[str] = (),
    style: str | Style = "standard",
    progress: ProgressFn | None = None,
    workers: int | None = None,
) -> dict:
    """Write a synthetic city to ``out`` and return a summary.

    Writes ``out/NAME.parquet`` (or ``.csv``) for every contract table except those in
    ``drop`` (optional tables only) and ``out/truth/gaps.<fmt>``. The data covers ``months``
    months ending with ``end`` (``YYYY-MM``); the natural as-of date is the last day of ``end``.
    Deterministic: the same arguments give byte-identical files.

    ``style`` (a name in :data:`~.styles.STYLES` or a :class:`~.styles.Style`) sets the world's
    scheme mix, noise, audit policy, norm names, drift and the optional tables it leaves out
    (added to ``drop``): ``standard`` (default, the world of ``experiments/README.md``),
    ``shifted`` (as if built by another team: other mix, noise and audit policy, contract
    norm names only, no ``property`` nor ``social_insurance``) and ``drift`` (the standard
    history, but in the last 12 months evasion moves to other schemes, among them
    ``personal_account_sales``, which no earlier audit has seen). See :mod:`.styles`.

    Summary keys: ``tables`` (name -> rows), ``taxpayers``, ``active_at_end``, ``evaders``
    (taxpayers with a scheme, shells included), ``evader_share``, ``total_gap`` and
    ``total_due`` (yuan over the window), ``as_of`` (ISO date), ``planted`` (worked examples),
    ``style``.
    """
    if isinstance(style, str):
        if style not in STYLES:
            raise DemoDataError(f"--style must be one of {', '.join(STYLES)}; got {style!r}")
        style = STYLES[style]
    drop = tuple(dict.fromkeys((*drop, *style.drop)))
    if taxpayers < 10:
        raise DemoDataError(f"--taxpayers must be at least 10, got {taxpayers}")
    if months < 12:
        raise DemoDataError(f"--months must be at least 12, got {months}")
    if fmt not in ("parquet", "csv"):
        raise DemoDataError(f"--format must be parquet or csv, got {fmt!r}")
    unknown = [d for d in drop if d not in OPTIONAL]
    if unknown:
        raise DemoDataError(
            f"only optional tables can be dropped ({', '.join(sorted(OPTIONAL))}); got {', '.join(unknown)}"
        )
    try:
        tl = Timeline(end, months)
    except ValueError as exc:
        raise DemoDataError(f"--end must be YYYY-MM, got {end!r}") from exc

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in SCHEMAS_ARROW:  # a re-run replaces a previous world
        for ext in ("parquet", "csv"):
            p = out / f"{name}.{ext}"
            if p.exists():
                p.unlink()
    if (out / "_READY").exists():
        (out / "_READY").unlink()
    shutil.rmtree(out / "_tmp", ignore_errors=True)

    writer = TableWriter(out, fmt)
    keep = lambda name: name not in drop  # noqa: E731
    units = build_units(taxpayers, seed)
    writer.write("units", units.table)
    if keep("industries"):
        writer.write("industries", industries_table())
    if keep("industry_norms"):
        names = CONTRACT_NORMS if style.norm_names == "contract" else None
        writer.write("industry_norms", industry_norms_table(names))

    n_chunks = -(-taxpayers // CHUNK_SIZE)
    acc = {"gap": 0.0, "due": 0.0, "evaders": 0, "active_end": 0}
    jobs = [(c, taxpayers, tl, seed, units, tuple(drop), style) for c in range(n_chunks)]
    report(progress, "generating taxpayers", 0, n_chunks)
    n_workers = max(1, min(workers if workers is not None else (os.cpu_count() or 1), n_chunks, 4))
    if n_workers == 1:
        results: Iterator[tuple[dict[str, pa.Table], dict[str, float]]] = map(_chunk_job, jobs)
        _consume(results, writer, acc, progress, n_chunks)
    else:
        ctx = mp.get_context("fork")
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
            _consume(_ordered(pool, jobs, n_workers + 1), writer, acc, progress, n_chunks)
    writer.close()
    return {
        "out": str(out),
        "tables": dict(writer.rows),
        "taxpayers": taxpayers,
        "months": months,
        "end": end,
        "style": style.name,
        "as_of": str(tl.last_day),
        "active_at_end": acc["active_end"],
        "evaders": acc["evaders"],
        "evader_share": acc["evaders"] / taxpayers,
        "total_gap": round(acc["gap"], 2),
        "total_due": round(acc["due"], 2),
        "planted": {k: v["taxpayer_id"] for k, v in planted_mod.PLANTED.items()}
        if taxpayers >= 3
        else {},
    }
