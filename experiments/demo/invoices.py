"""The e-invoice network, consistent with true activity and the schemes.

Rows are aggregated per (seller, buyer, month): amount (yuan, excluding VAT; negative for a
net red-letter credit), tax, count. Parties are registry taxpayers or outsiders, whose ids
(``EXC`` customers, ``EXV`` suppliers, ``EXF`` farm co-ops, ``EXS`` shells elsewhere, ``EXB``
buyers of fake invoices elsewhere) are never in the registry.

- Each taxpayer invoices its invoiced share of true domestic sales (timing noise included)
  to its registered buyers and to one or two outside customers; exports carry no invoice.
- Each taxpayer receives invoices for all its true purchases: part from one registered
  supplier of its upstream industry, the rest from an outside supplier.
- ``unrecorded_purchases``: the invoices exist, the returns leave them out (stranded).
- ``fake_invoices``: invoices from shells (in the registry or outside) for purchases never
  made. Shells also sell fake invoices to outside buyers and receive fake ones themselves.
- ``inflated_inputs``: the over-claimed raw material is backed by purchase invoices from
  farm co-ops, so only the physical ratio betrays it.
- ``cash_sales``: uninvoiced sales vanish without trace in invoices, except where the evader
  also hides invoiced sales.
- ``personal_account_sales`` (drift styles): the hidden share of sales is never invoiced.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .industries import INDUSTRIES, UPSTREAM, industry_arrays
from .world import SHELL, Chunk
from .world import codes as code_strings

__all__ = ["allocate_fakes", "build_invoices", "party_ids"]

_BASE = 10**10
REG, CUST, SUPP, FARM, SHELL_OUT, SHELL_BUYER = 0, 1, 2, 3, 4, 5
_PREFIX = ("TP", "EXC", "EXV", "EXF", "EXS", "EXB")


def party_ids(codes: np.ndarray) -> pa.Array:
    """Party codes (kind * 1e10 + number) to id strings, via a dictionary (fast at scale)."""
    uniq, inv = np.unique(codes, return_inverse=True)
    kind = uniq // _BASE
    num = uniq % _BASE
    num = np.where(kind == REG, num + 1, num)
    prefix = np.array(_PREFIX)[kind]
    strings = code_strings(prefix, num, 8)
    return pc.take(pa.array(strings, pa.string()), pa.array(inv.astype(np.int32)))


def allocate_fakes(ch: Chunk) -> None:
    """Route each evader's fake purchases to a shell; set ``mo['shell_issued']`` (yuan)."""
    rng = ch.rng(6)
    tp, mo, n, months = ch.tp, ch.mo, ch.n, ch.months
    fake = mo["fake_purch"]
    shells = np.flatnonzero(tp["archetype"] == SHELL)
    u = rng.random(n)
    outside = rng.random(n) < 0.3
    bi, bm = np.nonzero(fake > 0)
    seller = np.full(bi.size, -1, dtype=np.int64)
    for k in range(months):
        live = shells[mo["active"][shells, k]]
        sel = (bm == k) & ~outside[bi]
        if live.size and sel.any():
            seller[sel] = live[(u[bi[sel]] * live.size).astype(int)]
    issued = np.zeros((n, months))
    inside = seller >= 0
    np.add.at(issued, (seller[inside], bm[inside]), fake[bi[inside], bm[inside]])
    # shells also sell fake invoices to buyers elsewhere
    sh_active = np.zeros((n, months), dtype=bool)
    sh_active[shells] = mo["active"][shells]
    ext = np.where(sh_active, tp["size"][:, None] * rng.uniform(0.3, 2.0, (n, months)), 0.0)
    mo["shell_issued"] = issued + ext
    mo["shell_ext"] = ext
    out_shell = ch.lo // 50 + rng.integers(0, 40, bi.size)
    seller_code = np.where(inside, ch.lo + seller, SHELL_OUT * _BASE + out_shell)
    ch.extra["fake_edges"] = (seller_code, ch.lo + bi, bm, fake[bi, bm])


