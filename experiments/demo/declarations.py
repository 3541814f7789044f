"""Returns as filed, and the truth they are measured against.

For every taxpayer-month this computes the true taxes due and the taxes declared, from the
true activity (:mod:`.activity`), the schemes (:mod:`.evasion`) and taxed events
(:mod:`.events`). Taxes modelled (all yuan):

- **VAT**: general taxpayers ``output - input + transferred_out`` with excess input carried
  forward; small-scale and fixed-quota 3% of sales (the quota for fixed-quota businesses),
  exempt at or under 30,000 yuan a month. Due and declared are the VAT *paid* after credits.
- **Surcharges**: urban construction 7% and education 3% of the VAT paid.
- **CIT**: quarterly, 25% (small-scale 5%) of positive quarterly profit, due in the
  quarter's last month. Fixed-quota businesses file none.
- **Property tax** (1.2% a year of 70% of the property value) and **land-use tax** (area x
  rate), each paid in two halves (April/October, May/November); **stamp duty** 0.03% of
  quarterly sales + purchases, plus 0.05% of an equity-transfer price; the **income tax
  withheld** on a shareholder's equity-transfer gain (20%).

Honest taxpayers file correctly except for honest errors (1.5% of returns misstate sales by about
2%) and missing or late returns. Writes ``chunk.mo`` arrays ``*_d`` (declared) and
``*_t`` (true) and the truth arrays ``due``, ``declared``, ``scheme_label``.
"""

from __future__ import annotations

import numpy as np

from .evasion import HONEST_ERROR, NON_FILING, SCHEMES, S, scheme_intensity
from .industries import industry_arrays
from .invoices import allocate_fakes
from .world import EXEMPT_LINE, SHELL, Chunk

__all__ = ["file_returns"]

SURCHARGE = 0.10  # 7% urban construction + 3% education


