"""Who evades, how, how much and when.

About 10% of taxpayers evade, more in cash-heavy trades (restaurants, salons, market
tenants, car repair, property rental). Each evader has a main scheme and sometimes a second
one, each with its own intensity, start month and duration; inside its window a scheme is on
in most months but not all. Shell companies always run ``shell_invoicing``.

Results in ``chunk.tp``: ``scheme1``/``scheme2`` (index into :data:`SCHEMES`, -1 none),
``int1``/``int2`` (intensity, meaning per scheme below), ``quota_sales`` (the fixed quota,
yuan a month); in ``chunk.mo``: ``on1``/``on2`` (bool, the scheme is used that month).

Intensity by scheme (fractions): ``cash_sales``: share of uninvoiced sales kept off the
books; ``fake_invoices``: fake purchases bought from shells, share of sales;
``unrecorded_purchases``: share of purchases (and the sales made from them) kept off the
books; ``inflated_inputs``: raw material claimed above what was used, share of true use;
``advance_receipts``: share of sales parked as advance receipts; ``surcharges_unpaid``:
share of surcharges omitted; ``equity_transfer``: gain as a multiple of the transferred
capital; ``property_undeclared``: share of the rent or sale price hidden; ``quota_exceed``:
true sales / quota; ``shell_invoicing``: 1; ``personal_account_sales`` (planted only by a
drift style, see :mod:`.styles`): share of sales collected into the owner's personal accounts
with no invoice and kept off the books.

A style (``chunk.style``) sets the evasion rate, multiplies scheme weights and intensities and
the share of second schemes; a drift style adds a third slot, ``scheme3``/``int3``/``on3``,
used only in its last months (-1 / 0 / False elsewhere).
"""

from __future__ import annotations

import numpy as np

from .industries import INDUSTRIES, industry_arrays
from .world import ORDINARY, SHELL, STARTUP, Chunk

__all__ = ["SCHEMES", "draw_evasion", "scheme_intensity"]

SCHEMES: tuple[str, ...] = (
    "cash_sales",
    "fake_invoices",
    "unrecorded_purchases",
    "inflated_inputs",
    "advance_receipts",
    "surcharges_unpaid",
    "equity_transfer",
    "property_undeclared",
    "quota_exceed",
    "shell_invoicing",
    "personal_account_sales",
)
S = {name: k for k, name in enumerate(SCHEMES)}

#: Scheme labels used in truth besides SCHEMES: a gap from an honest mistake or a missing return.
HONEST_ERROR = "honest_error"
NON_FILING = "non_filing"

#: Schemes the standard world never plants (a drift style brings them in).
DRIFT_ONLY: tuple[str, ...] = ("personal_account_sales",)


def _weights(ch: Chunk) -> np.ndarray:
    """Eligibility weights (n x schemes) of each taxpayer for each scheme."""
    ia = industry_arrays()
    tp = ch.tp
    ind, small, quota = tp["industry"], tp["small"], tp["quota"]
    general = ~small
    model = ia["model"][ind]
    parent = np.array([i.parent for i in INDUSTRIES])[ind]
    code = np.array([i.code for i in INDUSTRIES])[ind]
    w = np.zeros((ch.n, len(SCHEMES)))
    w[:, S["cash_sales"]] = (2.0 * (1.0 - ia["b2b"][ind]) + 0.2) * ~quota
    w[:, S["fake_invoices"]] = general * (1.0 + 0.5 * (code == "5190"))
    w[:, S["unrecorded_purchases"]] = 0.6 * ~quota
    w[:, S["inflated_inputs"]] = 2.5 * general * (model != "")
    w[:, S["advance_receipts"]] = 0.8 * general * (np.isin(parent, ["C", "K"]) | (code == "5261"))
    w[:, S["surcharges_unpaid"]] = 0.3 * general
    w[:, S["equity_transfer"]] = 0.25 * ~quota
    w[:, S["property_undeclared"]] = np.where(parent == "K", 1.5, 0.1) * ~quota
    w[:, S["quota_exceed"]] = 3.0 * quota
    # sales paid into personal accounts: firms selling to businesses and people who accept no
    # invoice; physical producers and traders most (the drift styles' new scheme)
    w[:, S["personal_account_sales"]] = general * (
        0.5 + 2.0 * (model != "") + 0.5 * (parent == "F")
    )
    for name, factor in ch.style.scheme_weight.items():
        w[:, S[name]] *= factor
    return w


