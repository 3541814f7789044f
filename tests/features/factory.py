"""Small random worlds in the contract's format, for feature tests (seeded, vectorised).

``world_frames(n, months, seed)`` returns ``{table: DataFrame}`` with every contract table,
text-typed like a CSV folder: dates ``YYYY-MM-DD``, months ``YYYY-MM``, quarters ``YYYY-Qn``.
Not a realistic city (that is the demo generator's job): enough variety to exercise every
indicator, including zero filers, late filers, under-declarers, fixed-quota shops, shells.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

START = dt.date(2022, 1, 1)
INDUSTRIES = {
    "C13": ("面粉加工 flour", "input_output"),
    "C30": ("砖瓦 brick", "kiln"),
    "B06": ("煤炭开采 coal", "volume_density"),
    "C17": ("棉花加工 cotton", "power"),
    "F52": ("零售 retail", None),
    "F51": ("成品油批发 fuel wholesale", None),
}


def _month(i: int) -> dt.date:
    y, m = divmod(START.year * 12 + START.month - 1 + i, 12)
    return dt.date(y, m + 1, 1)


def _fmt_month(d: dt.date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def world_frames(n: int = 60, months: int = 30, seed: int = 1) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = np.array([f"T{i:05d}" for i in range(n)])
    units = pd.DataFrame(
        {
            "unit_id": ["CITY", "C1", "C2", "B11", "B21"],
            "parent_id": [None, "CITY", "CITY", "C1", "C2"],
            "level": ["city", "county", "county", "branch", "branch"],
            "name": ["市局", "一县", "二县", "一所", "二所"],
            "capacity": [5, 10, 10, 20, 20],
        }
    )
    inds = np.array(list(INDUSTRIES))
    industry = inds[rng.integers(0, len(inds), n)]
    reg_month = rng.integers(-24, months - 6, n)
    registered = [
        (_month(int(m)) + dt.timedelta(days=int(d)))
        for m, d in zip(reg_month, rng.integers(0, 27, n), strict=True)
    ]
    dereg_mask = rng.random(n) < 0.1
    dereg = [
        (
            _month(int(min(max(m, 0) + rng.integers(6, 20), months - 1))) + dt.timedelta(days=9)
        ).isoformat()
        if d
        else None
        for m, d in zip(reg_month, dereg_mask, strict=True)
    ]
    fixed = rng.random(n) < 0.15
    taxpayers = pd.DataFrame(
        {
            "taxpayer_id": ids,
            "name": [f"企业{i}" for i in range(n)],
            "unit_id": rng.choice(["CITY", "C1", "C2", "B11", "B21"], n),
            "industry": industry,
            "taxpayer_type": np.where(fixed | (rng.random(n) < 0.3), "small_scale", "general"),
            "collection_method": np.where(fixed, "fixed_quota", "self_assessed"),
            "registered_on": [d.isoformat() for d in registered],
            "deregistered_on": dereg,
            "registered_capital": np.round(10 ** rng.uniform(4, 7, n), 2),
        }
    )
    scale = 10 ** rng.uniform(4, 6.5, n)
    evader = rng.random(n) < 0.3
    rows = []
    for m in range(months):
        p = _month(m)
        alive = reg_month <= m
        sales = scale * rng.lognormal(0, 0.2, n)
        decl = np.where(evader & (rng.random(n) < 0.6), sales * rng.uniform(0.2, 0.7, n), sales)
        decl = np.where(fixed, np.round(scale / 10, -2), decl)
        decl = np.where(rng.random(n) < 0.05, 0.0, decl)
        out_tax = decl * 0.13
        in_tax = out_tax * rng.uniform(0.6, 1.05, n)
        payable = out_tax - in_tax
        filed = [
            (p + dt.timedelta(days=31 + int(x))).replace(day=1) + dt.timedelta(days=int(y))
            for x, y in zip(rng.integers(0, 3, n), rng.integers(5, 40, n), strict=True)
        ]
        df = pd.DataFrame(
            {
                "taxpayer_id": ids,
                "period": _fmt_month(p),
                "sales": np.round(decl, 2),
                "output_tax": np.round(out_tax, 2),
                "input_tax": np.round(in_tax, 2),
                "input_tax_transferred_out": 0.0,
                "tax_payable": np.round(payable, 2),
                "credit_carried_forward": 0.0,
                "filed_on": [f.isoformat() for f in filed],
                "_true_sales": sales,
            }
        )[alive & (rng.random(n) > 0.03)]
        rows.append(df)
    vat = pd.concat(rows, ignore_index=True)
    true_sales = vat.pop("_true_sales")
    # CIT per quarter
    vq = vat.assign(q=pd.to_datetime(vat.period + "-01").dt.to_period("Q").astype(str))
    cit = vq.groupby(["taxpayer_id", "q"], as_index=False).agg(revenue=("sales", "sum"))
    cit["period"] = cit.q.str.replace("Q", "-Q", regex=False)
    cit["cost"] = np.round(cit.revenue * rng.uniform(0.8, 1.1, len(cit)), 2)
    cit["profit"] = np.round(cit.revenue - cit.cost, 2)
    cit["tax_payable"] = np.round(np.maximum(cit.profit, 0) * 0.25, 2)
    qend = pd.PeriodIndex(cit.q, freq="Q").end_time.date
    cit["filed_on"] = [
        (d + dt.timedelta(days=int(x))).isoformat()
        for d, x in zip(qend, rng.integers(10, 30, len(cit)), strict=True)
    ]
    cit = cit.drop(columns="q")
    # invoices: each seller to 1-3 buyers (some outside the registry) per month
    sel = rng.random(len(vat)) < 0.8
    inv = vat[sel][["taxpayer_id", "period"]].rename(columns={"taxpayer_id": "seller_id"})
    amt = true_sales[sel].to_numpy()
    buyers = rng.choice(np.concatenate([ids, ["X001", "X002"]]), len(inv))
    inv = inv.assign(buyer_id=buyers, amount=np.round(amt * rng.uniform(0.5, 1.1, len(inv)), 2))
    inv = inv[inv.seller_id != inv.buyer_id]
    # a fuel seller industry supply
    inv["tax"] = np.round(inv.amount * 0.13, 2)
    inv["count"] = rng.integers(1, 30, len(inv))
    inv = inv.drop_duplicates(["seller_id", "buyer_id", "period"])
    ext = pd.DataFrame(
        {
            "seller_id": "X001",
            "buyer_id": rng.choice(ids, 40),
            "period": [_fmt_month(_month(int(m))) for m in rng.integers(0, months, 40)],
            "amount": -1000.0,
            "tax": -130.0,
            "count": 1,
        }
    )
    inv = pd.concat([inv, ext]).drop_duplicates(["seller_id", "buyer_id", "period"])
    inv = inv[["seller_id", "buyer_id", "period", "amount", "tax", "count"]]
    base_tp = vat[["taxpayer_id", "period"]]
    elec = base_tp.assign(
        kwh=np.round(true_sales.to_numpy() / 20 * rng.lognormal(0, 0.1, len(vat)), 1)
    )
    elec["charge"] = np.round(elec.kwh * 0.6, 2)
    elec = elec[rng.random(len(elec)) < 0.9]
    soc = base_tp.assign(headcount=np.maximum(1, (true_sales.to_numpy() / 30000).astype(int)))
    soc["wages"] = np.round(soc.headcount * 4000.0, 2)
    loc = base_tp.assign(
        tax_type="urban_construction", base=np.maximum(vat.tax_payable.to_numpy(), 0)
    )
    loc["tax_payable"] = np.round(loc.base * 0.07, 2)
    loc["filed_on"] = vat.filed_on.to_numpy()
    loc = loc[rng.random(len(loc)) < 0.9]
    land = base_tp[base_tp.period.str.endswith("-06")].assign(
        tax_type="land_use", base=1000.0, tax_payable=3000.0
    )
    land["filed_on"] = vat.filed_on[base_tp.period.str.endswith("-06")].to_numpy()
    land = land[rng.random(len(land)) < 0.7]
    local = pd.concat([loc, land], ignore_index=True)
    k = max(1, n // 5)
    regs = pd.DataFrame(
        {
            "taxpayer_id": rng.choice(ids, k, replace=False),
            "changed_on": [
                (_month(int(m)) + dt.timedelta(days=5)).isoformat()
                for m in rng.integers(0, months, k)
            ],
            "change_type": rng.choice(["equity_transfer", "legal_rep", "address"], k),
            "amount": np.round(rng.uniform(1e5, 1e6, k), 2),
            "counterparty": "某人",
        }
    )
    regs.loc[regs.change_type != "equity_transfer", "amount"] = None
    prop = pd.DataFrame(
        {
            "taxpayer_id": rng.choice(ids, k, replace=False),
            "event_on": [
                (_month(int(m)) + dt.timedelta(days=3)).isoformat()
                for m in rng.integers(0, months, k)
            ],
            "event": rng.choice(["purchase", "sale", "lease_out"], k),
            "value": np.round(rng.uniform(1e5, 1e7, k), 2),
            "area_m2": np.round(rng.uniform(50, 3000, k), 1),
        }
    )
    industries = pd.DataFrame(
        {
            "industry": list(INDUSTRIES),
            "name": [v[0] for v in INDUSTRIES.values()],
            "parent": None,
            "model": [v[1] for v in INDUSTRIES.values()],
        }
    )
    norms = pd.DataFrame(
        {
            "industry": ["C13", "C13", "C30", "C30", "B06", "B06", "C17", "C17", "F52"],
            "metric": [
                "input_output_ratio",
                "avg_price",
                "loss_rate",
                "avg_price",
                "density_t_per_m3",
                "avg_price",
                "kwh_per_unit",
                "avg_price",
                "tax_burden_warning",
            ],
            "value": [0.65, 2500.0, 0.05, 0.3, 1.3, 400.0, 50.0, 15000.0, 0.004],
            "note": None,
        }
    )
    ops_rows = []
    for code, metrics in (
        ("C13", ("raw_material_t", "output_t")),
        ("C30", ("kilns", "kiln_capacity", "cycles", "stock_t")),
        ("B06", ("mined_volume_m3",)),
    ):
        tp_ = base_tp[base_tp.taxpayer_id.isin(ids[industry == code])]
        for met in metrics:
            val = {
                "raw_material_t": 400.0,
                "output_t": 270.0,
                "kilns": 24.0,
                "kiln_capacity": 10.0,
                "cycles": 4.0,
                "stock_t": 50.0,
                "mined_volume_m3": 1000.0,
            }[met]
            ops_rows.append(
                tp_.assign(
                    metric=met, value=val * rng.uniform(0.8, 1.2, len(tp_)), source="officer"
                )
            )
    ops = pd.concat(ops_rows, ignore_index=True)
    na = max(4, n // 6)
    sel_m = rng.integers(6, months, na)
    aud = pd.DataFrame(
        {
            "case_id": [f"A{i:04d}" for i in range(na)],
            "taxpayer_id": rng.choice(ids, na),
            "selected_on": [(_month(int(m)) + dt.timedelta(days=11)).isoformat() for m in sel_m],
            "selection_reason": rng.choice(["rule", "random", "tip"], na),
            "selection_probability": None,
            "unit_id": "C1",
            "measure": "assessment",
            "closed_on": [(_month(int(m) + 3) + dt.timedelta(days=2)).isoformat() for m in sel_m],
            "outcome": rng.choice(["adjusted", "no_change"], na),
            "tax_recovered": np.round(rng.uniform(0, 1e5, na), 2),
            "late_fees": 0.0,
            "penalties": 0.0,
            "covers_from": None,
            "covers_to": None,
        }
    )
    frames = {
        "units": units,
        "taxpayers": taxpayers,
        "vat_returns": vat,
        "cit_returns": cit,
        "local_tax_returns": local,
        "invoices": inv,
        "electricity": elec,
        "social_insurance": soc,
        "registrations": regs,
        "property": prop,
        "industries": industries,
        "industry_norms": norms,
        "operations": ops,
        "audits": aud,
    }
    return {name: typed_nulls(df) for name, df in frames.items()}


def typed_nulls(df: pd.DataFrame) -> pd.DataFrame:
    """All-null columns get a concrete type (float for numbers, else text) for the engine."""
    out = df.copy()
    for c in out.columns:
        if out[c].isna().all():
            numeric = c in ("selection_probability", "amount", "tax_recovered")
            out[c] = pd.Series(
                [None] * len(out), dtype="float64" if numeric else "str", index=out.index
            )
    return out


def write_world(frames: dict[str, pd.DataFrame], folder: Path) -> Path:
    """Write frames as CSV files (the contract's folder format)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in frames.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    return folder


def empty_frame(table: str) -> pd.DataFrame:
    """A header-only frame of a contract table (text columns, like an empty CSV)."""
    from taxrisk.features.schema import SCHEMAS

    return pd.DataFrame({c: pd.Series([], dtype="str") for c in SCHEMAS[table].column_names})


def tiny_frames(
    taxpayers: list[dict], **tables: list[dict] | pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Hand-built frames: ``taxpayers`` rows get defaults for unspecified columns; every other
    table is given as row dicts (missing nullable columns are null); absent required tables
    are header-only. Optional tables not given are absent."""
    from taxrisk.features.schema import SCHEMAS

    tp_default = {
        "name": "企业",
        "unit_id": "B1",
        "industry": "5190",
        "taxpayer_type": "general",
        "collection_method": "self_assessed",
        "registered_on": "2020-01-01",
        "deregistered_on": None,
        "registered_capital": 100000.0,
    }
    out: dict[str, pd.DataFrame] = {
        "units": pd.DataFrame(
            {
                "unit_id": ["CITY", "C1", "B1"],
                "parent_id": [None, "CITY", "C1"],
                "level": ["city", "county", "branch"],
                "name": ["市局", "县局", "分局"],
                "capacity": [1, 2, 3],
            }
        ),
        "taxpayers": pd.DataFrame([tp_default | t for t in taxpayers]),
    }
    for name, rows in tables.items():
        df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
        for c in SCHEMAS[name].column_names:
            if c not in df.columns:
                df[c] = None
        out[name] = df[list(SCHEMAS[name].column_names)]
    for name, schema in SCHEMAS.items():
        if not schema.optional and name not in out:
            out[name] = empty_frame(name)
    return {k: typed_nulls(v) if len(v) else v for k, v in out.items()}


def months(start: str, n: int) -> list[str]:
    """``n`` consecutive ``YYYY-MM`` periods from ``start``."""
    p = pd.Period(start, freq="M")
    return [str(p + i) for i in range(n)]


def vat_rows(
    tp: str,
    periods: list[str],
    payable: list[float] | float,
    sales: float = 10000.0,
    **extra: object,
) -> list[dict]:
    """VAT returns filed on the 10th of the next month."""
    pays = payable if isinstance(payable, list) else [payable] * len(periods)
    rows = []
    for p, pay in zip(periods, pays, strict=True):
        filed = (pd.Period(p, freq="M") + 1).start_time.date().replace(day=10).isoformat()
        row = {
            "taxpayer_id": tp,
            "period": p,
            "sales": sales,
            "output_tax": sales * 0.13,
            "input_tax": sales * 0.13 - pay,
            "input_tax_transferred_out": 0.0,
            "tax_payable": pay,
            "credit_carried_forward": 0.0,
            "filed_on": filed,
        }
        rows.append(row | extra)
    return rows
