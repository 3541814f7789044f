"""Registry and property events that carry tax: equity transfers, leases, property sales.

- **Equity transfers** (registry ``equity_transfer``): a shareholder sells part of the
  taxpayer's equity. The taxpayer must withhold 20% income tax on the shareholder's gain and
  file stamp duty (0.05% of the price) in the month of the transfer. Honest firms do (the
  withheld tax is in the truth's ``tax_declared``; only the stamp duty row is visible);
  ``equity_transfer`` evaders file neither.
- **Leases** (property ``lease_out``): some firms outside real estate let part of their
  premises; the rent is extra sales. ``property_undeclared`` evaders leave it off their returns.
- **Property sales** (property ``sale``: the online contract 网签 of a developer's sales) and
  rental contracts of the real-estate industries record their true business; a
  ``property_undeclared`` evader there hides a share of those sales.
- **Purchases** of property by any firm (property ``purchase``) are recorded for owners.

Writes ``chunk.mo``: ``rent`` (yuan a month), ``equity_gain`` (yuan, month of transfer),
``equity_price`` (yuan); ``chunk.extra``: ``registrations_equity`` and ``property`` row dicts.
"""

from __future__ import annotations

import numpy as np

from .evasion import S
from .industries import INDUSTRIES
from .world import SHELL, Chunk, codes

__all__ = ["draw_events"]


