"""The industries of the synthetic city and their norms (from the source documents).

Each :class:`Industry` carries the economics the generator draws from (sizes, value added,
margins, tax rates, seasonality, cash share) and, for the physically modelled industries,
the norms of the documents' industry evaluation models (power consumption, input-output,
kiln capacity, volume-density). :func:`industries_table` and :func:`industry_norms_table`
write them as the contract's ``industries`` and ``industry_norms`` tables.

Physical quantities are in tonnes (bricks too: one standard brick weighs about 2.5 kg);
prices in yuan per tonne, excluding VAT.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

__all__ = ["INDUSTRIES", "SECTIONS", "Industry", "industries_table", "industry_norms_table"]


@dataclass(frozen=True)
class Industry:
    """One industry (GB/T 4754 style code) and how its firms behave.

    Money shares are fractions of monthly sales (yuan, excluding VAT).
    ``weight``: relative share of taxpayers. ``median_sales``: median monthly sales of a general
    taxpayer (yuan). ``vat_rate``/``in_rate``: output and typical input VAT rates. ``va``: value
    added share (1 - VAT-able purchases / sales). ``margin``: profit / sales. ``wage``: wages /
    sales. ``b2b``: share of sales invoiced to registered buyers. ``cash``: relative propensity
    to evade (cash-heavy trades are higher). ``season_amp``/``season_peak``: amplitude and peak
    calendar month of seasonality. ``small``/``quota``: shares of small-scale and fixed-quota
    taxpayers. ``ticket``: average invoice amount (yuan). ``kwh_per_yuan``: electricity per yuan
    of sales for the non-physical industries. ``physical``: the model's norms (see module doc).
    """

    code: str
    name: str
    parent: str
    model: str | None
    weight: float
    median_sales: float
    vat_rate: float
    in_rate: float
    va: float
    margin: float
    wage: float
    b2b: float
    cash: float
    season_amp: float
    season_peak: int
    small: float
    quota: float
    ticket: float
    kwh_per_yuan: float
    physical: dict[str, float] = field(default_factory=dict)

    @property
    def burden(self) -> float:
        """Expected VAT burden (VAT payable / sales) of an honest general taxpayer."""
        return self.vat_rate - self.in_rate * (1.0 - self.va)


SECTIONS: dict[str, str] = {
    "B": "采矿业",
    "C": "制造业",
    "E": "建筑业",
    "F": "批发和零售业",
    "H": "住宿和餐饮业",
    "K": "房地产业",
    "L": "租赁和商务服务业",
    "O": "居民服务、修理和其他服务业",
}

_I = Industry
# fmt: off
INDUSTRIES: tuple[Industry, ...] = (
    _I("0610", "烟煤和无烟煤开采洗选(小煤矿)", "B", "power", 0.01, 1.5e+06, 0.13, 0.13, 0.35, 0.1, 0.04, 0.95, 1.2, 0.2, 12, 0.1, 0.0, 80000, 0.0,
       {"kwh_per_unit": 8.0, "wage_per_unit": 23.0, "mineral_fee_rate": 0.01, "avg_price": 600.0}),
    _I("0620", "褐煤开采洗选(井工)", "B", "volume_density", 0.004, 1.2e+06, 0.13, 0.13, 0.35, 0.09, 0.05, 0.95, 1.1, 0.2, 12, 0.05, 0.0, 80000, 0.0,
       {"density_t_per_m3": 1.3, "kwh_per_unit": 9.0, "avg_price": 350.0}),
    _I("1311", "小麦加工(面粉)", "C", "input_output", 0.012, 8e+05, 0.13, 0.13, 0.28, 0.06, 0.03, 0.9, 1.0, 0.15, 7, 0.2, 0.0, 30000, 0.0,
       {"input_output_ratio": 0.735, "input_output_floor": 0.65, "avg_price": 2900.0, "raw_price": 1524.22, "kwh_per_unit": 45.0}),
    _I("1391", "淀粉及淀粉制品制造", "C", "input_output", 0.006, 1e+06, 0.13, 0.09, 0.15, 0.04, 0.04, 0.9, 1.0, 0.1, 11, 0.2, 0.0, 40000, 0.0,
       {"input_output_ratio": 0.68, "input_output_floor": 0.62, "avg_price": 4000.0, "raw_price": 2300.0, "kwh_per_unit": 120.0}),
    _I("1512", "白酒制造", "C", "input_output", 0.006, 1.2e+06, 0.13, 0.13, 0.29, 0.12, 0.06, 0.7, 1.4, 0.35, 1, 0.3, 0.0, 20000, 0.0,
       {"input_output_ratio": 0.4, "input_output_floor": 0.35, "avg_price": 15000.0, "raw_price": 3000.0, "kwh_per_unit": 300.0}),
    _I("1513", "啤酒制造", "C", None, 0.003, 4e+06, 0.13, 0.13, 0.384, 0.08, 0.06, 0.85, 1.0, 0.45, 7, 0.1, 0.0, 50000, 0.05),
    _I("1515", "葡萄酒制造", "C", "input_output", 0.003, 1.5e+06, 0.13, 0.09, 0.4, 0.1, 0.06, 0.75, 1.2, 0.3, 10, 0.3, 0.0, 30000, 0.0,
       {"input_output_ratio": 0.65, "input_output_floor": 0.6, "avg_price": 20000.0, "raw_price": 4000.0, "kwh_per_unit": 200.0}),
    _I("1490", "其他食品制造", "C", None, 0.03, 9e+05, 0.13, 0.11, 0.25, 0.06, 0.08, 0.75, 1.3, 0.25, 9, 0.45, 0.05, 15000, 0.06),
    _I("1711", "棉纺纱加工", "C", "power", 0.015, 2.5e+06, 0.13, 0.11, 0.18, 0.04, 0.08, 0.95, 1.0, 0.1, 10, 0.25, 0.0, 60000, 0.0,
       {"kwh_per_unit": 3200.0, "avg_price": 22000.0}),
    _I("3011", "水泥制造", "C", "power", 0.006, 5e+06, 0.13, 0.13, 0.3, 0.08, 0.05, 0.98, 0.9, 0.3, 9, 0.05, 0.0, 100000, 0.0,
       {"kwh_per_unit": 100.0, "avg_price": 350.0}),
    _I("3031", "粘土砖瓦及建筑砌块制造", "C", "kiln", 0.012, 4e+05, 0.13, 0.13, 0.45, 0.08, 0.12, 0.8, 1.6, 0.35, 9, 0.55, 0.0, 8000, 0.0,
       {"kiln_capacity_t": 30.0, "cycles_per_month": 3.4, "loss_rate": 0.05, "avg_price": 120.0, "kwh_per_unit": 6.0}),
    _I("4700", "房屋建筑业", "E", None, 0.06, 3e+06, 0.09, 0.1, 0.25, 0.05, 0.15, 0.98, 1.1, 0.35, 9, 0.35, 0.0, 200000, 0.01),
    _I("5190", "其他未列明批发业", "F", None, 0.14, 2e+06, 0.13, 0.13, 0.08, 0.02, 0.02, 0.9, 1.0, 0.15, 12, 0.45, 0.05, 30000, 0.003),
    _I("5212", "超级市场零售", "F", None, 0.02, 3e+06, 0.13, 0.12, 0.15, 0.03, 0.06, 0.15, 1.6, 0.2, 1, 0.3, 0.0, 5000, 0.02),
    _I("5299", "超市场内租赁承包经营户", "F", None, 0.05, 1.5e+05, 0.13, 0.13, 0.2, 0.05, 0.08, 0.05, 2.2, 0.25, 1, 0.7, 0.3, 2000, 0.01),
    _I("5251", "药品零售", "F", None, 0.03, 4e+05, 0.13, 0.13, 0.25, 0.06, 0.08, 0.15, 1.6, 0.1, 1, 0.5, 0.15, 2000, 0.015),
    _I("5261", "汽车新车零售", "F", None, 0.015, 6e+06, 0.13, 0.13, 0.05, 0.015, 0.02, 0.6, 1.0, 0.2, 10, 0.1, 0.0, 150000, 0.002),
    _I("8111", "汽车修理与维护", "O", None, 0.04, 2.5e+05, 0.13, 0.13, 0.45, 0.08, 0.2, 0.35, 2.0, 0.1, 1, 0.6, 0.25, 3000, 0.03),
    _I("6210", "正餐服务", "H", None, 0.1, 3e+05, 0.06, 0.09, 0.5, 0.06, 0.25, 0.08, 2.5, 0.2, 2, 0.6, 0.35, 1000, 0.04),
    _I("7010", "房地产开发经营", "K", None, 0.015, 8e+06, 0.09, 0.09, 0.35, 0.15, 0.03, 0.2, 1.3, 0.3, 10, 0.05, 0.0, 300000, 0.002),
    _I("7040", "房地产租赁经营", "K", None, 0.04, 3e+05, 0.09, 0.09, 0.8, 0.3, 0.05, 0.5, 1.8, 0.05, 1, 0.5, 0.2, 20000, 0.004),
    _I("7290", "其他商务服务业", "L", None, 0.18, 5e+05, 0.06, 0.06, 0.55, 0.08, 0.35, 0.7, 1.2, 0.1, 12, 0.4, 0.1, 10000, 0.01),
    _I("8010", "居民服务业(美容美发、洗浴)", "O", None, 0.09, 1e+05, 0.06, 0.06, 0.6, 0.1, 0.3, 0.05, 2.3, 0.15, 1, 0.5, 0.45, 500, 0.04),
)
# fmt: on

#: Industries by code.
BY_CODE: dict[str, Industry] = {i.code: i for i in INDUSTRIES}

#: Upstream industry of each industry in the invoice network (who sells to whom).
UPSTREAM: dict[str, str] = {
    "1311": "5190", "1391": "5190", "1512": "5190", "1513": "5190", "1515": "5190",
    "1490": "1311", "1711": "5190", "3011": "0610", "3031": "0610", "4700": "3011",
    "5190": "1490", "5212": "1490", "5299": "5190", "5251": "5190", "5261": "5190",
    "8111": "5190", "6210": "1311", "7010": "4700", "7040": "4700", "7290": "7290",
    "8010": "5190", "0610": "7290", "0620": "7290",
}  # fmt: skip

_NORM_NOTES: dict[str, str] = {
    "kwh_per_unit": "kWh of electricity per tonne of output (power consumption method)",
    "wage_per_unit": "wages per tonne of output, yuan",
    "mineral_fee_rate": "mineral resource compensation fee, share of sales",
    "avg_price": "average selling price, yuan per tonne, excluding VAT",
    "raw_price": "average raw-material price, yuan per tonne, excluding VAT",
    "input_output_ratio": "tonnes of product per tonne of raw material (industry norm)",
    "input_output_floor": "conservative floor of the input-output ratio used in assessments",
    "density_t_per_m3": "density of the mined material, tonnes per cubic metre",
    "kiln_capacity_t": "typical tonnes fired per kiln hole per cycle",
    "cycles_per_month": "typical firing cycles per kiln hole per month",
    "loss_rate": "share of fired output lost (breakage) before it is finished",
    "tax_burden_avg": "industry average VAT burden: VAT payable / sales of general taxpayers",
    "tax_burden_warning": "warning line of the VAT burden: below it the burden indicator fires",
    "vat_rate": "output VAT rate of general taxpayers",
    "gross_margin": "typical value added / sales",
}


def industries_table() -> pa.Table:
    """The contract's ``industries`` table: the sections, then the industries under them."""
    codes = list(SECTIONS) + [i.code for i in INDUSTRIES]
    names = list(SECTIONS.values()) + [i.name for i in INDUSTRIES]
    parents: list[str | None] = [None] * len(SECTIONS) + [i.parent for i in INDUSTRIES]
    models: list[str | None] = [None for _ in SECTIONS]
    models += [i.model for i in INDUSTRIES]
    return pa.table(
        {
            "industry": pa.array(codes, pa.string()),
            "name": pa.array(names, pa.string()),
            "parent": pa.array(parents, pa.string()),
            "model": pa.array(models, pa.string()),
        }
    )


