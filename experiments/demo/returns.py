"""Return tables as filed (``vat_returns``, ``cit_returns``, ``local_tax_returns``) and truth.

Filing dates: the deadline is the 15th of the month after the period (after the quarter for
CIT); most file in the first half of that month, 4% file one to six months late, a few never
(:mod:`.declarations`). Local taxes are filed with the VAT return. ``local_tax_returns.base``
is the VAT paid for surcharges, 70% of the property value for property tax, the land area
(m2) for land-use tax, and the contract amounts for stamp duty.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .world import Chunk

__all__ = ["cit_table", "filing_dates", "local_table", "truth_table", "vat_table"]


def _ids(ch: Chunk, i: np.ndarray) -> pa.Array:
    return pc.take(pa.array(ch.tp["id"], pa.string()), pa.array(i.astype(np.int64)))


def _labels(labels: np.ndarray, m: np.ndarray) -> pa.Array:
    return pc.take(pa.array(labels, pa.string()), pa.array(m.astype(np.int64)))


def filing_dates(ch: Chunk) -> None:
    """Draw ``mo['filed_on']`` (datetime64[D], n x months) for the monthly returns."""
    rng = ch.rng(12)
    n, months = ch.n, ch.months
    next_start = ch.tl.month_start(np.arange(1, months + 1))[None, :]
    day = np.minimum(rng.geometric(0.18, (n, months)), 15) - 1
    day = 14 - day  # most file close to the deadline
    late = rng.random((n, months)) < 0.04
    extra = np.where(late, rng.integers(16, 180, (n, months)), 0)
    ch.mo["filed_on"] = next_start + (day + extra).astype("timedelta64[D]")
    qlate = rng.random((n, months)) < 0.03
    qextra = np.where(qlate, rng.integers(16, 120, (n, months)), 0)
    ch.mo["cit_filed_on"] = next_start + (rng.integers(0, 15, (n, months)) + qextra).astype(
        "timedelta64[D]"
    )


def vat_table(ch: Chunk) -> pa.Table:
    mo = ch.mo
    i, m = np.nonzero(mo["filed"])
    r = lambda a: pa.array(np.round(a[i, m], 2))  # noqa: E731
    return pa.table(
        {
            "taxpayer_id": _ids(ch, i),
            "period": _labels(ch.tl.period_labels(), m),
            "sales": r(mo["sales_d"]),
            "output_tax": r(mo["out_d"]),
            "input_tax": r(mo["in_d"]),
            "input_tax_transferred_out": r(mo["tout"]),
            "tax_payable": r(mo["payable_d"]),
            "credit_carried_forward": r(mo["carry_d"]),
            "filed_on": pa.array(mo["filed_on"][i, m], pa.date32()),
        }
    )


def cit_table(ch: Chunk) -> pa.Table:
    mo = ch.mo
    i, m = np.nonzero(mo["cit_filed"])
    rev = np.round(mo["rev_q_d"][i, m], 2)
    cost = np.round(mo["cost_q_d"][i, m], 2)
    return pa.table(
        {
            "taxpayer_id": _ids(ch, i),
            "period": _labels(ch.tl.quarter_labels(), m),
            "revenue": pa.array(rev),
            "cost": pa.array(cost),
            "profit": pa.array(np.round(rev - cost, 2)),
            "tax_payable": pa.array(np.round(mo["cit_d"][i, m], 2)),
            "filed_on": pa.array(mo["cit_filed_on"][i, m], pa.date32()),
        }
    )


def local_table(ch: Chunk) -> pa.Table:
    mo, tp = ch.mo, ch.tp
    filed = mo["filed"]
    parts: list[tuple[np.ndarray, np.ndarray, str, np.ndarray, np.ndarray]] = []

    def add(mask: np.ndarray, kind: str, base: np.ndarray, tax: np.ndarray) -> None:
        i, m = np.nonzero(mask & filed & (tax > 0.005))
        parts.append((i, m, kind, np.round(base[i, m], 2), np.round(tax[i, m], 2)))

    everywhere = np.ones_like(filed)
    add(everywhere, "urban_construction", mo["vat_d"], 0.7 * mo["sur_d"])
    add(everywhere, "education_surcharge", mo["vat_d"], 0.3 * mo["sur_d"])
    ones = np.ones((ch.n, ch.months))
    add(everywhere, "property", tp["property_value"][:, None] * 0.7 * ones, mo["prop_d"])
    add(everywhere, "land_use", tp["land_m2"][:, None] * ones, mo["land_d"])
    add(everywhere, "stamp", mo["stamp_d"] / 0.0003, mo["stamp_d"])
    i = np.concatenate([p[0] for p in parts])
    m = np.concatenate([p[1] for p in parts])
    kind = np.concatenate([np.full(p[0].size, p[2]) for p in parts])
    return pa.table(
        {
            "taxpayer_id": _ids(ch, i),
            "period": _labels(ch.tl.period_labels(), m),
            "tax_type": pa.array(kind, pa.string()),
            "base": pa.array(np.concatenate([p[3] for p in parts])),
            "tax_payable": pa.array(np.concatenate([p[4] for p in parts])),
            "filed_on": pa.array(mo["filed_on"][i, m], pa.date32()),
        }
    )


def truth_table(ch: Chunk) -> pa.Table:
    mo = ch.mo
    i, m = np.nonzero(mo["active"])
    due = np.round(mo["due"][i, m], 2)
    declared = np.round(mo["declared"][i, m], 2)
    gap = np.round(np.maximum(due - declared, 0.0), 2)
    label = mo["label"][i, m]
    names = np.array(ch.extra["scheme_names"])
    labels: np.ndarray = np.where(gap > 0, names[np.maximum(label, 0)], None)  # type: ignore[assignment]
    labels = np.where((gap > 0) & (label < 0), "honest_error", labels)
    return pa.table(
        {
            "taxpayer_id": _ids(ch, i),
            "period": _labels(ch.tl.period_labels(), m),
            "tax_due": pa.array(due),
            "tax_declared": pa.array(declared),
            "gap": pa.array(gap),
            "scheme": pa.array(labels, pa.string()),
        }
    )
