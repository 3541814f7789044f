"""Audit history with the bias of real practice.

Cases are opened month by month:

- **rule** (most): in analysis rounds (four a year, around the 10th of March, June, September,
  December, from the seventh month on), the old rules are counted on what was filed by that
  day over the last 12 months: VAT burden below the industry warning line, six or more zero or
  negative returns, six consecutive months paying under 50 yuan, invoices issued above 110% of
  declared sales, input tax up 50% while sales are flat, four loss quarters. Taxpayers with at
  least one fired rule are taken by count, size and chance up to ~1.4% of the active per round.
- **random**: 0.2% of the active each round, ``selection_probability`` = 0.002.

(The shares, the rules counted, the size priority and the durations are those of the standard
style; other styles set them, :mod:`.styles`.)
- **campaign**: once a year (June round), 8% of one key industry.
- **tip**: any day; evaders in a month of evasion 0.3%/month, others 0.03%.

A taxpayer with an open case is not selected again. Measure: notice (one rule), assessment
(two, random, campaign), audit (three or more, half the tips). Cases close 2-12 months after
selection (later for audits); a case still running at the end of the world is open (no
outcome). Auditors recover only part of the gap of the covered months not recovered before:
the share depends on the measure (notice 35%, assessment 65%, audit 90%), the scheme (cash
sales and quota excess are hard, surcharges easy) and luck. 2% of cases on honest taxpayers
end adjusted for a small disputed amount. Late fees 0.05% a day; penalties 50-100% on audits
of evasion.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .evasion import HONEST_ERROR, NON_FILING, SCHEMES
from .industries import INDUSTRIES, industry_arrays
from .world import Chunk, rng_for

__all__ = ["audits_table"]

_MEASURES = ("notice", "assessment", "audit")
_MEASURE_FIND = np.array([0.35, 0.65, 0.9])
_SCHEME_FIND = dict(
    cash_sales=0.5, fake_invoices=0.9, unrecorded_purchases=0.7, inflated_inputs=0.6,
    advance_receipts=0.9, surcharges_unpaid=1.0, equity_transfer=0.95, property_undeclared=0.8,
    quota_exceed=0.5, shell_invoicing=0.3, personal_account_sales=0.5,
)  # fmt: skip
_KEY_INDUSTRIES = (
    "0610",
    "1311",
    "3031",
    "3011",
    "5261",
    "8111",
    "1512",
    "1513",
    "5251",
    "7010",
    "7040",
    "4700",
)


def _rolling(x: np.ndarray, k: int, width: int) -> np.ndarray:
    lo = max(0, k - width)
    return x[:, lo:k]


def old_rule_counts(ch: Chunk, k: int, day: np.datetime64 | np.ndarray) -> np.ndarray:
    """Count of fired classic indicators per taxpayer on ``day`` in month ``k`` (int array)."""
    mo, tp = ch.mo, ch.tp
    ia = industry_arrays()
    known = _rolling(mo["filed"] & (mo["filed_on"] <= day), k, 12)
    sales = (_rolling(mo["sales_d"], k, 12) * known).sum(axis=1)
    payable = (_rolling(mo["payable_d"], k, 12) * known).sum(axis=1)
    general = ~tp["small"]
    warning = ia["warning"][tp["industry"]]
    r1 = general & (sales > 0) & (payable / np.maximum(sales, 1.0) < warning)
    zero = (_rolling(mo["payable_d"], k, 12) <= 0) & known
    r2 = zero.sum(axis=1) >= 6
    paid6 = _rolling(mo["vat_d"], k, 6)
    known6 = _rolling(mo["filed"] & (mo["filed_on"] <= day), k, 6)
    r3 = (known6.sum(axis=1) == 6) & ((paid6 < 50) | ~known6).all(axis=1)
    issued = _rolling(mo["inv_issued"], k, 12).sum(axis=1)
    r4 = issued > 1.1 * sales + 1000.0
    inp = _rolling(mo["in_d"] * (mo["filed"] & (mo["filed_on"] <= day)), k, 6)
    sal = _rolling(mo["sales_d"] * (mo["filed"] & (mo["filed_on"] <= day)), k, 6)
    if inp.shape[1] == 6:
        r5 = (inp[:, 3:].sum(axis=1) > 1.5 * inp[:, :3].sum(axis=1) + 1000) & (
            sal[:, 3:].sum(axis=1) < 1.1 * sal[:, :3].sum(axis=1)
        )
    else:
        r5 = np.zeros(ch.n, dtype=bool)
    qe = ch.tl.is_quarter_end()[: max(0, k - 1)]
    profit = (mo["rev_q_d"] - mo["cost_q_d"])[:, : max(0, k - 1)][:, qe]
    filedq = mo["cit_filed"][:, : max(0, k - 1)][:, qe]
    r6 = (
        (profit.shape[1] >= 4) & ((profit[:, -4:] < 0) & filedq[:, -4:]).all(axis=1)
        if profit.shape[1] >= 4
        else np.zeros(ch.n, dtype=bool)
    )
    fired = (r1, r2, r3, r4, r5, r6)
    counted = ch.style.old_rules
    if counted == (0, 1, 2, 3, 4, 5):
        return r1.astype(int) + r2 + r3 + r4 + r5 + r6
    return np.sum([fired[j] for j in counted], axis=0).astype(int)


def audits_table(ch: Chunk) -> pa.Table:
    """The chunk's ``audits`` rows (see module doc)."""
    rng = ch.rng(13)
    grng = rng_for(ch.seed, 98)  # shared by all chunks: round days, campaign industries
    tp, mo, n, months = ch.tp, ch.mo, ch.n, ch.months
    last_day = ch.tl.last_day
    codes = np.array([i.code for i in INDUSTRIES])
    calm = ch.tl.calmonth_of(np.arange(months))
    round_day = grng.integers(5, 16, months)
    campaign_ind = grng.choice(
        np.array([np.flatnonzero(codes == c)[0] for c in _KEY_INDUSTRIES]), months
    )
    gap = mo["gap"]
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(gap, axis=1)], axis=1)
    evading = mo["on1"] | mo["on2"] | mo["on3"]
    st = ch.style
    busy_until = np.full(n, np.datetime64("1900-01-01"), dtype="datetime64[D]")
    recovered = np.zeros(n)
    size_d = np.maximum(mo["sales_d"].mean(axis=1), 1.0)

    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("i", "day", "reason", "prob", "measure")}

    def select(
        who: np.ndarray, day: np.ndarray, reason: str, prob: float, measure: np.ndarray
    ) -> None:
        rows["i"].append(who)
        rows["day"].append(day)
        rows["reason"].append(np.full(who.size, reason))
        rows["prob"].append(np.full(who.size, prob))
        rows["measure"].append(measure)
        dur = np.where(
            measure == 0,
            rng.integers(60, 120, who.size),
            np.where(
                measure == 1, rng.integers(75, 240, who.size), rng.integers(120, 366, who.size)
            ),
        )
        if st.duration_scale != 1.0:
            dur = np.round(dur * st.duration_scale).astype(dur.dtype)
        rows.setdefault("dur", []).append(dur)
        busy_until[who] = day + dur.astype("timedelta64[D]")

    for k in range(months):
        start = ch.tl.month_start(k)[()]
        alive = mo["active"][:, k]
        # tips, any day of the month
        p_tip = np.where(evading[:, k], 0.003, 0.0003)
        tip_day = start + rng.integers(0, 28, n).astype("timedelta64[D]")
        tip = alive & (rng.random(n) < p_tip) & (busy_until < tip_day)
        who = np.flatnonzero(tip)
        select(who, tip_day[who], "tip", np.nan, np.where(rng.random(who.size) < 0.5, 2, 1))
        if calm[k] % 3 != 0 or k < 6:
            continue
        day = start + np.timedelta64(int(round_day[k]) - 1, "D")
        free = alive & (busy_until < day)
        counts = old_rule_counts(ch, k, day)
        n_alive = int(alive.sum())
        prio = counts + st.size_priority * np.log10(size_d) + rng.normal(0.0, 0.7, n)
        pool = np.flatnonzero(free & (counts >= 1))
        take = pool[np.argsort(-prio[pool], kind="stable")][: round(st.rule_share * n_alive)]
        meas = np.clip(counts[take] - 1, 0, 2)
        select(take, np.full(take.size, day), "rule", np.nan, meas)
        free[take] = False
        rnd = np.flatnonzero(free & (rng.random(n) < st.random_share))
        select(rnd, np.full(rnd.size, day), "random", st.random_share, np.full(rnd.size, 1))
        free[rnd] = False
        if calm[k] == 6:
            camp = np.flatnonzero(
                free & (tp["industry"] == campaign_ind[k]) & (rng.random(n) < st.campaign_share)
            )
            select(
                camp,
                np.full(camp.size, day + np.timedelta64(5, "D")),
                "campaign",
                np.nan,
                np.full(camp.size, 1),
            )

    i = np.concatenate(rows["i"]).astype(np.int64)
    if i.size == 0:
        return _empty()
    day = np.concatenate(rows["day"]).astype("datetime64[D]")
    reason = np.concatenate(rows["reason"])
    prob = np.concatenate(rows["prob"])
    measure = np.concatenate(rows["measure"]).astype(int)
    dur = np.concatenate(rows["dur"])
    order = np.lexsort((i, day))
    i, day, reason, prob, measure, dur = (
        i[order],
        day[order],
        reason[order],
        prob[order],
        measure[order],
        dur[order],
    )

    month = ch.tl.month_of_date(day)
    span = np.array([12, 24, 36])[measure]
    cov_to = np.maximum(month - 1, 0)
    cov_from = np.clip(np.maximum(month - span, tp["reg_m"][i]), 0, cov_to)
    closed = day + dur.astype("timedelta64[D]")
    is_open = closed > last_day
    window_gap = cum[i, cov_to + 1] - cum[i, cov_from]
    names = (*SCHEMES, HONEST_ERROR, NON_FILING)
    s1 = tp["scheme1"][i]
    s_case = np.where(s1 >= 0, s1, np.where(tp["scheme3"][i] >= 0, tp["scheme3"][i], len(SCHEMES)))
    find_s = np.array([_SCHEME_FIND.get(nm, 0.6) for nm in names])[s_case]
    share = np.clip(_MEASURE_FIND[measure] * find_s * rng.uniform(0.5, 1.15, i.size), 0.0, 1.0)
    found = np.zeros(i.size)
    for j in range(i.size):  # sequential only to net out earlier recoveries (cases, not rows)
        avail = max(0.0, window_gap[j] - recovered[i[j]])
        found[j] = avail * share[j]
        if not is_open[j]:
            recovered[i[j]] += found[j]
    dispute = (found < 200) & (rng.random(i.size) < 0.02)
    found = np.where(dispute, rng.uniform(500, 5000, i.size), found)
    adjusted = found >= 200
    found = np.where(adjusted, np.round(found, 2), 0.0)
    days_late = 30.0 * (cov_to - cov_from) / 2 + dur
    late_fees = np.round(np.minimum(found * 0.0005 * days_late, found), 2)
    evasive = (s_case < len(SCHEMES)) & ~dispute
    pen_rate = np.where(
        measure == 2,
        rng.uniform(0.5, 1.0, i.size),
        np.where((measure == 1) & (rng.random(i.size) < 0.5), rng.uniform(0.0, 0.5, i.size), 0.0),
    )
    penalties = np.round(found * pen_rate * evasive, 2)

    unit = tp["unit"][i]
    county = np.char.partition(unit.astype(str), "-")[:, 0]
    unit = np.where((measure == 2) & (np.char.find(unit.astype(str), "-") > 0), county, unit)
    periods = pa.array(ch.tl.period_labels(), pa.string())
    case_id = np.char.add(
        np.char.add("CASE-", tp["id"][i]),
        np.char.add("-", np.datetime_as_string(day.astype("datetime64[D]")).astype(str)),
    )
    return pa.table(
        {
            "case_id": pa.array(case_id, pa.string()),
            "taxpayer_id": pa.array(tp["id"][i], pa.string()),
            "selected_on": pa.array(day, pa.date32()),
            "selection_reason": pa.array(reason.astype(str), pa.string()),
            "selection_probability": pa.array(prob, pa.float64(), from_pandas=True),
            "unit_id": pa.array(unit.astype(str), pa.string()),
            "measure": pa.array(np.array(_MEASURES)[measure], pa.string()),
            "closed_on": pa.array(closed, pa.date32(), mask=is_open),
            "outcome": pa.array(
                np.where(adjusted, "adjusted", "no_change"), pa.string(), mask=is_open
            ),
            "tax_recovered": pa.array(found, pa.float64(), mask=is_open),
            "late_fees": pa.array(late_fees, pa.float64(), mask=is_open),
            "penalties": pa.array(penalties, pa.float64(), mask=is_open),
            "covers_from": pc.take(periods, pa.array(cov_from)),
            "covers_to": pc.take(periods, pa.array(cov_to)),
        }
    )


def _empty() -> pa.Table:
    from .writer import SCHEMAS_ARROW

    return SCHEMAS_ARROW["audits"].empty_table()
