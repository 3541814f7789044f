"""Units and taxpayers: who is in the city, where they are managed, what they are.

The world is drawn in chunks of taxpayers (:class:`Chunk`), each from its own seeded random
stream, so a chunk never needs another chunk's data and memory stays flat at any scale.
Per-taxpayer arrays live in ``chunk.tp`` (length n); per-taxpayer-month arrays in
``chunk.mo`` (shape n x months).

Archetypes (``chunk.tp["archetype"]``): 0 ordinary, 1 shell company (issues invoices, pays
little, vanishes), 2 exporter (zero-rated sales, input credit carried), 3 investor (one large
equipment purchase, input credit carried), 4 seasonal (off-season months near zero),
5 declining (real decline with losses), 6 start-up (registered in the window: ramp-up with
real losses). 2-6 are the honest look-alikes that naive rules flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from .industries import INDUSTRIES, industry_arrays
from .styles import STANDARD, Style
from .timeline import Timeline

__all__ = [
    "ARCHETYPES",
    "Chunk",
    "Units",
    "build_units",
    "draw_taxpayers",
    "rng_for",
    "taxpayer_id",
]

ARCHETYPES = ("ordinary", "shell", "exporter", "investor", "seasonal", "declining", "startup")
ORDINARY, SHELL, EXPORTER, INVESTOR, SEASONAL, DECLINING, STARTUP = range(7)

#: Monthly sales (yuan) at or under which small-scale and fixed-quota VAT is exempt (2014-18 line).
EXEMPT_LINE = 30_000.0

_PLACES = np.array(list("华鑫恒宏金盛瑞祥泰隆兴旺达源通汇丰鼎新佳福昌荣永嘉诚信和顺安康"))
_WORDS = np.array(list("华鑫恒宏金盛瑞祥泰隆兴旺达源通汇丰鼎新佳福昌荣永嘉诚信和顺安康天地海川"))
_COUNTY_NAMES = ("凉州区", "民勤县", "古浪县", "天祝县", "新华区", "红旗区", "卫滨区", "牧野区",
                 "凤泉区", "卫辉市", "辉县市", "获嘉县", "原阳县", "延津县", "封丘县", "长垣市")  # fmt: skip


def rng_for(seed: int, stage: int, chunk: int = 0) -> np.random.Generator:
    """The random stream of one stage of one chunk: independent and reproducible."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stage, chunk])))


def codes(prefix: str | np.ndarray, numbers: np.ndarray, width: int) -> np.ndarray:
    """``prefix`` + zero-padded ``numbers`` (str array; empty input gives an empty array)."""
    numbers = np.asarray(numbers)
    if numbers.size == 0:
        return np.array([], dtype=str)
    return np.char.add(prefix, np.char.zfill(np.char.mod("%d", numbers), width))


def taxpayer_id(index: np.ndarray) -> np.ndarray:
    """Registry ids ``TP00000001``... for 0-based global taxpayer indexes (str array)."""
    return codes("TP", np.asarray(index) + 1, 8)


@dataclass
class Units:
    """The unit tree: one city bureau, its counties, their branches."""

    table: pa.Table
    city: str
    counties: np.ndarray  # unit ids
    county_weight: np.ndarray  # share of taxpayers per county
    branches: list[np.ndarray]  # branch unit ids per county


