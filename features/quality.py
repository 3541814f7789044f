"""The data-quality report of a loaded data folder (清户、清税、清票 as a report).

Built from a :class:`~taxrisk.features.loading.LoadResult`; every figure is one aggregate
query on the clean tables (DuckDB through Ibis), never a scan in Python.

Content (:func:`build_report`, JSON-ready dict; :func:`write_report` writes ``report.json``
and a self-contained ``report.html``):

``tables``         per present table: ``rows_in``, ``rows_used``, ``quarantined`` (rule ->
                   rows), ``rows_quarantined``, ``not_yet_known`` (used rows known after the
                   as-of date), ``superseded`` (used rows replaced by a later version, an
                   amended return, known at the as-of date), ``null_rates`` (column -> share of used rows that are null, in
                   [0, 1]), ``ranges`` (date/period column -> ``{"min", "max"}``, ISO dates,
                   periods as ``YYYY-MM`` / ``YYYY-Qn``), extra and missing columns, the
                   quarantine file.
``coverage``       per third-party source (electricity, social_insurance, operations,
                   invoices as seller or buyer): active taxpayers with at least one row known
                   in the 12 months ending at the as-of month, and their share of the active
                   taxpayers (``None`` when the table is absent).
``never_filing``   active taxpayers with no ``vat_returns`` row known at the as-of date:
                   count, share, up to 20 example ids.
``problems``       the list a data steward works through, most serious first: severity
                   (``high`` > ``medium`` > ``low`` > ``info``), then rows affected.

*Active at the as-of date*: registered on or before it and not deregistered on or before it.
The default as-of date is the latest ``known_on`` in the data (:func:`default_as_of`).

The pieces (:func:`table_profile`, :func:`active_taxpayers`, :func:`coverage`,
:func:`never_filing`, :func:`problems`) are public so later reports can reuse them.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import jinja2

from .loading import RULES, LoadResult, TableCounts
from .schema import SCHEMAS, TableSchema
from .tables import Tables

__all__ = [
    "COVERAGE_SOURCES",
    "SEVERITIES",
    "active_taxpayers",
    "build_report",
    "coverage",
    "default_as_of",
    "default_as_of_from_counts",
    "never_filing",
    "problems",
    "profile_from_counts",
    "render_html",
    "table_profile",
    "write_report",
]

#: Third-party and invoice sources whose coverage of active taxpayers is reported.
COVERAGE_SOURCES: tuple[str, ...] = ("electricity", "social_insurance", "operations", "invoices")
#: Problem severities, most serious first.
SEVERITIES: tuple[str, ...] = ("high", "medium", "low", "info")
#: Coverage window, months ending with the as-of month.
COVERAGE_MONTHS = 12
#: A quarantined share of rows at or above this is a ``high`` problem.
HIGH_QUARANTINE_SHARE = 0.01
#: Never-filing active taxpayers at or above this share is a ``high`` problem.
HIGH_NEVER_FILING_SHARE = 0.05
#: Coverage of an optional source below this share is a ``medium`` problem.
LOW_COVERAGE_SHARE = 0.5

_DATE_KINDS = ("date", "month", "quarter")
_TEMPLATE = "quality_report.html.j2"


def _render_date(value: dt.date | None, kind: str) -> str | None:
    if value is None:
        return None
    if kind == "month":
        return f"{value.year:04d}-{value.month:02d}"
    if kind == "quarter":
        return f"{value.year:04d}-Q{(value.month - 1) // 3 + 1}"
    return value.isoformat()


def _as_date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else None


def table_profile(t: ir.Table, schema: TableSchema) -> dict[str, Any]:
    """Null rates (share of rows, in [0, 1]) of every contract column and min/max of every
    date or period column of a clean table, in one aggregate query."""
    aggs: dict[str, ir.Scalar] = {"_n": t.count()}
    for c in schema.columns:
        aggs[f"null__{c.name}"] = t[c.name].isnull().cast("int64").sum()
        if c.kind in _DATE_KINDS:
            aggs[f"min__{c.name}"] = t[c.name].min()
            aggs[f"max__{c.name}"] = t[c.name].max()
    row = t.aggregate(**aggs).to_pyarrow().to_pylist()[0]
    n = int(row["_n"] or 0)
    null_rates = {
        c.name: (int(row[f"null__{c.name}"] or 0) / n if n else None) for c in schema.columns
    }
    ranges = {
        c.name: {
            "min": _render_date(_as_date(row[f"min__{c.name}"]), c.kind),
            "max": _render_date(_as_date(row[f"max__{c.name}"]), c.kind),
        }
        for c in schema.columns
        if c.kind in _DATE_KINDS
    }
    return {"rows": n, "null_rates": null_rates, "ranges": ranges}


def profile_from_counts(c: TableCounts, schema: TableSchema) -> dict[str, Any]:
    """The same as :func:`table_profile`, from the figures the loader already gathered
    (no query)."""
    n = c.rows_used
    null_rates = {
        col.name: (c.null_counts.get(col.name, 0) / n if n else None) for col in schema.columns
    }
    ranges = {
        col.name: {
            "min": _render_date(c.ranges.get(col.name, (None, None))[0], col.kind),
            "max": _render_date(c.ranges.get(col.name, (None, None))[1], col.kind),
        }
        for col in schema.columns
        if col.kind in _DATE_KINDS
    }
    return {"rows": n, "null_rates": null_rates, "ranges": ranges}


def default_as_of(tables: Tables) -> dt.date | None:
    """The latest ``known_on`` date over all present tables (``None`` if no row is dated)."""
    latest: dt.date | None = None
    for name in tables:
        value = _as_date(tables[name].known_on.max().to_pyarrow().as_py())
        if value is not None and (latest is None or value > latest):
            latest = value
    return latest


def default_as_of_from_counts(counts: dict[str, TableCounts]) -> dt.date | None:
    """:func:`default_as_of` from the loader's date ranges (no query)."""
    latest: dt.date | None = None
    for name, c in counts.items():
        rule = SCHEMAS[name].known_on
        if rule.column is None:
            continue
        top = c.ranges.get(rule.column, (None, None))[1]
        if top is not None and rule.period_end:
            months = 3 if SCHEMAS[name].column(rule.column).kind == "quarter" else 1
            nxt = top.year * 12 + top.month - 1 + months
            top = dt.date(nxt // 12, nxt % 12 + 1, 1) - dt.timedelta(days=1)
        if top is not None and (latest is None or top > latest):
            latest = top
    return latest


def active_taxpayers(tables: Tables, as_of: dt.date) -> ir.Table:
    """``taxpayer_id`` of taxpayers active at ``as_of`` (registered on or before it, not
    deregistered on or before it)."""
    return tables.active(as_of).select("taxpayer_id").distinct()


def _ids_with_rows(tables: Tables, source: str, as_of: dt.date) -> ir.Table:
    t = tables.known(source, as_of)
    months_back = as_of.year * 12 + as_of.month - 1 - (COVERAGE_MONTHS - 1)
    first = dt.date(months_back // 12, months_back % 12 + 1, 1)
    t = t.filter(t.period >= ibis.literal(first))
    if source == "invoices":
        sellers = t.select(taxpayer_id=t.seller_id)
        buyers = t.select(taxpayer_id=t.buyer_id)
        return sellers.union(buyers, distinct=True)
    return t.select("taxpayer_id").distinct()


def coverage(tables: Tables, as_of: dt.date) -> dict[str, dict[str, Any]]:
    """Per source: ``taxpayers`` (active ones with a row known in the 12 months ending at the
    as-of month), ``share`` of active taxpayers in [0, 1] (``None`` when the table is
    absent or nobody is active), ``present``."""
    active = active_taxpayers(tables, as_of)
    n_active = int(active.count().to_pyarrow().as_py())
    out: dict[str, dict[str, Any]] = {}
    for source in COVERAGE_SOURCES:
        if source not in tables:
            out[source] = {"present": False, "taxpayers": None, "share": None}
            continue
        ids = _ids_with_rows(tables, source, as_of)
        n = int(active.semi_join(ids, "taxpayer_id").count().to_pyarrow().as_py())
        out[source] = {"present": True, "taxpayers": n, "share": n / n_active if n_active else None}
    out["_active"] = {"present": True, "taxpayers": n_active, "share": 1.0 if n_active else None}
    return out


def never_filing(tables: Tables, as_of: dt.date, examples: int = 20) -> dict[str, Any]:
    """Active taxpayers with no ``vat_returns`` row known at ``as_of``: ``count``, ``active``,
    ``share`` in [0, 1], and up to ``examples`` ids (sorted)."""
    active = active_taxpayers(tables, as_of)
    filed = tables.known("vat_returns", as_of).select("taxpayer_id").distinct()
    never = active.anti_join(filed, "taxpayer_id")
    n = int(never.count().to_pyarrow().as_py())
    n_active = int(active.count().to_pyarrow().as_py())
    ids = never.order_by("taxpayer_id").limit(examples).to_pyarrow().column(0).to_pylist()
    return {
        "count": n,
        "active": n_active,
        "share": n / n_active if n_active else None,
        "examples": ids,
    }


def _problem(
    severity: str, table: str | None, count: int, message: str, **extra: Any
) -> dict[str, Any]:
    return {"severity": severity, "table": table, "count": count, "message": message, **extra}


def problems(
    counts: dict[str, TableCounts],
    missing_optional: list[str],
    cov: dict[str, dict[str, Any]] | None,
    never: dict[str, Any] | None,
    notes: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The problems found, most serious first (severity, then rows affected).

    Each: ``severity`` (one of :data:`SEVERITIES`), ``table``, ``count`` (rows or taxpayers
    affected), ``message`` (one line), and ``rule`` for quarantined rows.
    """
    out: list[dict[str, Any]] = []
    for name, c in counts.items():
        for rule, n in c.quarantined.items():
            share = n / c.rows_in if c.rows_in else 0.0
            sev = (
                "high"
                if share >= HIGH_QUARANTINE_SHARE or name in ("units", "taxpayers")
                else "medium"
            )
            out.append(
                _problem(
                    sev,
                    name,
                    n,
                    f"{n} rows of {name} quarantined ({rule}, {share:.2%} of rows in)",
                    rule=rule,
                )
            )
        if c.missing_columns:
            out.append(
                _problem(
                    "low",
                    name,
                    0,
                    f"{name}: nullable columns absent, read as null: {', '.join(c.missing_columns)}",
                )
            )
        if c.not_yet_known:
            out.append(
                _problem(
                    "info",
                    name,
                    c.not_yet_known,
                    f"{c.not_yet_known} rows of {name} are dated after the as-of date (not yet known)",
                )
            )
    if never and never["count"]:
        share = never["share"] or 0.0
        sev = "high" if share >= HIGH_NEVER_FILING_SHARE else "medium"
        out.append(
            _problem(
                sev,
                "vat_returns",
                never["count"],
                f"{never['count']} active taxpayers have never filed a VAT return ({share:.2%} of active)",
            )
        )
    for name in missing_optional:
        out.append(
            _problem(
                "low",
                name,
                0,
                f"optional table {name} is absent: indicators that need it are switched off",
            )
        )
    cov = cov or {}
    for source, cv in cov.items():
        if source.startswith("_") or not cv["present"] or cv["share"] is None:
            continue
        if cv["share"] < LOW_COVERAGE_SHARE:
            missing = cov["_active"]["taxpayers"] - cv["taxpayers"]
            out.append(
                _problem(
                    # operations are collected for the industries with a model only
                    "low" if source == "operations" else "medium",
                    source,
                    missing,
                    f"{source} covers only {cv['share']:.1%} of active taxpayers in the last {COVERAGE_MONTHS} months",
                )
            )
    for note in notes or []:
        out.append(_problem("info", None, 0, note))
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    out.sort(key=lambda p: (rank[p["severity"]], -p["count"]))
    return out


def build_report(result: LoadResult, as_of: dt.date | None = None) -> dict[str, Any]:
    """The data-quality report of a loaded folder, as a JSON-ready dict (see module doc).

    ``as_of``: the date for coverage and never-filing; default ``result.as_of``, else the
    latest known date in the data.
    """
    tables = result.tables
    as_of = as_of or result.as_of or default_as_of_from_counts(result.counts)
    if as_of is None and any(not c.ranges for c in result.counts.values()):
        as_of = default_as_of(tables)
    per_table: dict[str, Any] = {}
    for name, c in result.counts.items():
        schema = SCHEMAS[name]
        prof = (
            profile_from_counts(c, schema)
            if c.null_counts or not c.rows_used
            else table_profile(tables[name], schema)
        )
        per_table[name] = {
            "path": str(c.path),
            "format": c.format,
            "rows_in": c.rows_in,
            "rows_used": c.rows_used,
            "rows_quarantined": c.rows_quarantined,
            "quarantined": {r: c.quarantined[r] for r in RULES if r in c.quarantined},
            "not_yet_known": c.not_yet_known,
            "superseded": c.superseded,
            "null_rates": prof["null_rates"],
            "ranges": prof["ranges"],
            "extra_columns": list(c.extra_columns),
            "missing_columns": list(c.missing_columns),
            "quarantine_file": str(c.quarantine_file) if c.quarantine_file else None,
        }
    cov = coverage(tables, as_of) if as_of and "taxpayers" in tables else None
    never = never_filing(tables, as_of) if as_of and "vat_returns" in tables else None
    return {
        "data_folder": str(tables.source) if tables.source else None,
        "as_of": as_of.isoformat() if as_of else None,
        "as_of_given": result.as_of.isoformat() if result.as_of else None,
        "generated_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "rules": list(RULES),
        "tables": per_table,
        "missing_optional": list(result.missing_optional),
        "coverage": {k: v for k, v in (cov or {}).items() if not k.startswith("_")},
        "active_taxpayers": cov["_active"]["taxpayers"] if cov else None,
        "coverage_months": COVERAGE_MONTHS,
        "never_filing": never,
        "problems": problems(result.counts, result.missing_optional, cov, never, result.notes),
        "notes": list(result.notes),
    }


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained UTF-8 HTML page (no external assets)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pct"] = lambda v: "–" if v is None else f"{v:.1%}"
    env.filters["num"] = lambda v: "–" if v is None else f"{v:,}"
    return env.get_template(_TEMPLATE).render(r=report, rules=RULES, severities=SEVERITIES)


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.json`` into ``out_dir``; returns (html, json)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "report.json"
    html_path = out_dir / "report.html"
    json_path.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    html_path.write_text(render_html(report), encoding="utf-8")
    return html_path, json_path
