"""Third-party data: true activity seen through other agencies, with noise and gaps.

- ``electricity`` (power company): 88% of taxpayers matched to a meter (market tenants and
  shells far fewer: they share premises), 1.5% of months missing; kWh with 5% metering noise;
  charge at the firm's tariff (0.55-0.95 yuan/kWh).
- ``social_insurance``: 78% of firms covered (fixed-quota shops 20%); 40% of firms insure only
  part of their staff, on a reduced wage base.
- ``registrations`` (market regulator): equity transfers (:mod:`.events`) and other changes:
  legal representative, capital, address, scope.
- ``property``: online contracts, leases and purchases (:mod:`.events`).
(Coverage shares and noise are the standard style's; other styles set them, :mod:`.styles`.)

- ``operations`` (tax-source archive): for 60% of the physically modelled firms, 85% of
  months: officer counts (true, 3-5% noise), third-party counts (true), and self-reported
  figures (what the firm declares: an evader reports the output of its declared sales and the
  raw material it claimed).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .industries import INDUSTRIES, industry_arrays
from .world import SHELL, Chunk, codes

__all__ = [
    "electricity_table",
    "operations_table",
    "property_table",
    "registrations_table",
    "social_table",
]


def _ids(ch: Chunk, i: np.ndarray) -> pa.Array:
    return pc.take(pa.array(ch.tp["id"], pa.string()), pa.array(i.astype(np.int64)))


def _periods(ch: Chunk, m: np.ndarray) -> pa.Array:
    return pc.take(pa.array(ch.tl.period_labels(), pa.string()), pa.array(m.astype(np.int64)))


def electricity_table(ch: Chunk) -> pa.Table:
    rng = ch.rng(8)
    tp, mo, n = ch.tp, ch.mo, ch.n
    code = np.array([i.code for i in INDUSTRIES])[tp["industry"]]
    p_cov = np.where(
        code == "5299", 0.3, np.where(tp["archetype"] == SHELL, 0.5, ch.style.meter_coverage)
    )
    covered = rng.random(n) < p_cov
    tariff = rng.uniform(0.55, 0.95, n)
    keep = covered[:, None] & mo["active"] & (rng.random(mo["active"].shape) > 0.015)
    i, m = np.nonzero(keep)
    kwh = np.round(mo["kwh"][i, m] * rng.lognormal(0.0, ch.style.meter_noise, i.size), 1)
    return pa.table(
        {
            "taxpayer_id": _ids(ch, i),
            "period": _periods(ch, m),
            "kwh": pa.array(kwh),
            "charge": pa.array(np.round(kwh * tariff[i], 2)),
        }
    )


def social_table(ch: Chunk) -> pa.Table:
    rng = ch.rng(9)
    tp, mo, n = ch.tp, ch.mo, ch.n
    covered = rng.random(n) < np.where(tp["quota"], 0.2, 0.78)
    partial = rng.random(n) < 0.4
    share = np.where(partial, rng.uniform(0.4, 0.9, n), 1.0)
    base = np.where(partial, rng.uniform(0.6, 0.9, n), 1.0)
    keep = covered[:, None] & mo["active"] & (mo["headcount"] > 0)
    i, m = np.nonzero(keep)
    head = np.maximum(1, np.round(mo["headcount"][i, m] * share[i])).astype(np.int64)
    per_head = mo["wages"][i, m] / np.maximum(mo["headcount"][i, m], 1)
    wages = np.round(head * per_head * base[i], 2)
    return pa.table(
        {
            "taxpayer_id": _ids(ch, i),
            "period": _periods(ch, m),
            "headcount": pa.array(head),
            "wages": pa.array(wages),
        }
    )


def registrations_table(ch: Chunk) -> pa.Table:
    rng = ch.rng(10)
    tp, mo = ch.tp, ch.mo
    eq = ch.extra["registrations_equity"]
    parts = [
        (
            eq["i"],
            eq["changed_on"],
            np.full(eq["i"].size, "equity_transfer"),
            eq["amount"],
            eq["counterparty"],
        )
    ]
    shell = tp["archetype"] == SHELL
    for kind, rate in (("legal_rep", 0.01), ("capital", 0.01), ("address", 0.02), ("scope", 0.02)):
        r = np.where(shell & (kind == "legal_rep"), 0.08, rate / 12)
        i, m = np.nonzero(mo["active"] & (rng.random(mo["active"].shape) < r[:, None]))
        day = (rng.integers(1, 29, i.size) - 1).astype("timedelta64[D]")
        amount = np.where(
            kind == "capital",
            np.round(tp["capital"][i] * rng.uniform(1.2, 3.0, i.size), -4),
            np.nan,
        )
        cp = np.full(i.size, None, dtype=object)
        if kind == "legal_rep":
            cp = codes("P", rng.integers(0, 10**9, i.size), 9).astype(object)
        parts.append((i, ch.tl.month_start(m) + day, np.full(i.size, kind), amount, cp))
    i = np.concatenate([p[0] for p in parts])
    amount = np.concatenate([p[3] for p in parts])
    cps = np.concatenate([np.asarray(p[4], dtype=object) for p in parts])
    return pa.table(
        {
            "taxpayer_id": _ids(ch, i),
            "changed_on": pa.array(np.concatenate([p[1] for p in parts]), pa.date32()),
            "change_type": pa.array(np.concatenate([p[2] for p in parts]).astype(str), pa.string()),
            "amount": pa.array(amount, pa.float64(), from_pandas=True),
            "counterparty": pa.array(cps, pa.string()),
        }
    )


def property_table(ch: Chunk) -> pa.Table:
    p = ch.extra["property"]
    return pa.table(
        {
            "taxpayer_id": _ids(ch, p["i"]),
            "event_on": pa.array(p["event_on"], pa.date32()),
            "event": pa.array(p["event"].astype(str), pa.string()),
            "value": pa.array(p["value"], pa.float64()),
            "area_m2": pa.array(p["area_m2"], pa.float64()),
        }
    )


def operations_table(ch: Chunk) -> pa.Table:
    rng = ch.rng(11)
    ia = industry_arrays()
    tp, mo, n, months = ch.tp, ch.mo, ch.n, ch.months
    model = ia["model"][tp["industry"]]
    st = ch.style
    covered = (model != "") & (rng.random(n) < st.operations_coverage) & (tp["archetype"] != SHELL)
    covered |= ch.extra.get("planted_ops", np.zeros(n, dtype=bool))
    present = covered[:, None] & mo["active"] & (rng.random((n, months)) < 0.85)
    present |= ch.extra.get("planted_ops", np.zeros(n, dtype=bool))[:, None] & mo["active"]
    ratio = np.clip(mo["sales_d"] / np.maximum(mo["sales_t"], 1e-9), 0.0, 1.3)
    declared_output = mo["output_t"] * ratio
    raw_claimed = np.where(
        mo["raw_t"] > 0,
        mo["raw_t"] + mo["extra_input"] / np.maximum(tp["raw_price"][:, None], 1e-9),
        0.0,
    )
    officer_output = rng.random(n) < st.officer_share
    cols: dict[str, list[np.ndarray]] = {"i": [], "m": [], "metric": [], "value": [], "source": []}

    def put(mask: np.ndarray, metric: str, value: np.ndarray, source: np.ndarray | str) -> None:
        i, m = np.nonzero(mask & present)
        cols["i"].append(i)
        cols["m"].append(m)
        cols["metric"].append(np.full(i.size, metric))
        cols["value"].append(np.round(np.maximum(value[i, m], 0.0), 3))
        src = np.full(i.size, source) if isinstance(source, str) else source[i]
        cols["source"].append(src)

    noise = rng.lognormal(0.0, st.officer_noise, (n, months))
    io = (model == "input_output")[:, None]
    kiln = (model == "kiln")[:, None]
    power = (model == "power")[:, None]
    vd = (model == "volume_density")[:, None]
    put(io, "raw_material_t", raw_claimed, "self_reported")
    out_val = np.where(officer_output[:, None], mo["output_t"] * noise, declared_output)
    out_src = np.where(officer_output, "officer", "self_reported")
    put(io | power | vd | kiln, "output_t", out_val, out_src)
    put(io | kiln, "stock_t", mo["stock_t"], "self_reported")
    ones = np.ones((n, months))
    put(kiln, "kilns", tp["kilns"][:, None] * ones, "officer")
    put(kiln, "kiln_capacity", tp["kiln_cap"][:, None] * ones, "officer")
    put(kiln, "cycles", mo["cycles"], "third_party")
    put(vd, "mined_volume_m3", mo["mined_m3"] * rng.lognormal(0.0, 0.03, (n, months)), "officer")
    planted = ch.extra.get("planted_operations")
    i = np.concatenate(cols["i"])
    m = np.concatenate(cols["m"])
    metric = np.concatenate(cols["metric"]).astype(str)
    value = np.concatenate(cols["value"])
    source = np.concatenate(cols["source"]).astype(str)
    if planted is not None:  # exact figures of the worked examples replace generated ones
        pi, pm, pmetric, pvalue, psource = planted
        drop = np.isin(i, np.unique(pi))
        i = np.concatenate([i[~drop], pi])
        m = np.concatenate([m[~drop], pm])
        metric = np.concatenate([metric[~drop], pmetric])
        value = np.concatenate([value[~drop], pvalue])
        source = np.concatenate([source[~drop], psource])
    return pa.table(
        {
            "taxpayer_id": _ids(ch, i),
            "period": _periods(ch, m),
            "metric": pa.array(metric, pa.string()),
            "value": pa.array(value, pa.float64()),
            "source": pa.array(source, pa.string()),
        }
    )