def draw_events(ch: Chunk) -> None:
    """Draw the taxed events of a chunk (see module doc)."""
    rng = ch.rng(4)
    tp, mo, n, months = ch.tp, ch.mo, ch.n, ch.months
    active = mo["active"]
    parent = np.array([i.parent for i in INDUSTRIES])[tp["industry"]]
    code = np.array([i.code for i in INDUSTRIES])[tp["industry"]]
    company = ~tp["quota"] & (tp["archetype"] != SHELL)

    # -- equity transfers: about 2% of companies a year, evaders far more
    eq_evader = (tp["scheme1"] == S["equity_transfer"]) | (tp["scheme2"] == S["equity_transfer"])
    rate = np.where(eq_evader, 0.0, 0.02 / 12) * company
    hit = (rng.random((n, months)) < rate[:, None]) & active
    ev_rows = np.flatnonzero(eq_evader)
    on = np.where(
        tp["scheme1"][ev_rows, None] == S["equity_transfer"], mo["on1"][ev_rows], mo["on2"][ev_rows]
    )
    has = on.any(axis=1)
    first = np.argmax(on, axis=1)
    hit[ev_rows[has], first[has]] = True
    ti, mi = np.nonzero(hit)
    share = rng.uniform(0.1, 1.0, ti.size)
    evading = eq_evader[ti]
    g = np.where(
        evading,
        np.where(tp["scheme1"][ti] == S["equity_transfer"], tp["int1"][ti], tp["int2"][ti]),
        rng.uniform(0.0, 1.0, ti.size),
    )
    free = ~evading & (rng.random(ti.size) < 0.1)  # gratuitous transfers within a family
    price = np.where(free, 0.0, np.round(tp["capital"][ti] * share * (1.0 + g), -3))
    gain = np.where(free, 0.0, tp["capital"][ti] * share * g)
    mo["equity_gain"] = np.zeros((n, months))
    mo["equity_price"] = np.zeros((n, months))
    mo["equity_evaded"] = np.zeros((n, months), dtype=bool)
    mo["equity_gain"][ti, mi] = gain
    mo["equity_price"][ti, mi] = price
    mo["equity_evaded"][ti, mi] = evading
    day = rng.integers(1, 29, ti.size)
    ch.extra["registrations_equity"] = {
        "i": ti,
        "changed_on": ch.tl.month_start(mi) + (day - 1).astype("timedelta64[D]"),
        "amount": np.where(free, np.nan, price),
        "counterparty": codes("P", rng.integers(0, 10**9, ti.size), 9),
    }

    # -- leases by firms outside real estate: rent is extra sales
    pu = (tp["scheme1"] == S["property_undeclared"]) | (tp["scheme2"] == S["property_undeclared"])
    lessor = company & (parent != "K") & ((rng.random(n) < 0.03) | pu)
    rent = np.where(lessor, tp["size"] * rng.uniform(0.03, 0.2, n) + 2_000.0, 0.0)
    lease_start = np.maximum(tp["reg_m"], rng.integers(-24, months, n))
    m = np.arange(months)[None, :]
    mo["rent"] = (
        np.where(lessor[:, None] & (m >= lease_start[:, None]), rent[:, None], 0.0) * active
    )
    area_price = rng.uniform(25.0, 80.0, n)  # yuan per m2 per month

    rows_i: list[np.ndarray] = []
    rows_d: list[np.ndarray] = []
    rows_e: list[np.ndarray] = []
    rows_v: list[np.ndarray] = []
    rows_a: list[np.ndarray] = []
    # lease contracts start (and renew every 12 months) in the window
    li, lm = np.nonzero((mo["rent"] > 0) & (((m - lease_start[:, None]) % 12) == 0))
    rows_i.append(li)
    rows_d.append(ch.tl.month_start(lm) + rng.integers(0, 10, li.size).astype("timedelta64[D]"))
    rows_e.append(np.full(li.size, "lease_out"))
    rows_v.append(12 * mo["rent"][li, lm])
    rows_a.append(mo["rent"][li, lm] / area_price[li])
    # real estate: developers' monthly online sales contracts, rental firms' leases
    dev = code == "7010"
    di, dm = np.nonzero(dev[:, None] & (mo["sales"] > 0) & (rng.random((n, months)) < 0.9))
    rows_i.append(di)
    rows_d.append(ch.tl.month_start(dm) + rng.integers(0, 28, di.size).astype("timedelta64[D]"))
    rows_e.append(np.full(di.size, "sale"))
    rows_v.append(mo["sales"][di, dm] * rng.normal(1.0, 0.02, di.size))
    rows_a.append(mo["sales"][di, dm] / rng.uniform(6_000, 15_000, di.size))
    ren = (code == "7040")[:, None] & (mo["sales"] > 0) & (((m - tp["reg_m"][:, None]) % 12) == 0)
    ri, rm = np.nonzero(ren & (rng.random((n, months)) < 0.85))
    rows_i.append(ri)
    rows_d.append(ch.tl.month_start(rm) + rng.integers(0, 28, ri.size).astype("timedelta64[D]"))
    rows_e.append(np.full(ri.size, "lease_out"))
    rows_v.append(12 * mo["sales"][ri, rm] * rng.normal(1.0, 0.03, ri.size))
    rows_a.append(mo["sales"][ri, rm] / area_price[ri])
    # occasional purchases of premises
    pi, pm = np.nonzero(company[:, None] & active & (rng.random((n, months)) < 0.004))
    rows_i.append(pi)
    rows_d.append(ch.tl.month_start(pm) + rng.integers(0, 28, pi.size).astype("timedelta64[D]"))
    rows_e.append(np.full(pi.size, "purchase"))
    value = tp["size"][pi] * rng.uniform(2.0, 20.0, pi.size)
    rows_v.append(value)
    rows_a.append(value / rng.uniform(4_000, 12_000, pi.size))
    ch.extra["property"] = {
        "i": np.concatenate(rows_i),
        "event_on": np.concatenate(rows_d),
        "event": np.concatenate(rows_e),
        "value": np.round(np.abs(np.concatenate(rows_v)), 2),
        "area_m2": np.round(np.abs(np.concatenate(rows_a)), 1),
    }
    # property owners pay property tax and land-use tax (annual, in two halves)
    owner = company & ((rng.random(n) < 0.3) | (parent == "K"))
    ch.tp["property_value"] = np.where(owner, tp["size"] * rng.uniform(3.0, 30.0, n), 0.0)
    ch.tp["land_m2"] = np.where(owner, ch.tp["property_value"] / rng.uniform(3_000, 9_000, n), 0.0)
    ch.tp["land_rate"] = rng.uniform(3.0, 12.0, n)  # yuan per m2 per year