def _pick(rng: np.random.Generator, w: np.ndarray) -> np.ndarray:
    """One column index per row, drawn with probability proportional to the row's weights."""
    cum = np.cumsum(w, axis=1)
    total = cum[:, -1]
    u = rng.random(w.shape[0]) * total
    return np.minimum((cum < u[:, None]).sum(axis=1), w.shape[1] - 1)


def _window(rng: np.random.Generator, ch: Chunk, who: np.ndarray, persist: float) -> np.ndarray:
    """Months a scheme is used (n x months bool) for the taxpayers in mask ``who``."""
    n, months = ch.n, ch.months
    start = rng.integers(-12, max(1, months - 3), n)
    dur = 3 + rng.geometric(1 / 18, n)
    m = np.arange(months)[None, :]
    on = (m >= start[:, None]) & (m < (start + dur)[:, None]) & (rng.random((n, months)) < persist)
    return on & who[:, None] & ch.mo["active"]


_LO = np.array([0.15, 0.03, 0.05, 0.10, 0.05, 0.50, 0.3, 0.5, 1.6, 1.0, 0.2])
_HI = np.array([0.85, 0.25, 0.40, 0.50, 0.30, 1.00, 3.0, 1.0, 4.5, 1.0, 0.6])


def _intensity(rng: np.random.Generator, scheme: np.ndarray, ch: Chunk) -> np.ndarray:
    n = scheme.size
    s = np.maximum(scheme, 0)
    out = np.where(scheme >= 0, _LO[s] + (_HI[s] - _LO[s]) * rng.beta(2.0, 2.0, n), 0.0)
    for name, factor in ch.style.intensity_scale.items():
        shares = name not in ("equity_transfer", "quota_exceed", "shell_invoicing")
        scaled = out * factor
        out = np.where(scheme == S[name], np.minimum(scaled, 0.97) if shares else scaled, out)
    return out


def draw_evasion(ch: Chunk) -> None:
    """Assign schemes, intensities, windows and fixed quotas (see module doc)."""
    rng = ch.rng(3)
    ia = industry_arrays()
    tp, n = ch.tp, ch.n
    ind, arch = tp["industry"], tp["archetype"]
    eligible = np.isin(arch, [ORDINARY, STARTUP])
    cash = ia["cash"][ind] * np.where(tp["quota"], 1.6, 1.0)
    base = ch.style.evasion_rate * n / max(1e-9, float((cash * eligible).sum()))
    # large firms evade less often and less intensely (controls, auditors, reputation)
    rel = tp["size"] / (ia["median_sales"][ind] * np.where(tp["small"], 0.08, 1.0))
    damp_p = np.where(tp["quota"], np.clip(rel**0.5, 0.3, 3.0), np.clip(rel**-0.15, 0.4, 1.5))
    evader = eligible & (rng.random(n) < np.minimum(0.7, base * cash * damp_p / damp_p.mean()))
    w = _weights(ch)
    w_main = w.copy()
    for name in DRIFT_ONLY:  # new schemes enter only through a drift or an explicit weight
        if name not in ch.style.scheme_weight:
            w_main[:, S[name]] = 0.0
    s1 = np.where(evader, _pick(rng, w_main), -1)
    w2 = w_main.copy()
    w2[np.arange(n), np.maximum(s1, 0)] = 0.0
    w2[:, S["quota_exceed"]] = 0.0
    second = evader & ~tp["quota"] & (rng.random(n) < ch.style.second_scheme) & (w2.sum(axis=1) > 0)
    s2 = np.where(second, _pick(rng, np.where(w2.sum(axis=1, keepdims=True) > 0, w2, 1.0)), -1)
    shell = arch == SHELL
    s1[shell] = S["shell_invoicing"]
    s2[shell] = -1

    # always-on schemes: quota evaders live far above their quota; shells live to invoice
    on1 = _window(rng, ch, s1 >= 0, 0.85)
    always = (s1 == S["quota_exceed"]) | shell
    on1[always] = ch.mo["active"][always]
    on2 = _window(rng, ch, s2 >= 0, 0.85)
    damp_i = np.clip(rel**-0.25, 0.2, 1.0)
    int1 = _intensity(rng, s1, ch)
    int2 = _intensity(rng, s2, ch) * damp_i
    scale1 = ~np.isin(s1, [S["quota_exceed"], S["shell_invoicing"], S["equity_transfer"]])
    int1 = np.where(scale1, int1 * damp_i, int1)

    # fixed quotas: the office's estimate of typical monthly sales, reassessed little
    quota_sales = np.where(tp["quota"], tp["size"] * rng.uniform(0.8, 1.05, n), 0.0)
    qx = s1 == S["quota_exceed"]
    quota_sales[qx] = tp["size"][qx] / int1[qx]
    quota_sales = np.round(quota_sales, -2)

    tp.update(
        scheme1=s1, scheme2=s2, int1=int1, int2=int2, quota_sales=quota_sales, evader=evader | shell
    )
    ch.mo.update(on1=on1, on2=on2)
    _drift(ch, w, eligible, damp_i)


