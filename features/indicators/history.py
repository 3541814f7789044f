"""Audit history known at the as-of date (raw aggregates for the models; no indicator).

Only audits *closed* on or before the as-of date count (their outcome is known then; an open
audit has no label yet, and counting it would mark every training example, which is featured
as of its own selection day). ``selection_reason`` and ``selection_probability`` are never
features: they describe how the bureau chose, not the taxpayer.

``prior_audits`` closed audits; ``prior_adjusted`` of which adjusted; ``prior_adjusted_share``;
``recovered_24m`` tax recovered (yuan) by audits closed in the last 24 months;
``months_since_audit`` months from the last closing to the as-of month (null if never).
"""

from __future__ import annotations

import ibis.expr.types as ir

from ._base import Context, Family, Source, month_diff, safe_div

__all__ = ["FAMILY"]


def history_source(ctx: Context) -> ir.Table:
    a = ctx.known_all("audits")
    a = a.filter(a.closed_on.notnull() & (a.closed_on <= a.as_of))
    recent = month_diff(a.m0, a.closed_on) < 24
    g = a.group_by(["as_of", "taxpayer_id"]).aggregate(
        prior_audits=a.case_id.count(),
        prior_adjusted=a.case_id.count(where=a.outcome == "adjusted"),
        recovered_24m=a.tax_recovered.sum(where=recent),
        _last=a.closed_on.max(),
        _m0=a.m0.max(),
    )
    return g.select(
        "as_of",
        "taxpayer_id",
        "prior_audits",
        "prior_adjusted",
        prior_adjusted_share=safe_div(g.prior_adjusted, g.prior_audits),
        recovered_24m=g.recovered_24m.fill_null(0.0),
        months_since_audit=month_diff(g._m0, g._last).cast("float64"),
    )


SOURCES = [
    Source(
        "history",
        ("audits",),
        history_source,
        zero_fill=("prior_audits", "prior_adjusted", "recovered_24m"),
    )
]
FAMILY = Family(name="history", order=70, sources=tuple(SOURCES))
