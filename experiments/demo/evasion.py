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
true sales / quota; ``shell_invoicing``: 1.
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
)
S = {name: k for k, name in enumerate(SCHEMES)}

#: Scheme labels used in truth besides SCHEMES: a gap from an honest mistake or a missing return.
HONEST_ERROR = "honest_error"
NON_FILING = "non_filing"

_EVASION_RATE = 0.10


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


def _intensity(rng: np.random.Generator, scheme: np.ndarray) -> np.ndarray:
    n = scheme.size
    lo = np.array([0.15, 0.03, 0.05, 0.10, 0.05, 0.50, 0.3, 0.5, 1.6, 1.0])
    hi = np.array([0.85, 0.25, 0.40, 0.50, 0.30, 1.00, 3.0, 1.0, 4.5, 1.0])
    s = np.maximum(scheme, 0)
    return np.where(scheme >= 0, lo[s] + (hi[s] - lo[s]) * rng.beta(2.0, 2.0, n), 0.0)


def draw_evasion(ch: Chunk) -> None:
    """Assign schemes, intensities, windows and fixed quotas (see module doc)."""
    rng = ch.rng(3)
    ia = industry_arrays()
    tp, n = ch.tp, ch.n
    ind, arch = tp["industry"], tp["archetype"]
    eligible = np.isin(arch, [ORDINARY, STARTUP])
    cash = ia["cash"][ind] * np.where(tp["quota"], 1.6, 1.0)
    base = _EVASION_RATE * n / max(1e-9, float((cash * eligible).sum()))
    # large firms evade less often and less intensely (controls, auditors, reputation)
    rel = tp["size"] / (ia["median_sales"][ind] * np.where(tp["small"], 0.08, 1.0))
    damp_p = np.where(tp["quota"], np.clip(rel**0.5, 0.3, 3.0), np.clip(rel**-0.15, 0.4, 1.5))
    evader = eligible & (rng.random(n) < np.minimum(0.7, base * cash * damp_p / damp_p.mean()))
    w = _weights(ch)
    s1 = np.where(evader, _pick(rng, w), -1)
    w2 = w.copy()
    w2[np.arange(n), np.maximum(s1, 0)] = 0.0
    w2[:, S["quota_exceed"]] = 0.0
    second = evader & ~tp["quota"] & (rng.random(n) < 0.2) & (w2.sum(axis=1) > 0)
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
    int1 = _intensity(rng, s1)
    int2 = _intensity(rng, s2) * damp_i
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
    return out