def _drift(ch: Chunk, w: np.ndarray, eligible: np.ndarray, damp_i: np.ndarray) -> None:
    """The drift of a style: schemes stop and others start in the last months (see module doc)."""
    tp, mo, n, months = ch.tp, ch.mo, ch.n, ch.months
    st = ch.style
    s3 = np.full(n, -1, dtype=np.int64)
    on3 = np.zeros((n, months), dtype=bool)
    int3 = np.zeros(n)
    if st.drift_months > 0:
        rng = ch.rng(20)
        d0 = max(0, months - st.drift_months)
        s1 = tp["scheme1"]
        # quota evaders and shells live by their scheme; an equity transfer is a one-off
        # event drawn from the scheme's months, so stopping it would rewrite the history
        fixed = [S["quota_exceed"], S["shell_invoicing"], S["equity_transfer"]]
        movable = (s1 >= 0) & ~np.isin(s1, fixed) & ~np.isin(tp["scheme2"], fixed)
        stop = movable & (rng.random(n) < st.drift_stop)
        mo["on1"][stop, d0:] = False
        mo["on2"][stop, d0:] = False
        fresh = eligible & (s1 < 0) & (rng.random(n) < st.drift_rate)
        takes = (stop & (rng.random(n) < st.drift_switch)) | fresh
        wd = np.zeros_like(w)
        for name, weight in st.drift_weight.items():
            wd[:, S[name]] = w[:, S[name]] * weight
        wd[stop, np.maximum(s1[stop], 0)] = 0.0  # a switcher takes up another scheme
        takes &= wd.sum(axis=1) > 0
        s3 = np.where(takes, _pick(rng, np.where(wd.sum(axis=1, keepdims=True) > 0, wd, 1.0)), -1)
        start = d0 + rng.integers(0, 4, n)
        m = np.arange(months)[None, :]
        on3 = (m >= start[:, None]) & (rng.random((n, months)) < 0.85) & mo["active"]
        on3 &= (s3 >= 0)[:, None]
        int3 = _intensity(rng, s3, ch) * damp_i
    tp.update(scheme3=s3, int3=int3, evader=tp["evader"] | (s3 >= 0))
    mo["on3"] = on3


def scheme_intensity(ch: Chunk, name: str) -> np.ndarray:
    """Intensity of scheme ``name`` per taxpayer-month (n x months, 0 when not used)."""
    k = S[name]
    tp, mo = ch.tp, ch.mo
    out = np.zeros((ch.n, ch.months))
    a = tp["scheme1"] == k
    if a.any():
        out[a] = mo["on1"][a] * tp["int1"][a, None]
    b = tp["scheme2"] == k
    if b.any():
        out[b] += mo["on2"][b] * tp["int2"][b, None]
    c = tp["scheme3"] == k
    if c.any():
        out[c] += mo["on3"][c] * tp["int3"][c, None]
    return out
