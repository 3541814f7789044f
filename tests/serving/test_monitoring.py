"""Monitoring: profiles, PSI between rounds, selection rates by group."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from taxrisk.serving.monitoring import (
    SHARE_FLOOR,
    MonitoringError,
    profile,
    psi,
    reading,
    selection_rates,
    size_class,
)


def _matrix(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sales = rng.lognormal(13, 1.5, n)
    return pd.DataFrame(
        {
            "sales_12": sales,
            "size_band": np.floor(np.log10(sales / 12 + 1)),
            "ratio": rng.normal(0, 1, n),
            "vat_burden__fired": (rng.random(n) < 0.2).astype("int8"),
            "sparse": np.where(rng.random(n) < 0.9, np.nan, rng.normal(0, 1, n)),
            "constant": np.full(n, 3.0),
            "empty": np.full(n, np.nan),
            "industry": pd.Categorical(rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2])),
            "taxpayer_type": pd.array(rng.choice(["general", "small_scale"], n), dtype="str"),
            "unit_id": pd.Categorical(rng.choice(["C1", "C2", "B11"], n)),
        },
        index=pd.Index([f"T{i:05d}" for i in range(n)], name="taxpayer_id"),
    )


def test_profile_is_strict_json_and_shares_sum_to_one() -> None:
    m = _matrix()
    p = profile(m)
    back = json.loads(json.dumps(p, allow_nan=False))
    assert back == p and p["rows"] == len(m)
    for name, col in p["columns"].items():
        total = sum(col["shares"].values()) if col["kind"] == "categorical" else sum(col["shares"])
        assert total + col["null_share"] == pytest.approx(1.0), name
    ratio = p["columns"]["ratio"]
    assert ratio["kind"] == "numeric" and len(ratio["edges"]) == 9
    assert ratio["edges"] == sorted(ratio["edges"])
    np.testing.assert_allclose(ratio["shares"], 0.1, atol=1e-3)  # deciles
    flag = p["columns"]["vat_burden__fired"]
    # unique edges, each halfway into the gap it sits in (above 1: as far as the gap below)
    assert flag["edges"] == [0.5, 1.5] and len(flag["shares"]) == 3
    assert flag["shares"][2] == 0.0
    assert p["columns"]["constant"]["edges"] == [3.0]
    assert p["columns"]["empty"] == {
        "kind": "numeric",
        "edges": [],
        "shares": [0.0],
        "null_share": 1.0,
    }
    assert p["columns"]["sparse"]["null_share"] == pytest.approx(0.9, abs=0.03)
    ind = p["columns"]["industry"]
    assert ind["kind"] == "categorical" and set(ind["shares"]) == {"A", "B", "C"}
    assert p["columns"]["taxpayer_type"]["kind"] == "categorical"


def test_psi_is_zero_on_the_same_data() -> None:
    m = _matrix()
    out = psi(profile(m), m)
    assert list(out.columns) == ["feature", "psi", "kind", "reading"]
    assert set(out["feature"]) == set(m.columns)
    assert (out["psi"].abs() < 1e-12).all() and (out["reading"] == "stable").all()
    # another sample of the same population: small
    other = psi(profile(m), _matrix(seed=1)).set_index("feature")["psi"]
    assert (other < 0.05).all()


def test_psi_flags_a_shifted_column() -> None:
    m = _matrix()
    shifted = m.assign(ratio=m["ratio"] + 1.0)
    out = psi(profile(m), shifted).set_index("feature")
    assert out.at["ratio", "psi"] > 0.25 and out.at["ratio", "reading"] == "shift"
    assert out.drop(index="ratio")["psi"].max() < 1e-12
    assert out.index[0] == "ratio"  # sorted by descending psi


def test_psi_does_not_flip_on_a_group_constant_column() -> None:
    """An industry median is one value per industry: with the decile edges on those values,
    a change in the last bits (or a small drift) moved whole industries across an edge
    (PSI 2.06, "shift", on this data before the edges moved into the gaps)."""
    rng = np.random.default_rng(5)
    k = 40
    sizes = np.maximum((3000 / np.arange(1, k + 1) ** 1.1).astype(int), 5)  # a few large
    values = rng.permutation(0.05 + 0.01 * np.arange(k))  # gaps of 0.01
    ref = pd.DataFrame({"ind_vat_burden_med": values[np.repeat(np.arange(k), sizes)]})
    prof = profile(ref)
    col = prof["columns"]["ind_vat_burden_med"]
    # the split is the quantiles': every edge halfway between two industries' values
    assert all(abs((e - 0.055) / 0.01 - round((e - 0.055) / 0.01)) < 1e-9 for e in col["edges"])
    for cur in (ref * (1 + 1e-12), ref + 0.004, ref - 0.004):
        assert psi(prof, cur).at[0, "psi"] == 0.0
    # a real shift still reads as one
    moved = psi(prof, ref * 2)
    assert moved.at[0, "psi"] > 0.25 and moved.at[0, "reading"] == "shift"


def test_psi_formula_with_the_floor() -> None:
    ref = pd.DataFrame({"x": np.arange(100, dtype=float)})
    prof = profile(ref)
    # every current value in the top bin: 9 empty bins floored at 1e-4
    cur = pd.DataFrame({"x": np.full(50, 1000.0)})
    r = np.array(prof["columns"]["x"]["shares"])
    assert r.tolist() == pytest.approx([0.1] * 10)
    c = np.array([0.0] * 9 + [1.0])
    rf, cf = np.maximum(r, SHARE_FLOOR), np.maximum(c, SHARE_FLOOR)
    expected = float(np.sum((cf - rf) * np.log(cf / rf)) + 0.0)  # null bins: 0 and 0
    assert psi(prof, cur).at[0, "psi"] == pytest.approx(expected)
    assert math.isfinite(expected) and expected > 2


def test_psi_of_categories_and_nulls() -> None:
    ref = pd.DataFrame({"industry": ["A"] * 50 + ["B"] * 50, "v": [1.0] * 100})
    cur = pd.DataFrame({"industry": ["A"] * 40 + ["B"] * 40 + ["NEW"] * 20, "v": [1.0] * 100})
    cur.loc[:49, "v"] = np.nan  # half of v now null
    out = psi(profile(ref), cur).set_index("feature")
    r = np.array([0.5, 0.5, SHARE_FLOOR, SHARE_FLOOR])  # A, B, NEW (unseen), null
    c = np.array([0.4, 0.4, 0.2, SHARE_FLOOR])
    assert out.at["industry", "psi"] == pytest.approx(float(np.sum((c - r) * np.log(c / r))))
    assert out.at["industry", "kind"] == "categorical"
    # v: the null bin went from 0 to 0.5
    rv = np.array([1.0, SHARE_FLOOR, SHARE_FLOOR])  # (-inf, 1], (1, inf), null
    cv = np.array([0.5, SHARE_FLOOR, 0.5])
    assert out.at["v", "psi"] == pytest.approx(float(np.sum((cv - rv) * np.log(cv / rv))))
    assert out.at["v", "reading"] == "shift"


def test_psi_of_a_score_series_and_missing_columns() -> None:
    rng = np.random.default_rng(3)
    score = pd.Series(rng.lognormal(8, 1, 5000), name="expected_yield")
    prof = profile(score)
    assert list(prof["columns"]) == ["expected_yield"]
    assert psi(prof, score).at[0, "psi"] == pytest.approx(0.0, abs=1e-12)
    assert psi(prof, score * 1.1).at[0, "reading"] in {"stable", "moderate"}
    assert psi(prof, score * 3).at[0, "reading"] == "shift"
    gone = psi(prof, pd.DataFrame({"other": [1.0]}))
    assert math.isnan(gone.at[0, "psi"]) and gone.at[0, "reading"] == "missing"


def test_reading() -> None:
    assert [reading(v) for v in (0.0, 0.099, 0.1, 0.25, 0.2501)] == [
        "stable",
        "stable",
        "moderate",
        "moderate",
        "shift",
    ]


def test_selection_rates_sum_correctly() -> None:
    m = _matrix(n=500)
    m.loc[m.index[:7], "industry"] = np.nan
    chosen = list(m.index[::9])
    out = selection_rates(m, chosen)
    assert list(out.columns) == ["dimension", "group", "population", "selected", "rate"]
    assert set(out["dimension"]) == {"size_class", "industry", "taxpayer_type", "unit_id"}
    for _, g in out.groupby("dimension"):
        assert g["population"].sum() == len(m)
        assert g["selected"].sum() == len(chosen)
    np.testing.assert_allclose(out["rate"], out["selected"] / out["population"])
    ind = out[out["dimension"] == "industry"].set_index("group")
    assert ind.at["unknown", "population"] == 7
    expected_a = int((m["industry"] == "A").sum())
    assert ind.at["A", "population"] == expected_a
    assert ind.at["A", "selected"] == int((m.loc[chosen, "industry"] == "A").sum())
    size = out[out["dimension"] == "size_class"]
    assert size["group"].str.startswith("10^").all()
    # a boolean Series selects the same
    flag = pd.Series(m.index.isin(chosen), index=m.index)
    pd.testing.assert_frame_equal(selection_rates(m, flag), out)
    with pytest.raises(MonitoringError, match="not in the population"):
        selection_rates(m, [*chosen, "ghost"])


def test_size_class_falls_back_to_sales_quintiles() -> None:
    m = _matrix(n=500).drop(columns="size_band")
    sc = size_class(m)
    assert sc.value_counts().to_dict() == {"Q1": 100, "Q2": 100, "Q3": 100, "Q4": 100, "Q5": 100}
    smallest = m["sales_12"].idxmin()
    assert sc[smallest] == "Q1" and sc[m["sales_12"].idxmax()] == "Q5"
    one_band = _matrix(n=50).assign(size_band=4.0)
    assert set(size_class(one_band)) == {"Q1", "Q2", "Q3", "Q4", "Q5"}  # one band says nothing
    with pytest.raises(MonitoringError):
        size_class(pd.DataFrame({"x": [1.0]}))