def _vat_paid(
    payable: np.ndarray, filed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """VAT paid each month and credit carried forward, from the month's payable (n x months)."""
    n, months = payable.shape
    paid = np.zeros_like(payable)
    carry = np.zeros_like(payable)
    cf = np.zeros(n)
    for k in range(months):
        p = payable[:, k] if filed is None else np.where(filed[:, k], payable[:, k], 0.0)
        net = p - cf
        paid[:, k] = np.maximum(net, 0.0)
        cf = np.maximum(-net, 0.0)
        carry[:, k] = cf
    return paid, carry


def _quarter_sum(x: np.ndarray, qid: np.ndarray) -> np.ndarray:
    """Sum over each calendar quarter, placed in every month of it (n x months)."""
    out = np.zeros_like(x)
    for q in np.unique(qid):
        cols = qid == q
        out[:, cols] = x[:, cols].sum(axis=1, keepdims=True)
    return out


def file_returns(ch: Chunk) -> None:
    """Compute true and declared taxes for a chunk (see module doc)."""
    rng = ch.rng(5)
    tp, mo, n, months = ch.tp, ch.mo, ch.n, ch.months
    ia = industry_arrays()
    ind = tp["industry"]
    active = mo["active"]
    small, quota, general = tp["small"], tp["quota"], ~tp["small"]
    shell = tp["archetype"] == SHELL
    rate = ia["vat_rate"][ind][:, None]
    in_rate = ia["in_rate"][ind][:, None]
    parent_k = np.isin(ind, [19, 20])  # 7010, 7040

    sales_t = mo["sales"] + mo["rent"]
    exports = mo["exports"]
    purch_t = mo["purchases"]
    capex = mo["capex"]

    # -- schemes acting on declared flows
    cash = scheme_intensity(ch, "cash_sales")
    inv_share = np.clip(ia["b2b"][ind] * rng.normal(1.0, 0.1, n), 0.0, 1.0)
    hide_invoiced = np.where(rng.random(n) < 0.15, rng.beta(1.0, 4.0, n), 0.0)
    hidden = (
        cash * mo["sales"] * (1.0 - inv_share[:, None])
        + (cash > 0) * mo["sales"] * inv_share[:, None] * hide_invoiced[:, None]
    )
    unrec = scheme_intensity(ch, "unrecorded_purchases")
    hidden_purch = unrec * purch_t
    hidden += hidden_purch / np.maximum(1.0 - tp["va"][:, None], 0.05)
    adv = scheme_intensity(ch, "advance_receipts")
    hidden += adv * mo["sales"]
    personal = scheme_intensity(ch, "personal_account_sales")  # zero unless a drift style
    if personal.any():
        hidden += personal * mo["sales"]
    mo["personal_share"] = personal
    pu = scheme_intensity(ch, "property_undeclared") > 0
    hidden += np.where(parent_k[:, None], pu * mo["sales"] * 0.5, pu * mo["rent"])
    hidden = np.minimum(hidden, 0.97 * sales_t)
    fake = scheme_intensity(ch, "fake_invoices") * mo["sales"]
    infl = scheme_intensity(ch, "inflated_inputs")
    raw_cost = mo["raw_t"] * tp["raw_price"][:, None]
    extra_input = np.where(raw_cost > 0, infl * raw_cost, infl * purch_t * 0.5)
    planted = ch.extra.get("planted_mask", np.zeros(n, dtype=bool))
    for i, value in ch.extra.get("extra_input_override", {}).items():
        extra_input[i] = value
    mo["fake_purch"] = fake
    mo["extra_input"] = extra_input
    mo["hidden_purch"] = hidden_purch
    mo["inv_share"] = np.broadcast_to(inv_share[:, None], (n, months))
    allocate_fakes(ch)  # shells' issued invoices -> mo["shell_issued"]

    # shells: true sales are the invoices they issue; they declare a sliver of them
    issued = mo["shell_issued"]
    sales_t = np.where(shell[:, None], issued + mo["sales"], sales_t)
    decl_share = rng.uniform(0.5, 1.0, n)
    sales_d = np.where(shell[:, None], issued * decl_share[:, None], sales_t - hidden)
    purch_d = np.where(
        shell[:, None],
        issued * decl_share[:, None] * 0.97,
        purch_t - hidden_purch + fake + extra_input,
    )

    # honest errors: 2% of returns misstate sales by a few percent
    err = (rng.random((n, months)) < 0.015) & active & ~planted[:, None]
    err_factor = np.where(err, 1.0 + rng.normal(0.0, 0.02, (n, months)), 1.0)
    err_amount = np.clip(sales_d * (err_factor - 1.0), -50_000.0, 50_000.0)
    sales_d = np.maximum(sales_d + err_amount, 0.0)
    for i, value in ch.extra.get("sales_d_override", {}).items():
        sales_d[i] = value

    # fixed quota: the quota is the declared base; the excess over 130% of it is legally due
    q = tp["quota_sales"][:, None]
    base_q_t = np.where(sales_t > 1.3 * q, sales_t, q)
    qx = (tp["scheme1"] == S["quota_exceed"])[:, None]
    base_q_d = np.where(qx, q, base_q_t)
    sales_d = np.where(quota[:, None], base_q_d, sales_d)

    # filing: missing returns (shells vanish; a few others), late ones
    filed = active.copy()
    vanish = shell & (tp["dereg_m"] > months)
    last = tp["last_m"]
    stop = last - rng.integers(0, 3, n)
    m = np.arange(months)[None, :]
    filed &= ~(shell[:, None] & (m > stop[:, None]))
    filed &= ~(vanish[:, None] & (m >= stop[:, None]))
    rel = tp["size"] / np.median(tp["size"])
    miss = (rng.random((n, months)) < np.where(rel < 1.0, 0.003, 0.0003)[:, None]) & active
    filed &= ~(miss & ~planted[:, None])
    mo["filed"] = filed

    # -- VAT
    tout = np.where(
        (rng.random((n, months)) < 0.1) & ~planted[:, None],
        purch_t * in_rate * rng.uniform(0.0, 0.02, (n, months)),
        0.0,
    )
    out_t = np.where(general[:, None], (sales_t - exports) * rate, 0.0)
    in_t = np.where(general[:, None], purch_t * in_rate + capex * 0.13, 0.0)
    exports_d = np.minimum(exports, sales_d)
    out_d = np.where(general[:, None], (sales_d - exports_d) * rate, 0.0)
    in_d = np.where(general[:, None], purch_d * in_rate + capex * 0.13, 0.0)
    base_small_t = np.where(quota[:, None], base_q_t, sales_t)
    small_t = np.where(base_small_t > EXEMPT_LINE, 0.03 * base_small_t, 0.0)
    small_d = np.where(sales_d > EXEMPT_LINE, 0.03 * sales_d, 0.0)
    out_t = np.where(small[:, None], small_t, out_t)
    out_d = np.where(small[:, None], small_d, out_d)
    payable_t = (out_t - in_t + np.where(general[:, None], tout, 0.0)) * active
    payable_d = (out_d - in_d + np.where(general[:, None], tout, 0.0)) * filed
    vat_t, _ = _vat_paid(payable_t)
    vat_d, carry_d = _vat_paid(payable_d, filed)

    # -- surcharges
    sur = scheme_intensity(ch, "surcharges_unpaid")
    forget = (rng.random((n, months)) < 0.01) & ~(sur > 0)
    sur_t = SURCHARGE * vat_t
    sur_d = SURCHARGE * vat_d * (1.0 - sur) * ~forget

    # -- CIT, quarterly
    qid = ch.tl.year_of(np.arange(months)) * 4 + (ch.tl.calmonth_of(np.arange(months)) - 1) // 3
    qend = ch.tl.is_quarter_end()[None, :]
    cost_t = purch_t + mo["wages"] + mo["other_cost"]
    cost_d = np.where(shell[:, None], sales_d * 0.98, purch_d + mo["wages"] + mo["other_cost"])
    rev_q_t = _quarter_sum(sales_t, qid)
    rev_q_d = _quarter_sum(sales_d, qid)
    cost_q_t = _quarter_sum(cost_t, qid)
    cost_q_d = _quarter_sum(cost_d, qid)
    cit_rate = np.where(small, 0.05, 0.25)[:, None]
    has_cit = ~quota[:, None] & active & qend
    cit_filed = (
        has_cit
        & (
            (rng.random((n, months)) > np.where(rel < 1.0, 0.005, 0.0005)[:, None])
            | planted[:, None]
        )
        & filed
    )
    cit_t = np.where(has_cit, cit_rate * np.maximum(rev_q_t - cost_q_t, 0.0), 0.0)
    cit_d = np.where(cit_filed, cit_rate * np.maximum(rev_q_d - cost_q_d, 0.0), 0.0)

    # -- local taxes
    calm = ch.tl.calmonth_of(np.arange(months))[None, :]
    prop_month = np.isin(calm, [4, 10])
    land_month = np.isin(calm, [5, 11])
    prop = np.where(prop_month, tp["property_value"][:, None] * 0.7 * 0.012 / 2, 0.0) * active
    land = np.where(land_month, tp["land_m2"][:, None] * tp["land_rate"][:, None] / 2, 0.0) * active
    stamp_q = (
        np.where(
            qend & ~quota[:, None],
            0.0003 * (_quarter_sum(sales_t, qid) + _quarter_sum(purch_t, qid)),
            0.0,
        )
        * active
    )
    stamp_q_d = (
        np.where(
            qend & ~quota[:, None],
            0.0003 * (_quarter_sum(sales_d, qid) + _quarter_sum(purch_d, qid)),
            0.0,
        )
        * filed
    )
    eq_stamp = 0.0005 * mo["equity_price"]
    eq_tax = 0.20 * mo["equity_gain"]
    ev = mo["equity_evaded"]
    stamp_t = stamp_q + eq_stamp
    stamp_d = stamp_q_d + np.where(ev, 0.0, eq_stamp)
    withheld_d = np.where(ev, 0.0, eq_tax)
    prop_d = prop * filed
    land_d = land * filed

    due = vat_t + sur_t + cit_t + prop + land + stamp_t + eq_tax
    declared = vat_d + sur_d + cit_d + prop_d + land_d + stamp_d + withheld_d
    gap = np.maximum(due - declared, 0.0)
    gap = np.where(gap < 0.005, 0.0, gap)

    # scheme label of each month with a gap
    label = np.full((n, months), -1, dtype=np.int16)
    names = (*SCHEMES, HONEST_ERROR, NON_FILING)
    ev_ever = np.maximum.accumulate(mo["on1"] | mo["on2"], axis=1)
    main = np.where(tp["scheme1"] >= 0, tp["scheme1"], len(SCHEMES))
    label = np.where(gap > 0, len(SCHEMES), label)  # honest error by default
    label = np.where((gap > 0) & ev_ever & (tp["scheme1"] >= 0)[:, None], main[:, None], label)
    label = np.where(
        (gap > 0) & (~filed | (has_cit & ~cit_filed)) & active, len(SCHEMES) + 1, label
    )
    label = np.where((gap > 0) & mo["on2"], tp["scheme2"][:, None], label)
    label = np.where((gap > 0) & mo["on3"], tp["scheme3"][:, None], label)
    label = np.where((gap > 0) & mo["on1"], tp["scheme1"][:, None], label)
    label = np.where((gap > 0) & ev, S["equity_transfer"], label)

    mo.update(
        sales_t=sales_t, sales_d=sales_d, purch_d=purch_d, exports_d=exports_d,
        out_d=out_d, in_d=in_d, tout=tout * general[:, None], payable_d=payable_d, carry_d=carry_d,
        vat_t=vat_t, vat_d=vat_d, sur_d=sur_d, sur_t=sur_t, cit_d=cit_d, cit_filed=cit_filed,
        rev_q_d=rev_q_d, cost_q_d=cost_q_d, prop_d=prop_d, land_d=land_d, stamp_d=stamp_d,
        due=due * active, declared=declared * active, gap=gap * active, label=label,
    )  # fmt: skip
    ch.extra["scheme_names"] = names