def warning_line(ind: Industry) -> float:
    """Warning line of the VAT burden: the documents' beer maker warns below the average."""
    return round(ind.burden if ind.code == "1513" else 0.7 * ind.burden, 4)


def industry_norms_table(names: frozenset[str] | None = None) -> pa.Table:
    """The contract's ``industry_norms`` table (industry, metric, value, note).

    ``names``: keep only these metrics (e.g. the contract's own names); None keeps all.
    """
    rows: list[tuple[str, str, float]] = []
    for ind in INDUSTRIES:
        rows.append((ind.code, "tax_burden_avg", round(ind.burden, 4)))
        rows.append((ind.code, "tax_burden_warning", warning_line(ind)))
        rows.append((ind.code, "vat_rate", ind.vat_rate))
        rows.append((ind.code, "gross_margin", ind.va))
        rows.extend((ind.code, k, v) for k, v in ind.physical.items())
    if names is not None:
        rows = [r for r in rows if r[1] in names]
    return pa.table(
        {
            "industry": pa.array([r[0] for r in rows], pa.string()),
            "metric": pa.array([r[1] for r in rows], pa.string()),
            "value": pa.array([float(r[2]) for r in rows], pa.float64()),
            "note": pa.array([_NORM_NOTES.get(r[1]) for r in rows], pa.string()),
        }
    )


def industry_arrays() -> dict[str, np.ndarray]:
    """Per-industry parameters as arrays indexed by industry position in :data:`INDUSTRIES`."""
    out: dict[str, np.ndarray] = {}
    for name in (
        "weight", "median_sales", "vat_rate", "in_rate", "va", "margin", "wage", "b2b",
        "cash", "season_amp", "season_peak", "small", "quota", "ticket", "kwh_per_yuan",
    ):  # fmt: skip
        out[name] = np.array([getattr(i, name) for i in INDUSTRIES], dtype=np.float64)
    out["weight"] = out["weight"] / out["weight"].sum()
    out["burden"] = np.array([i.burden for i in INDUSTRIES])
    out["warning"] = np.array([warning_line(i) for i in INDUSTRIES])
    for key in ("avg_price", "raw_price", "input_output_ratio", "kwh_per_unit", "density_t_per_m3"):
        out[key] = np.array([i.physical.get(key, np.nan) for i in INDUSTRIES])
    out["model"] = np.array([i.model or "" for i in INDUSTRIES])
    return out
