"""Dispatch: the LP allocation within capacities, exploration, overflow, and the baseline."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from taxrisk.serving.dispatch import (
    PRIMARY_PREFERENCE,
    SELECTIONS,
    Allocation,
    DispatchError,
    UnknownCapacity,
    allocate,
    exploration_slots,
    greedy,
)

UNITS = pd.DataFrame(
    {
        "unit_id": ["CITY", "C1", "C2", "B11"],
        "parent_id": [None, "CITY", "CITY", "C1"],
        "level": ["city", "county", "county", "branch"],
        "name": ["市局", "一县", "二县", "一所"],
        "capacity": [2, 1, 3, 1],
    }
)
PARENT = {"CITY": None, "C1": "CITY", "C2": "CITY", "B11": "C1"}


def _cases(rows: list[tuple[str, float, str, bool, str]]) -> pd.DataFrame:
    """(taxpayer_id, expected_yield, primary unit, may escalate, measure) -> candidates."""
    out = []
    for tid, ey, unit, esc, measure in rows:
        parent = PARENT[unit]
        allowed = (unit, parent) if esc and parent else (unit,)
        out.append(
            {
                "taxpayer_id": tid,
                "expected_yield": ey,
                "primary_unit": unit,
                "allowed_units": allowed,
                "route_reason": "managing" if unit != "CITY" else "key_taxpayer",
                "measure": measure,
            }
        )
    return pd.DataFrame(out)


def _binding_world() -> pd.DataFrame:
    """C1 (capacity 1) has three big complex cases that may go up to the city; the city
    (capacity 2) has one small case of its own."""
    return _cases(
        [
            ("c1_a", 90_000.0, "C1", True, "assessment"),
            ("c1_b", 80_000.0, "C1", True, "audit"),
            ("c1_c", 70_000.0, "C1", True, "assessment"),
            ("city_a", 10_000.0, "CITY", False, "assessment"),
            ("c2_a", 5_000.0, "C2", False, "notice"),
            ("c2_b", 4_000.0, "C2", False, "assessment"),
            ("b11_a", 3_000.0, "B11", True, "assessment"),
            ("b11_b", 2_000.0, "B11", True, "notice"),
            ("b11_c", 1_000.0, "B11", False, "outreach"),
            ("zero", 0.0, "C2", False, "assessment"),
        ]
    )


def _check_capacity(alloc: Allocation, capacity: pd.Series) -> None:
    taken = alloc.cases[alloc.cases["selection"].isin(["model", "exploration"])]
    counts = taken["unit_id"].value_counts()
    for unit, cap in capacity.items():
        assert counts.get(unit, 0) <= cap, unit
    units = alloc.units.set_index("unit_id")
    assert (units["assigned"] + units["exploration"] <= units["capacity"]).all()
    assert (units["assigned"] <= units["model_capacity"]).all()


def test_allocation_beats_greedy_when_capacities_bind() -> None:
    cands = _binding_world()
    lp = allocate(cands, UNITS, exploration_share=0.0, seed=1)
    base = greedy(cands, UNITS)
    cap = UNITS.set_index("unit_id")["capacity"]
    _check_capacity(lp, cap)
    _check_capacity(base, cap)
    # greedy: the city takes its own small case and leaves a slot idle; C1 takes one
    g = base.cases.set_index("taxpayer_id")
    assert g.loc[g["selection"] == "model"].index.tolist() == [
        "c1_a",
        "city_a",
        "c2_a",
        "c2_b",
        "b11_a",
    ]
    assert base.objective == pytest.approx(90_000 + 10_000 + 5_000 + 4_000 + 3_000)
    # the LP sends C1's second case up to the city: strictly more expected yield
    a = lp.cases.set_index("taxpayer_id")
    assert a.at["c1_b", "unit_id"] == "CITY" and bool(a.at["c1_b", "escalated"])
    assert a.at["c1_a", "unit_id"] == "C1"
    # B11's case escalates to nobody: C1 is full with a bigger one
    assert a.at["b11_a", "unit_id"] == "B11"
    assert a.at["c1_c", "unit_id"] == "CITY" and a.at["city_a", "selection"] == "overflow"
    assert lp.objective == pytest.approx(base.objective - 10_000 + 80_000 + 70_000)
    assert lp.objective > base.objective
    assert lp.status.startswith("Optimization terminated successfully")


def _objective_with(cands: pd.DataFrame, unit: str, capacity: int) -> float:
    units = UNITS.assign(capacity=np.where(UNITS["unit_id"] == unit, capacity, UNITS["capacity"]))
    return allocate(cands, units, exploration_share=0.0, seed=1).objective


def test_shadow_prices() -> None:
    cands = _binding_world()
    lp = allocate(cands, UNITS, exploration_share=0.0, seed=1)
    units = lp.units.set_index("unit_id")
    price, binding = units["shadow_price"], units["binding"]
    # C2 has 3 slots and 2 positive cases: not binding, worth nothing more
    assert not binding["C2"] and price["C2"] == 0.0
    assert binding["CITY"] and binding["C1"] and binding["B11"]
    # the dual is the marginal value of capacity: between what one more case of capacity
    # brings and what one less costs (the objective is concave in each capacity)
    for unit in ["CITY", "C1", "B11"]:
        cap = int(units.at[unit, "capacity"])
        more = _objective_with(cands, unit, cap + 1) - lp.objective
        less = lp.objective - _objective_with(cands, unit, cap - 1)
        assert more > 0
        assert more * (1 - 1e-5) <= price[unit] <= less * (1 + 1e-5), unit
    # one more slot at B11 takes b11_b (2,000); one less loses b11_a (3,000)
    assert 2_000 * (1 - 1e-5) <= price["B11"] <= 3_000 * (1 + 1e-5)
    assert greedy(cands, UNITS).units["shadow_price"].isna().all()


def _brute_force(cands: pd.DataFrame, capacity: dict[str, int]) -> float:
    best = 0.0
    options = [[None, *a] for a in cands["allowed_units"]]
    ey = cands["expected_yield"].to_numpy()
    for combo in itertools.product(*options):
        used: dict[str, int] = {}
        for u in combo:
            if u is not None:
                used[u] = used.get(u, 0) + 1
        if all(n <= capacity[u] for u, n in used.items()):
            best = max(best, sum(e for e, u in zip(ey, combo, strict=True) if u is not None))
    return best


@pytest.mark.parametrize("seed", range(8))
def test_lp_is_optimal_on_tiny_instances(seed: int) -> None:
    rng = np.random.default_rng(seed)
    units = list(PARENT)
    rows = [
        (
            f"T{i}",
            float(rng.choice([rng.lognormal(9, 1), 1000.0])),  # ties happen too
            str(rng.choice(units)),
            bool(rng.random() < 0.6),
            "assessment",
        )
        for i in range(8)
    ]
    cands = _cases(rows)
    capacity = {u: int(rng.integers(0, 3)) for u in units}
    lp = allocate(cands, pd.Series(capacity), exploration_share=0.0, seed=0)
    best = _brute_force(cands, capacity)
    assert lp.objective == pytest.approx(best, rel=PRIMARY_PREFERENCE * 2, abs=1e-6)
    assert lp.objective >= greedy(cands, pd.Series(capacity)).objective - 1e-6
    _check_capacity(lp, pd.Series(capacity))


def _large(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    units = pd.DataFrame(
        {
            "unit_id": ["CITY", "C1", "C2", "C3", "B11", "B12", "B21", "B31"],
            "parent_id": [None, "CITY", "CITY", "CITY", "C1", "C1", "C2", "C3"],
            "level": ["city"] + ["county"] * 3 + ["branch"] * 4,
            "name": list("abcdefgh"),
            "capacity": [30, 20, 15, 10, 25, 25, 20, 15],
        }
    )
    parent = dict(zip(units["unit_id"], units["parent_id"], strict=True))
    primary = rng.choice(
        units["unit_id"].to_numpy(), n, p=[0.05, 0.1, 0.1, 0.1, 0.2, 0.2, 0.15, 0.1]
    )
    esc = rng.random(n) < 0.15
    cands = pd.DataFrame(
        {
            "taxpayer_id": [f"T{i:05d}" for i in range(n)],
            "expected_yield": rng.lognormal(8, 1.5, n),
            "primary_unit": primary,
            "allowed_units": [
                (p, parent[p]) if e and pd.notna(parent[p]) else (p,)
                for p, e in zip(primary, esc, strict=True)
            ],
            "measure": rng.choice(["outreach", "notice", "assessment", "audit"], n),
        }
    )
    return cands, units


def test_restricted_lp_is_optimal_for_the_full_problem() -> None:
    """The kept pairs are far fewer than all pairs, and the LP's duals are feasible for the
    full problem with the same objective: so the restricted optimum is the full optimum."""
    cands, units = _large(4000, seed=5)
    lp = allocate(cands, units, exploration_share=0.0, seed=0)
    all_pairs = sum(len(a) for a in cands["allowed_units"])
    assert 0 < lp.n_pairs < all_pairs / 5
    price = lp.units.set_index("unit_id")["shadow_price"]
    cap = lp.units.set_index("unit_id")["model_capacity"]
    # dual objective: sum cap x price + sum over taxpayers of max(0, best value - price)
    mu = []
    for ey, allowed, primary in zip(
        cands["expected_yield"], cands["allowed_units"], cands["primary_unit"], strict=True
    ):
        vals = [ey * (1 + PRIMARY_PREFERENCE * (u == primary)) - price[u] for u in allowed]
        mu.append(max(0.0, *vals))
    dual = float((cap * price).sum() + sum(mu))
    chosen = lp.cases[lp.cases["selection"] == "model"]
    primal = float(
        (
            chosen["expected_yield"]
            * np.where(chosen["unit_id"] == chosen["primary_unit"], 1 + PRIMARY_PREFERENCE, 1.0)
        ).sum()
    )
    assert dual == pytest.approx(primal, rel=1e-6)
    assert lp.objective >= greedy(cands, units).objective


def test_every_candidate_lands_in_exactly_one_outcome() -> None:
    cands, units = _large(3000, seed=2)
    alloc = allocate(cands, units, exploration_share=0.1, seed=7)
    c = alloc.cases
    assert list(c["taxpayer_id"]) == list(cands["taxpayer_id"])  # none dropped, none added
    assert set(c["selection"]) == set(SELECTIONS)
    counts = c["selection"].value_counts()
    assert counts.sum() == len(cands)
    u = alloc.units
    assert (
        counts["model"] == u["assigned"].sum() and counts["exploration"] == u["exploration"].sum()
    )
    _check_capacity(alloc, units.set_index("unit_id")["capacity"])
    # overflow: every unassigned case needing an officer, with a lighter measure
    officer = c["recommended_measure"].isin(["assessment", "audit"])
    taken = c["selection"].isin(["model", "exploration"])
    assert ((c["selection"] == "overflow") == (officer & ~taken)).all()
    over = c[c["selection"] == "overflow"]
    assert (over["measure"] == "notice").all() and over["unit_id"].notna().all()
    assert (over["unit_id"] == over["primary_unit"]).all()
    rest = c[c["selection"] == "not_selected"]
    assert (rest["measure"] == rest["recommended_measure"]).all() and rest["unit_id"].isna().all()
    assert rest["recommended_measure"].isin(["outreach", "notice"]).all()
    model = c[c["selection"] == "model"]
    assert (model["measure"] == model["recommended_measure"]).all()
    assert model["selection_probability"].isna().all()


def test_custom_overflow_mapping() -> None:
    cands = _binding_world()
    alloc = allocate(
        cands,
        UNITS.assign(capacity=0),
        exploration_share=0.0,
        seed=1,
        officer_measures=("notice", "assessment", "audit"),
        lighter={"audit": "assessment", "assessment": "notice", "notice": "outreach"},
    )
    c = alloc.cases.set_index("taxpayer_id")
    assert (c["selection"] != "model").all() and alloc.objective == 0.0
    assert c.at["c1_b", "measure"] == "assessment"  # audit -> assessment
    assert c.at["c1_a", "measure"] == "notice"
    assert c.at["c2_a", "measure"] == "outreach" and c.at["c2_a", "selection"] == "overflow"
    assert c.at["b11_c", "selection"] == "not_selected"
    with pytest.raises(DispatchError, match="no lighter measure for 'audit'"):
        allocate(cands, UNITS, seed=1, lighter={"assessment": "notice"})


def test_exploration_draw() -> None:
    cands, units = _large(3000, seed=3)
    alloc = allocate(cands, units, exploration_share=0.1, seed=11)
    u = alloc.units.set_index("unit_id")
    # largest remainder: round(10% of the total) in all, each unit floor or ceil of its quota
    quota = 0.1 * u["capacity"]
    assert u["exploration_slots"].sum() == int(np.floor(0.1 * u["capacity"].sum() + 0.5))
    assert (
        (u["exploration_slots"] >= np.floor(quota)) & (u["exploration_slots"] <= np.ceil(quota))
    ).all()
    c = alloc.cases
    ex = c[c["selection"] == "exploration"]
    model_ids = set(c.loc[c["selection"] == "model", "taxpayer_id"])
    for unit, row in u.iterrows():
        mine = ex[ex["unit_id"] == unit]
        assert len(mine) == row["exploration_slots"]  # pools are large here
        assert (mine["primary_unit"] == unit).all()
        pool = cands[(cands["primary_unit"] == unit) & ~cands["taxpayer_id"].isin(model_ids)]
        assert row["pool"] == len(pool)
        np.testing.assert_allclose(mine["selection_probability"], len(mine) / len(pool))
    # every exploration case is examined the same way, whatever its recommended measure
    assert (ex["measure"] == "assessment").all()
    assert ex["recommended_measure"].nunique() > 1
    # the random draw is not the model's: it reaches low-yield taxpayers
    assert ex["expected_yield"].median() < c.loc[c["selection"] == "model", "expected_yield"].min()


def test_deterministic_for_a_seed() -> None:
    cands, units = _large(2000, seed=4)
    one = allocate(cands, units, exploration_share=0.1, seed=3)
    two = allocate(cands, units, exploration_share=0.1, seed=3)
    other = allocate(cands, units, exploration_share=0.1, seed=4)
    pd.testing.assert_frame_equal(one.cases, two.cases)
    pd.testing.assert_frame_equal(one.units, two.units)
    drawn = one.cases["selection"] == "exploration"
    assert not drawn.equals(other.cases["selection"] == "exploration")
    # the model selection does not depend on the seed
    assert (one.cases["selection"] == "model").equals(other.cases["selection"] == "model")


def test_small_pool_takes_everyone_with_probability_one() -> None:
    cands = _cases(
        [(f"T{i}", 1000.0 - i, "C2", False, "assessment") for i in range(21)]
    )  # C2: capacity 20 -> 1 exploration slot, 19 model cases, a pool of 2
    alloc = allocate(cands, pd.Series({"C2": 20}), exploration_share=0.05, seed=0)
    c = alloc.cases.set_index("taxpayer_id")
    assert (c["selection"] == "model").sum() == 19
    ex = c[c["selection"] == "exploration"]
    assert len(ex) == 1 and ex["selection_probability"].iloc[0] == pytest.approx(0.5)
    alloc = allocate(cands.iloc[:19], pd.Series({"C2": 20}), exploration_share=0.05, seed=0)
    assert (alloc.cases["selection"] == "model").all()  # nothing left to draw
    assert alloc.units["exploration"].iloc[0] == 0


def test_exploration_slots_rule() -> None:
    cap = np.array([0, 1, 9, 10, 19, 20, 30, 100])
    # 9 of 189 slots in all; remainders .95 (19) and .5 (30 before 10: the larger unit)
    assert exploration_slots(cap, 0.05).tolist() == [0, 0, 0, 0, 1, 1, 2, 5]
    assert exploration_slots(cap, 0.01).tolist() == [0, 0, 0, 0, 0, 0, 1, 1]
    # small units only: the bureau still keeps its share (5% of 60 = 3 slots)
    assert exploration_slots(np.full(5, 12), 0.05).tolist() == [1, 1, 1, 0, 0]
    assert exploration_slots(cap, 0.0).tolist() == [0] * 8
    assert exploration_slots(cap, 1.0).tolist() == cap.tolist()
    with pytest.raises(DispatchError):
        exploration_slots(cap, 1.5)


def test_input_errors() -> None:
    cands = _binding_world()
    with pytest.raises(UnknownCapacity, match="B11"):
        allocate(cands, UNITS[UNITS["unit_id"] != "B11"], seed=0)
    with pytest.raises(DispatchError, match="more than once"):
        allocate(pd.concat([cands, cands.iloc[:1]]), UNITS, seed=0)
    with pytest.raises(DispatchError, match="integers >= 0"):
        allocate(cands, UNITS.assign(capacity=-1), seed=0)
    with pytest.raises(DispatchError, match="allowed_units"):
        allocate(cands.drop(columns="allowed_units"), UNITS, seed=0)
