"""True monthly activity of every taxpayer: what really happened, before anyone files.

Arrays written to ``chunk.mo`` (shape n x months, zero outside the active months):

- ``sales``: true sales, yuan excluding VAT (exports included).
- ``exports``: the zero-rated part of ``sales``.
- ``purchases``: true VAT-able purchases of goods and services for the business, yuan.
- ``capex``: VAT-able equipment purchases (not a cost in the month), yuan.
- ``wages``/``headcount``: true payroll, yuan, and people employed.
- ``other_cost``: costs without VAT (rent, depreciation, interest), yuan.
- ``kwh``: electricity used.
- ``output_t``/``raw_t``/``stock_t``/``mined_m3``/``cycles``: physical quantities of the
  modelled industries (tonnes, cubic metres, kiln cycles), zero elsewhere.

Physical industries derive sales from quantities (output x price), so the documents' industry
models hold for honest firms up to the noise of real production.
"""

from __future__ import annotations

import numpy as np

from .industries import industry_arrays
from .world import DECLINING, EXPORTER, INVESTOR, SEASONAL, SHELL, STARTUP, Chunk

__all__ = ["draw_activity"]


def _lognoise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    return rng.lognormal(-0.5 * sigma * sigma, sigma, shape)


def draw_activity(ch: Chunk) -> None:
    """Draw the true monthly activity of a chunk into ``ch.mo`` (see module doc)."""
    rng = ch.rng(2)
    tp, n, months = ch.tp, ch.n, ch.months
    ia = industry_arrays()
    ind, arch, size = tp["industry"], tp["archetype"], tp["size"]
    active = ch.mo["active"]
    m = np.arange(months)[None, :]
    calm = ch.tl.calmonth_of(np.arange(months))[None, :]

    # seasonality
    amp = ia["season_amp"][ind] * rng.uniform(0.5, 1.5, n)
    seasonal = arch == SEASONAL
    amp[seasonal] = rng.uniform(0.8, 1.3, seasonal.sum())
    peak = ia["season_peak"][ind] + rng.integers(-1, 2, n)
    season = 1.0 + amp[:, None] * np.cos(2 * np.pi * (calm - peak[:, None]) / 12.0)
    season = np.where(seasonal[:, None] & (season < 0.25), 0.0, np.maximum(season, 0.05))
    # trend: drift, real decline, start-up ramp
    growth = rng.normal(0.003, 0.008, n)
    trend = np.exp(growth[:, None] * (m - months / 2))
    declining = arch == DECLINING
    d0 = rng.integers(-6, max(1, months - 6), n)
    drop = rng.uniform(0.03, 0.08, n)
    trend = np.where(
        declining[:, None] & (m > d0[:, None]),
        trend * np.exp(-drop[:, None] * (m - d0[:, None])),
        trend,
    )
    age = m - tp["reg_m"][:, None]
    ramp = np.where(age >= 0, 1.0 - np.exp(-(age + 1) / rng.uniform(3, 9, n)[:, None]), 0.0)
    level = size[:, None] * season * trend * ramp
    sales = level * _lognoise(rng, (n, months), ch.style.sales_noise)

    # physical industries: quantities first, sales from them
    model = ia["model"][ind]
    price = ia["avg_price"][ind] * rng.normal(1.0, 0.05, n)
    output_t = np.zeros((n, months))
    raw_t = np.zeros((n, months))
    stock_t = np.zeros((n, months))
    mined = np.zeros((n, months))
    cycles = np.zeros((n, months))
    kilns = np.zeros(n)
    kcap = np.zeros(n)
    loss = np.zeros(n)
    phys = model != ""
    output_t[phys] = sales[phys] / price[phys, None]
    io = model == "input_output"
    yld = ia["input_output_ratio"][ind] * rng.normal(1.0, 0.015, n)
    raw_t[io] = output_t[io] / yld[io, None]
    kiln = model == "kiln"
    if kiln.any():
        kcap[kiln] = 30.0 * rng.normal(1.0, 0.08, kiln.sum())
        per_month = kcap[kiln] * 3.4 * 0.95 * price[kiln]
        kilns[kiln] = np.clip(np.round(size[kiln] / per_month), 8, 36)
        loss[kiln] = np.clip(rng.normal(0.05, 0.01, kiln.sum()), 0.02, 0.1)
        cyc = 3.4 * season[kiln] * ramp[kiln] * _lognoise(rng, (kiln.sum(), months), 0.06)
        cycles[kiln] = np.round(cyc, 1)
        finished = kilns[kiln, None] * kcap[kiln, None] * cycles[kiln] * (1 - loss[kiln, None])
        stock = rng.uniform(0.2, 1.0, kiln.sum()) * finished.mean(axis=1)
        sold = np.zeros_like(finished)
        closing = np.zeros_like(finished)
        for k in range(months):
            avail = stock + finished[:, k]
            s = np.minimum(finished[:, k] * rng.uniform(0.85, 1.15, kiln.sum()), avail)
            sold[:, k] = s
            stock = avail - s
            closing[:, k] = stock
        output_t[kiln] = finished
        stock_t[kiln] = closing
        sales[kiln] = sold * price[kiln, None]
    vd = model == "volume_density"
    mined[vd] = (
        output_t[vd]
        / ia["density_t_per_m3"][ind[vd], None]
        * _lognoise(rng, (vd.sum(), months), 0.03)
    )
    stock_t[io] = output_t[io] * rng.uniform(0.1, 0.6, io.sum())[:, None]
    sales *= active

    # purchases and costs
    va = np.clip(ia["va"][ind] * rng.normal(1.0, 0.15, n), 0.02, 0.95)
    purchases = sales * (1.0 - va[:, None]) * _lognoise(rng, (n, months), ch.style.purchase_noise)
    raw_price = ia["raw_price"][ind] * rng.normal(1.0, 0.03, n)
    raw_cost = raw_t * raw_price[:, None]
    purchases[io] = np.maximum(purchases[io], raw_cost[io] * 1.02)
    capex = np.zeros((n, months))
    born_in = (tp["reg_m"] >= 0) & (arch == STARTUP)
    rows = np.flatnonzero(born_in)
    capex[rows, tp["reg_m"][rows]] = size[rows] * rng.uniform(2.0, 8.0, rows.size)
    inv = np.flatnonzero(arch == INVESTOR)
    inv_m = rng.integers(0, months, inv.size)
    ok = active[inv, inv_m]
    capex[inv[ok], inv_m[ok]] = size[inv[ok]] * rng.uniform(5.0, 30.0, ok.sum())
    exporters = arch == EXPORTER
    export_share = np.where(exporters, rng.uniform(0.5, 1.0, n), 0.0)
    exports = sales * export_share[:, None]

    wage_share = ia["wage"][ind] * rng.lognormal(0.0, 0.2, n)
    wages = (
        size[:, None]
        * wage_share[:, None]
        * (0.75 + 0.25 * season)
        * trend
        * np.minimum(1.0, ramp + 0.3)
    )
    wages *= _lognoise(rng, (n, months), 0.03) * active
    coal = ind == 0
    wages[coal] = output_t[coal] * 23.0 * _lognoise(rng, (coal.sum(), months), 0.08)
    avg_wage = rng.uniform(4_000, 9_000, n)
    headcount = np.where(active, np.maximum(1, np.round(wages / avg_wage[:, None])), 0)

    margin = ia["margin"][ind] + rng.normal(0.0, 0.03, n)
    other_share = np.maximum(va - wage_share - margin, 0.0)
    fixed = size * other_share * 0.5
    other_cost = (sales * other_share[:, None] * 0.5 + fixed[:, None]) * active
    other_cost[declining] += (size[declining] * 0.1)[:, None] * active[declining]

    kwh_per_unit = ia["kwh_per_unit"][ind]
    base_kwh = size * np.where(phys, 0.0, ia["kwh_per_yuan"][ind]) * rng.uniform(0.6, 1.4, n)
    kwh = np.where(
        phys[:, None],
        output_t * np.nan_to_num(kwh_per_unit)[:, None] * _lognoise(rng, (n, months), 0.04),
        (0.3 * base_kwh[:, None] + 0.7 * base_kwh[:, None] * sales / np.maximum(size[:, None], 1.0))
        * _lognoise(rng, (n, months), 0.08),
    )
    kwh *= active
    shell = arch == SHELL
    for arr in (sales, purchases, wages, other_cost, kwh, exports):
        arr[shell] *= 0.02  # a shell has almost no real business
    headcount[shell] = np.minimum(headcount[shell], 2) * active[shell]

    ch.mo.update(
        sales=sales,
        exports=exports,
        purchases=purchases,
        capex=capex * active,
        wages=wages,
        headcount=headcount,
        other_cost=other_cost,
        kwh=kwh,
        output_t=output_t * active,
        raw_t=raw_t * active,
        stock_t=stock_t * active,
        mined_m3=mined * active,
        cycles=cycles * active,
    )
    ch.tp.update(price=price, yld=yld, raw_price=raw_price, kilns=kilns, kiln_cap=kcap, loss=loss,
                 va=va, margin=margin, avg_wage=avg_wage, export_share=export_share)  # fmt: skip