def _pick_suppliers(ch: Chunk, rng: np.random.Generator) -> np.ndarray:
    """One registered supplier (chunk-local index, -1 none) per taxpayer, from its upstream industry."""
    tp, n = ch.tp, ch.n
    codes = np.array([i.code for i in INDUSTRIES])
    pos = {c: k for k, c in enumerate(codes)}
    ind = tp["industry"]
    eligible = (tp["archetype"] != SHELL) & ~tp["quota"]
    supplier = np.full(n, -1, dtype=np.int64)
    for k, c in enumerate(codes):
        buyers = np.flatnonzero((ind == k) & ~tp["quota"] & (tp["archetype"] != SHELL))
        up = np.flatnonzero((ind == pos[UPSTREAM[c]]) & eligible)
        if buyers.size == 0 or up.size == 0:
            continue
        w = np.cumsum(np.sqrt(tp["size"][up]))
        pick = np.searchsorted(w, rng.random(buyers.size) * w[-1])
        supplier[buyers] = up[np.minimum(pick, up.size - 1)]
    supplier[supplier == np.arange(n)] = -1
    return supplier


def build_invoices(ch: Chunk) -> pa.Table:
    """The chunk's ``invoices`` rows (see module doc)."""
    rng = ch.rng(7)
    ia = industry_arrays()
    tp, mo, n, months = ch.tp, ch.mo, ch.n, ch.months
    ind, small, quota = tp["industry"], tp["small"], tp["quota"]
    shell = tp["archetype"] == SHELL
    sell_rate = np.where(small, 0.03, ia["vat_rate"][ind])
    active = mo["active"]
    g = ch.lo + np.arange(n)

    # -- purchases: registered supplier share, capped by what the supplier invoices
    sup = _pick_suppliers(ch, rng)
    phi = np.where(sup >= 0, rng.uniform(0.1, 0.5, n), 0.0)
    purch = (mo["purchases"] + mo["capex"]) * ~shell[:, None]
    bi, bm = np.nonzero((purch > 0) & (phi[:, None] > 0))
    s = sup[bi]
    reg_amt = purch[bi, bm] * phi[bi] * active[s, bm]
    sales_dom = np.where(shell[:, None], 0.0, mo["sales"] - mo["exports"] + mo["rent"])
    inv_share = np.where(quota, 0.1, mo["inv_share"][:, 0])
    invoiced = sales_dom * inv_share[:, None] * np.clip(rng.normal(1.0, 0.1, (n, months)), 0.5, 1.5)
    if mo["personal_share"].any():  # sales paid into personal accounts carry no invoice
        invoiced = invoiced * (1.0 - mo["personal_share"])
    recv = np.zeros((n, months))
    np.add.at(recv, (s, bm), reg_amt)
    cap = np.where(recv > 0, np.minimum(1.0, 0.8 * invoiced / np.maximum(recv, 1e-9)), 1.0)
    reg_amt = reg_amt * cap[s, bm]
    recv_scaled = np.zeros((n, months))
    np.add.at(recv_scaled, (s, bm), reg_amt)
    from_reg = np.zeros((n, months))
    np.add.at(from_reg, (bi, bm), reg_amt)

    parts_s: list[np.ndarray] = []
    parts_b: list[np.ndarray] = []
    parts_m: list[np.ndarray] = []
    parts_a: list[np.ndarray] = []
    parts_r: list[np.ndarray] = []
    parts_t: list[np.ndarray] = []  # ticket size

    def add(
        seller: np.ndarray,
        buyer: np.ndarray,
        month: np.ndarray,
        amount: np.ndarray,
        rate: np.ndarray,
        ticket: np.ndarray,
    ) -> None:
        keep = amount > 0.5
        parts_s.append(seller[keep])
        parts_b.append(buyer[keep])
        parts_m.append(month[keep])
        parts_a.append(amount[keep])
        parts_r.append(rate[keep])
        parts_t.append(ticket[keep])

    ticket = ia["ticket"][ind]
    add(ch.lo + s, g[bi], bm, reg_amt, sell_rate[s], ticket[s])
    # outside supplier(s): the rest of true purchases (raw material from grain traders)
    rest = np.maximum(purch - from_reg, 0.0)
    oi, om = np.nonzero(rest > 0)
    supp_id = rng.integers(0, max(1000, 10 * n), n) + ch.lo * 3
    add(SUPP * _BASE + supp_id[oi], g[oi], om, rest[oi, om], ia["in_rate"][ind[oi]], ticket[oi] * 2)
    # inflated inputs: invoices from farm co-ops for raw material never used
    ei, em = np.nonzero(mo["extra_input"] > 0)
    add(
        FARM * _BASE + (ch.lo + ei) % 5000,
        g[ei],
        em,
        mo["extra_input"][ei, em],
        ia["in_rate"][ind[ei]],
        ticket[ei],
    )
    # fake invoices from shells
    fs, fb, fm, fa = ch.extra["fake_edges"]
    add(fs, fb, fm, fa, np.full(fs.size, 0.13), np.full(fs.size, 50_000.0))
    # shells: fake sales to buyers elsewhere, fake purchases from shells elsewhere
    si, sm = np.nonzero(mo["shell_ext"] > 0)
    add(
        g[si],
        SHELL_BUYER * _BASE + rng.integers(0, 10**6, si.size),
        sm,
        mo["shell_ext"][si, sm],
        np.full(si.size, 0.13),
        np.full(si.size, 80_000.0),
    )
    pi, pm = np.nonzero(shell[:, None] & (mo["purch_d"] > 0))
    add(
        SHELL_OUT * _BASE + 10**6 + rng.integers(0, 500, pi.size),
        g[pi],
        pm,
        mo["purch_d"][pi, pm],
        np.full(pi.size, 0.13),
        np.full(pi.size, 80_000.0),
    )
    # sales to outside customers: what is invoiced beyond registered buyers
    to_out = np.maximum(invoiced - recv_scaled, 0.0)
    n_cust = np.where(small, 1, rng.integers(1, 3, n))
    sharing = rng.integers(0, max(3_000, 3 * n), n)
    ci, cm = np.nonzero(to_out > 0)
    if quota.any():  # fixed-quota shops issue invoices in a minority of months
        keep = ~quota[ci] | (rng.random(ci.size) < 0.3)
        ci, cm = ci[keep], cm[keep]
    two = n_cust[ci] == 2
    w1 = np.where(two, rng.uniform(0.3, 0.7, ci.size), 1.0)
    base_id = CUST * _BASE + ch.lo + sharing
    add(g[ci], base_id[ci], cm, to_out[ci, cm] * w1, sell_rate[ci], ticket[ci])
    add(
        g[ci[two]],
        base_id[ci[two]] + 7 * n + 11,
        cm[two],
        to_out[ci[two], cm[two]] * (1 - w1[two]),
        sell_rate[ci[two]],
        ticket[ci[two]],
    )

    seller = np.concatenate(parts_s)
    buyer = np.concatenate(parts_b)
    month = np.concatenate(parts_m).astype(np.int64)
    amount = np.concatenate(parts_a)
    rate = np.concatenate(parts_r)
    tick = np.concatenate(parts_t)
    # red-letter credits: a few rows net negative after returns
    red = rng.random(amount.size) < 0.002
    amount = np.where(red, -amount * rng.uniform(0.05, 1.0, amount.size), amount)
    count = np.maximum(
        1, np.round(np.abs(amount) / tick * rng.lognormal(0.0, 0.3, amount.size))
    ).astype(np.int64)
    tax = amount * rate
    # aggregate any duplicate key
    order = np.lexsort((month, buyer, seller))
    seller, buyer, month = seller[order], buyer[order], month[order]
    amount, tax, count = amount[order], tax[order], count[order]
    new = np.ones(seller.size, dtype=bool)
    new[1:] = (seller[1:] != seller[:-1]) | (buyer[1:] != buyer[:-1]) | (month[1:] != month[:-1])
    starts = np.flatnonzero(new)
    if starts.size < seller.size:
        amount = np.add.reduceat(amount, starts)
        tax = np.add.reduceat(tax, starts)
        count = np.add.reduceat(count, starts)
        seller, buyer, month = seller[starts], buyer[starts], month[starts]
    issued = np.zeros((n, months))
    mine = (seller >= ch.lo) & (seller < ch.lo + n)
    np.add.at(issued, (seller[mine] - ch.lo, month[mine]), amount[mine])
    received = np.zeros((n, months))
    mine_b = (buyer >= ch.lo) & (buyer < ch.lo + n)
    np.add.at(received, (buyer[mine_b] - ch.lo, month[mine_b]), amount[mine_b])
    mo["inv_issued"] = issued
    mo["inv_received"] = received
    periods = pa.array(ch.tl.period_labels())
    return pa.table(
        {
            "seller_id": party_ids(seller),
            "buyer_id": party_ids(buyer),
            "period": pc.take(periods, pa.array(month)),
            "amount": pa.array(np.round(amount, 2)),
            "tax": pa.array(np.round(tax, 2)),
            "count": pa.array(count),
        }
    )