def build_units(n_taxpayers: int, seed: int) -> Units:
    """The city's units with capacities per cycle summing to about 2% of the taxpayers.

    Capacity (cases per quarter) goes 10% to the city (key taxpayers), 30% to the counties,
    60% to the branches, each share split by the taxpayers the unit manages.
    """
    rng = rng_for(seed, 0)
    n_counties = int(np.clip(round(3 + n_taxpayers / 60_000), 3, len(_COUNTY_NAMES)))
    county_weight = rng.dirichlet(np.full(n_counties, 4.0))
    total_capacity = max(10, round(0.02 * n_taxpayers))
    ids: list[str] = ["SZ00"]
    parents: list[str | None] = [None]
    levels = ["city"]
    names = ["市税务局"]
    caps = [max(1, round(0.10 * total_capacity))]
    counties: list[str] = []
    branches: list[np.ndarray] = []
    for c in range(n_counties):
        cid = f"SZ{c + 1:02d}"
        counties.append(cid)
        ids.append(cid)
        parents.append("SZ00")
        levels.append("county")
        names.append(f"{_COUNTY_NAMES[c]}税务局")
        caps.append(max(1, round(0.30 * total_capacity * county_weight[c])))
        n_br = int(rng.integers(2, 7))
        bids = [f"{cid}-{b + 1:02d}" for b in range(n_br)]
        branches.append(np.array(bids))
        for b, bid in enumerate(bids):
            ids.append(bid)
            parents.append(cid)
            levels.append("branch")
            names.append(f"{_COUNTY_NAMES[c]}第{b + 1}税务分局")
            caps.append(max(1, round(0.60 * total_capacity * county_weight[c] / n_br)))
    table = pa.table(
        {
            "unit_id": pa.array(ids, pa.string()),
            "parent_id": pa.array(parents, pa.string()),
            "level": pa.array(levels, pa.string()),
            "name": pa.array(names, pa.string()),
            "capacity": pa.array(caps, pa.int64()),
        }
    )
    return Units(table, "SZ00", np.array(counties), county_weight, branches)


@dataclass
class Chunk:
    """One chunk of taxpayers with global indexes ``lo .. lo+n-1``, drawn in ``style``."""

    index: int
    lo: int
    n: int
    tl: Timeline
    seed: int
    style: Style = STANDARD
    tp: dict[str, np.ndarray] = field(default_factory=dict)
    mo: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def months(self) -> int:
        return self.tl.months

    def rng(self, stage: int) -> np.random.Generator:
        return rng_for(self.seed, stage, self.index)


def _names(rng: np.random.Generator, industry: np.ndarray, quota: np.ndarray) -> np.ndarray:
    a = rng.choice(_PLACES, industry.size)
    b = rng.choice(_WORDS, industry.size)
    trade = np.array([i.name.split("(")[0][:4] for i in INDUSTRIES])[industry]
    suffix = np.where(quota, "经营部", "有限公司")
    return np.char.add(np.char.add(np.char.add(a, b), trade), suffix)


def draw_taxpayers(ch: Chunk, units: Units) -> None:
    """Draw the registry attributes of a chunk's taxpayers into ``ch.tp`` and ``ch.mo['active']``."""
    rng = ch.rng(1)
    n, months = ch.n, ch.months
    ia = industry_arrays()
    ind = rng.choice(len(INDUSTRIES), n, p=ia["weight"])
    u = rng.random(n)
    quota = u < ia["quota"][ind]
    small = quota | (u < ia["small"][ind])
    # heavy-tailed size: lognormal body, Pareto tail on 1%
    size = ia["median_sales"][ind] * rng.lognormal(0.0, 1.1, n)
    tail = rng.random(n) < 0.01
    size[tail] *= np.minimum(1.0 + rng.pareto(1.2, tail.sum()), 200.0)
    size[small] *= 0.08
    size[quota] *= 0.5
    # archetypes (honest look-alikes and shells)
    arch = np.full(n, ORDINARY, dtype=np.int8)
    r = rng.random(n)
    manuf_or_trade = np.isin(np.array([i.parent for i in INDUSTRIES])[ind], ["C", "F"])
    arch[(r < 0.003) & ~small] = SHELL
    arch[(r >= 0.003) & (r < 0.06) & manuf_or_trade & ~small] = EXPORTER
    arch[(r >= 0.06) & (r < 0.08) & ~small] = INVESTOR
    arch[(r >= 0.08) & (r < 0.12)] = SEASONAL
    arch[(r >= 0.12) & (r < 0.16)] = DECLINING
    shell = arch == SHELL
    ind[shell] = np.where(rng.random(shell.sum()) < 0.6, 12, 21)  # wholesale / business services
    size[shell] = ia["median_sales"][ind[shell]] * rng.lognormal(-0.3, 0.6, shell.sum())
    # registration: most firms predate the window; start-ups and shells register inside it
    born = (rng.random(n) < 0.18) | shell
    reg_m = np.where(born, rng.integers(0, max(1, months - 1), n), -rng.integers(1, 240, n))
    arch[born & (arch == ORDINARY)] = STARTUP
    # deregistration: last active month (>= months means still active at the end)
    hazard = np.where(arch == DECLINING, 0.02, 0.004)
    life = rng.geometric(hazard)
    last = reg_m + life
    last = np.where(shell, reg_m + rng.integers(3, 11, n), last)
    last = np.maximum(last, reg_m)
    # firms that closed before the window never appear: redraw them as still active
    dead_before = last < 0
    last[dead_before] = months + rng.integers(0, 120, dead_before.sum())
    # shells that vanish without deregistering stop filing but stay on the register
    vanish_only = shell & (rng.random(n) < 0.4)
    dereg_m = np.where(vanish_only, months + 999, last + 1)
    day_reg = rng.integers(1, 29, n)
    reg_on = ch.tl.month_start(reg_m) + (day_reg - 1).astype("timedelta64[D]")
    dereg_on = ch.tl.month_start(np.minimum(dereg_m, months + 999)) + rng.integers(0, 20, n).astype(
        "timedelta64[D]"
    )
    m = np.arange(months)
    active = (m[None, :] >= reg_m[:, None]) & (m[None, :] <= last[:, None])

    # managing unit: key taxpayers to the city, large ones to the county, the rest to branches
    county = rng.choice(len(units.counties), n, p=units.county_weight)
    branch_pick = rng.random(n)
    unit = np.empty(n, dtype=object)
    for c, bids in enumerate(units.branches):
        sel = county == c
        unit[sel] = bids[(branch_pick[sel] * len(bids)).astype(int)]
    big = size > 20 * ia["median_sales"][ind]
    key = size > 60e6
    unit[big] = units.counties[county[big]]
    unit[key] = units.city

    capital = np.round(size * 12 * rng.uniform(0.05, 1.0, n), -4)
    capital = np.maximum(capital, np.where(quota, 10_000.0, 100_000.0))
    ch.tp.update(
        index=np.arange(ch.lo, ch.lo + n),
        id=taxpayer_id(np.arange(ch.lo, ch.lo + n)),
        industry=ind,
        small=small,
        quota=quota,
        size=size,
        archetype=arch,
        reg_m=reg_m,
        last_m=last,
        dereg_m=dereg_m,
        registered_on=reg_on,
        deregistered_on=dereg_on,
        county=county,
        unit=unit.astype(str),
        capital=capital,
        name=_names(rng, ind, quota),
    )
    ch.mo["active"] = active


def taxpayers_table(ch: Chunk) -> pa.Table:
    """The contract's ``taxpayers`` rows of a chunk."""
    t = ch.tp
    codes = np.array([i.code for i in INDUSTRIES])
    dereg_known = t["dereg_m"] <= ch.months - 1
    return pa.table(
        {
            "taxpayer_id": pa.array(t["id"], pa.string()),
            "name": pa.array(t["name"], pa.string()),
            "unit_id": pa.array(t["unit"], pa.string()),
            "industry": pa.array(codes[t["industry"]], pa.string()),
            "taxpayer_type": pa.array(np.where(t["small"], "small_scale", "general"), pa.string()),
            "collection_method": pa.array(
                np.where(t["quota"], "fixed_quota", "self_assessed"), pa.string()
            ),
            "registered_on": pa.array(t["registered_on"], pa.date32()),
            "deregistered_on": pa.array(t["deregistered_on"], pa.date32(), mask=~dereg_known),
            "registered_capital": pa.array(t["capital"], pa.float64()),
        }
    )
