"""Dispatch: one case per taxpayer, allocated to the units within their capacities.

DOMAIN "Unified dispatch": the number of tasks is matched to each unit's capacity, and what
does not fit becomes a lighter measure, never a silent drop.

**The allocation** (:func:`allocate`) maximises the total expected yield (yuan) of the
model-selected cases subject to: each unit ``u`` receives at most its model capacity
(``capacity_u`` minus its exploration slots), each taxpayer at most one case, at one of its
``allowed_units`` (:func:`taxrisk.serving.routing.route`). It is solved as a linear program
by HiGHS (:func:`scipy.optimize.linprog`, sparse constraints; dual simplex without presolve:
on this structure presolve cost more than it saved, 7 s against 1.3 s for the LP of 10^6
taxpayers). Its constraint matrix (one
row per unit, one per taxpayer, one column per allowed (taxpayer, unit) pair) is the
incidence matrix of a bipartite graph, hence totally unimodular: a basic optimal solution is
integral. The solution is checked to be 0/1 within 1e-6 (a mixed-integer solve by
:func:`scipy.optimize.milp` would take over otherwise; the status says so).

*Tie-break*: a case taken by its primary unit is worth ``1 + PRIMARY_PREFERENCE`` (1e-6)
times its expected yield in the objective, one taken by the escalation unit exactly its
expected yield: among equal-yield allocations the one escalating least wins, and the
optimum of the true objective is lost by a relative 1e-6 at most. ``objective`` reports the
true expected yield.

*Shadow price* of unit ``u``: the dual of its capacity row, in yuan of expected yield per
case of capacity: what one more case of capacity at ``u`` would add (0 for a unit with room
to spare). With ties the marginal value is not unique; the LP returns one within its range.

*Small LP at scale* (the candidate set): with ``N_u = cap_u + (sum of cap_v over the units
v that share a candidate with u) + 1``, only the ``N_u`` best pairs at each unit ``u`` (by
objective value; ties by input order) enter the LP. This is safe: solve the LP on the kept
pairs, with duals ``pi_u`` (units) and ``mu_t`` (taxpayers). Take a dropped pair ``(t, u)``.
Each of the ``N_u`` kept candidates at ``u`` can only be assigned to ``u`` or to a unit that
shares candidates with ``u``, so at most ``N_u - 1`` of them are assigned and one, ``s``, is
not. By complementary slackness ``mu_s = 0``, and dual feasibility of ``(s, u)`` gives
``pi_u >= c_su >= c_tu``. So ``(pi, mu)``, with ``mu_t = 0`` for the taxpayers dropped
entirely, is feasible for the dual of the full LP, with the same objective as the restricted
primal optimum: by weak duality that primal (zero on the dropped pairs) is optimal for the
full problem, and ``pi`` are its shadow prices. With ~150 units and K ~ 20,000 cases, 10^6
taxpayers reduce to about 10^5 pairs (``experiments/bench_allocation.py``).

**Exploration.** ``round(exploration_share x total capacity)`` slots (half up) are reserved in
all and apportioned to the units by largest remainder of ``exploration_share x capacity_u``
(:func:`exploration_slots`): the bureau keeps its share even when every unit is small (a
branch of 12 cases has 0.6 of a slot), and large units get their share. After the
LP, each unit draws ``k = min(slots_u, pool_u)`` cases uniformly without replacement
(:func:`numpy.random.Generator.choice`, seeded) from its pool: the candidates whose primary
unit it is and that the LP did not select. Each drawn case has ``selection = "exploration"``
and ``selection_probability = k / pool_u``: the inclusion probability, conditional on not
being model-selected (the model selection being deterministic given the scores), which
weights 1/probability turn into unbiased estimates over the unselected. Unused slots (a pool
smaller than its slots) stay empty. Every exploration case is answered with
``exploration_measure`` (default ``assessment``), whatever its recommended measure: a random
sample estimates the population without bias only if each draw is examined the same way and
its outcome observed (a notice or outreach yields no audit outcome).

**Overflow.** A candidate not assigned whose recommended measure needs an officer
(``officer_measures``, default assessment and audit) gets the lighter measure of
``lighter`` (default audit -> notice, assessment -> notice, notice -> outreach) from its
primary unit: ``selection = "overflow"``. Every other candidate not assigned is
``"not_selected"``: its (light) recommended measure stands, outside capacity. Every input
candidate is in exactly one of model / exploration / overflow / not_selected.

Candidates with a null or non-positive expected yield are never model-selected.

Errors::

    DispatchError (TaxriskError)   candidates or capacities cannot be allocated
    └── UnknownCapacity            an allowed unit has no capacity
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from taxrisk.features.catalog import MEASURES

from taxrisk.errors import TaxriskError

__all__ = [
    "DEFAULT_LIGHTER",
    "DEFAULT_OFFICER_MEASURES",
    "PRIMARY_PREFERENCE",
    "SELECTIONS",
    "Allocation",
    "DispatchError",
    "UnknownCapacity",
    "allocate",
    "exploration_slots",
    "greedy",
]

PRIMARY_PREFERENCE = 1e-6
DEFAULT_OFFICER_MEASURES = ("assessment", "audit")
DEFAULT_LIGHTER: Mapping[str, str] = {
    "audit": "notice",
    "assessment": "notice",
    "notice": "outreach",
}
SELECTIONS = ("model", "exploration", "overflow", "not_selected")
_LEVEL_ORDER = {"city": 0, "county": 1, "branch": 2}
_INTEGRAL_TOL = 1e-6


class DispatchError(TaxriskError):
    """Candidates or capacities cannot be allocated."""


class UnknownCapacity(DispatchError):
    """A candidate's allowed unit has no capacity."""


@dataclass(frozen=True)
class Allocation:
    """The result of a dispatch.

    ``cases``: one row per input candidate, input order: taxpayer_id, unit_id (the unit that
    takes the case; the primary unit for an overflow, null when not selected), selection
    (:data:`SELECTIONS`), selection_probability (exploration only, else null), measure (the
    measure taken), recommended_measure, route_reason, primary_unit, escalated (taken by the
    escalation unit), expected_yield (yuan).

    ``units``: unit_id, level, capacity, exploration_slots, model_capacity, assigned
    (model-selected cases), exploration (drawn cases), pool (exploration pool size),
    assigned_yield (yuan), shadow_price (yuan per case of capacity; null for greedy),
    binding (assigned = model capacity).

    ``objective``: total expected yield of the model-selected cases (yuan). ``status``:
    the solver's message (``"greedy"`` for the baseline). ``solve_seconds``: time in the
    solver; ``seconds``: the whole call. ``n_pairs``: (taxpayer, unit) pairs in the LP.
    """

    cases: pd.DataFrame
    units: pd.DataFrame
    objective: float
    status: str
    solve_seconds: float
    seconds: float
    n_pairs: int


def exploration_slots(capacity: np.ndarray, share: float) -> np.ndarray:
    """Exploration slots per unit (see the module docstring): ``round(share x total
    capacity)`` slots in all (half up), apportioned to the units by largest remainder of
    ``share x capacity_u`` (ties: the larger unit, then unit order), never more than a unit's
    capacity."""
    cap = np.asarray(capacity, dtype=np.int64)
    if not 0.0 <= share <= 1.0:
        raise DispatchError(f"exploration_share must be in [0, 1], got {share}")
    quota = share * cap
    slots = np.floor(quota + 1e-12).astype(np.int64)
    total = int(np.floor(share * cap.sum() + 0.5))
    left = total - int(slots.sum())
    if left > 0:
        frac = quota - slots
        order = np.lexsort((np.arange(len(cap)), -cap, -frac))
        room = [int(i) for i in order if slots[i] < cap[i]][:left]
        slots[room] += 1
    return np.minimum(slots, cap)


# -- inputs ----------------------------------------------------------------------------------


def _units(capacities: pd.Series | pd.DataFrame | Mapping[str, int]) -> pd.DataFrame:
    """unit_id (str), capacity (int64 >= 0), level (str or null), in a stable order."""
    if isinstance(capacities, pd.DataFrame):
        c = capacities.reset_index() if "unit_id" not in capacities.columns else capacities
        u = pd.DataFrame(
            {
                "unit_id": c["unit_id"].astype("str").to_numpy(),
                "capacity": c["capacity"].to_numpy(),
                "level": c["level"].astype("str").to_numpy()
                if "level" in c.columns
                else np.full(len(c), None),
            }
        )
    else:
        s = pd.Series(capacities)
        u = pd.DataFrame(
            {
                "unit_id": s.index.astype("str"),
                "capacity": s.to_numpy(),
                "level": np.full(len(s), None),
            }
        )
    cap = pd.to_numeric(u["capacity"], errors="coerce")
    bad = cap.isna() | (cap < 0) | (cap != np.floor(cap.fillna(0)))
    if bad.any():
        raise DispatchError(
            "capacities: expected integers >= 0, got "
            + ", ".join(
                f"{k}={v!r}" for k, v in zip(u["unit_id"][bad], u["capacity"][bad], strict=True)
            )
        )
    if u["unit_id"].duplicated().any():
        raise DispatchError(
            f"capacities: unit(s) {u['unit_id'][u['unit_id'].duplicated()].tolist()[:5]} twice"
        )
    u["capacity"] = cap.astype("int64")
    u["level"] = u["level"].astype("str")
    return u.reset_index(drop=True)


@dataclass(frozen=True)
class _Prepared:
    taxpayer_id: pd.Series  # str, input order
    expected_yield: np.ndarray  # yuan
    route_reason: pd.Series  # str
    measure: np.ndarray  # index into MEASURES of the recommended measure
    units: pd.DataFrame
    primary: np.ndarray  # unit code of the primary unit, per candidate
    pair_t: np.ndarray  # candidate index of each allowed pair (positive yield only)
    pair_u: np.ndarray  # unit code of each pair
    pair_primary: np.ndarray  # bool: the pair is the primary unit


def _codes(values: np.ndarray | pd.Series, vocabulary: pd.Index) -> tuple[np.ndarray, list[str]]:
    """Position of each value in ``vocabulary`` (-1 when absent), and the absent values."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    where = vocabulary.get_indexer(pd.Index(uniques).astype("str"))
    out = np.where(codes >= 0, where[np.maximum(codes, 0)], -1)
    bad = [str(x) for x in np.asarray(uniques)[where < 0]]
    if (codes < 0).any():
        bad.append("<null>")
    return out, bad


def _prepare(
    candidates: pd.DataFrame,
    capacities: pd.Series | pd.DataFrame | Mapping[str, int],
    officer_measures: Iterable[str],
    lighter: Mapping[str, str],
) -> _Prepared:
    need = ["taxpayer_id", "expected_yield", "primary_unit", "allowed_units"]
    missing = [k for k in need if k not in candidates.columns]
    if missing:
        raise DispatchError(
            f"candidates: missing column(s) {', '.join(missing)} (route them first)"
        )
    for m in officer_measures:
        if m not in lighter:
            raise DispatchError(f"no lighter measure for {m!r}: add it to the overflow mapping")
    bad_light = sorted(f"{k} -> {v}" for k, v in lighter.items() if {k, v} - set(MEASURES))
    if bad_light:
        raise DispatchError(f"overflow mapping: unknown measure(s) in {bad_light}")
    heavier = sorted(
        f"{k} -> {v}" for k, v in lighter.items() if MEASURES.index(v) >= MEASURES.index(k)
    )
    if heavier:
        raise DispatchError(f"overflow mapping: not a lighter measure: {heavier}")
    units = _units(capacities)
    c = candidates.reset_index(drop=True)
    n = len(c)
    tid = c["taxpayer_id"].astype("str")
    if tid.duplicated().any():
        raise DispatchError(
            "candidates: taxpayer_id(s) appear more than once, e.g. "
            + ", ".join(tid[tid.duplicated()].unique()[:5].tolist())
        )
    if "measure" in c.columns:
        measure, bad_m = _codes(c["measure"], pd.Index(MEASURES))
        if bad_m:
            raise DispatchError(f"candidates: unknown measure(s) {sorted(bad_m)}")
    else:
        measure = np.full(n, MEASURES.index("assessment"))
    reason = (
        c["route_reason"].astype("str")
        if "route_reason" in c.columns
        else pd.Series("managing", index=c.index, dtype="str")
    )
    ey = pd.to_numeric(c["expected_yield"], errors="coerce").to_numpy(dtype=float)

    index = pd.Index(units["unit_id"])
    primary, bad_p = _codes(c["primary_unit"], index)
    allowed = c["allowed_units"].tolist()
    lens = np.fromiter((len(a) for a in allowed), dtype=np.int64, count=n)
    flat = np.fromiter(itertools.chain.from_iterable(allowed), dtype=object, count=lens.sum())
    codes, bad_a = _codes(flat, index)
    pair_t = np.repeat(np.arange(n), lens)
    if bad_p or bad_a:
        bad_t = np.unique(np.concatenate([np.flatnonzero(primary < 0), pair_t[codes < 0]]))
        raise UnknownCapacity(
            f"unit(s) {sorted(set(bad_p) | set(bad_a))[:5]} have no capacity, for "
            f"{len(bad_t)} candidate(s): " + ", ".join(tid.to_numpy()[bad_t[:5]].tolist())
        )
    is_primary = codes == primary[pair_t]
    keep = np.isfinite(ey[pair_t]) & (ey[pair_t] > 0)
    return _Prepared(
        taxpayer_id=tid,
        expected_yield=ey,
        route_reason=reason,
        measure=measure,
        units=units,
        primary=primary,
        pair_t=pair_t[keep],
        pair_u=codes[keep],
        pair_primary=is_primary[keep],
    )


# -- the LP ----------------------------------------------------------------------------------


def _candidate_pairs(prep: _Prepared, model_cap: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Indices of the pairs kept in the LP (see "Small LP at scale")."""
    n_units = len(prep.units)
    t, u = prep.pair_t, prep.pair_u
    # units sharing a candidate: pairs (u, v) of the same taxpayer
    order_t = np.argsort(t, kind="stable")
    ts, us = t[order_t], u[order_t]
    longest = int(np.bincount(t).max()) if len(t) else 0
    links = [np.empty((0, 2), dtype=np.int64)]
    for d in range(1, longest):  # pairs d apart within a taxpayer (taxpayers have few units)
        same = ts[d:] == ts[:-d]
        a, b = us[:-d][same], us[d:][same]
        links += [np.column_stack([a, b]), np.column_stack([b, a])]
    pairs = np.concatenate(links)
    keys = np.unique(pairs[:, 0] * n_units + pairs[:, 1])
    src, dst = keys // n_units, keys % n_units
    src, dst = src[src != dst], dst[src != dst]
    shared = np.bincount(src, weights=model_cap[dst], minlength=n_units)
    limit = model_cap + shared.astype(np.int64) + 1
    order = np.lexsort((np.arange(len(t)), -value, u))
    su = u[order]
    starts = np.searchsorted(su, np.arange(n_units), side="left")
    pos = np.arange(len(su)) - starts[su]
    return np.sort(order[pos < limit[su]])


def _solve(
    prep: _Prepared, model_cap: np.ndarray
) -> tuple[np.ndarray, np.ndarray, str, float, int]:
    """Model-selected unit code per candidate (-1: none), shadow prices, status, seconds,
    pairs in the LP."""
    n = len(prep.taxpayer_id)
    n_units = len(prep.units)
    assigned = np.full(n, -1, dtype=np.int64)
    shadow = np.zeros(n_units)
    if len(prep.pair_t) == 0:
        return assigned, shadow, "no candidate with a positive expected yield", 0.0, 0
    ey = prep.expected_yield
    value = ey[prep.pair_t] * np.where(prep.pair_primary, 1.0 + PRIMARY_PREFERENCE, 1.0)
    kept = _candidate_pairs(prep, model_cap, value)
    t, u, v = prep.pair_t[kept], prep.pair_u[kept], value[kept]
    scale = float(v.max())
    # rows: every unit with a pair, then every taxpayer with two or more pairs
    unit_rows, unit_row = np.unique(u, return_inverse=True)
    _, t_row, t_count = np.unique(t, return_inverse=True, return_counts=True)
    multi = t_count >= 2
    multi_row = np.cumsum(multi) - 1
    pair_multi = multi[t_row]
    m = len(kept)
    rows = np.concatenate([unit_row, len(unit_rows) + multi_row[t_row[pair_multi]]])
    cols = np.concatenate([np.arange(m), np.flatnonzero(pair_multi)])
    n_rows = len(unit_rows) + int(multi.sum())
    A = sp.csr_array((np.ones(len(rows)), (rows, cols)), shape=(n_rows, m))
    b = np.concatenate([model_cap[unit_rows], np.ones(int(multi.sum()))]).astype(float)
    t0 = time.perf_counter()
    res = linprog(
        -v / scale,
        A_ub=A,
        b_ub=b,
        bounds=(0.0, 1.0),
        method="highs-ds",
        options={"presolve": False},
    )
    seconds = time.perf_counter() - t0
    if res.status != 0:
        raise DispatchError(f"the allocation LP failed: {res.message}")
    x = np.asarray(res.x)
    status = str(res.message)
    if np.abs(x - np.round(x)).max() > _INTEGRAL_TOL:  # not expected: the matrix is TU
        t0 = time.perf_counter()
        mres = milp(
            -v / scale,
            constraints=LinearConstraint(A, -np.inf, b),
            integrality=np.ones(m),
            bounds=Bounds(0.0, 1.0),
        )
        seconds += time.perf_counter() - t0
        if mres.status != 0 or mres.x is None:
            raise DispatchError(f"the allocation MILP failed: {mres.message}")
        x = np.asarray(mres.x)
        status = f"{status}; fractional LP solution, re-solved as a MILP: {mres.message}"
    chosen = np.round(x).astype(bool)
    assigned[t[chosen]] = u[chosen]
    marg = np.asarray(res.ineqlin.marginals)[: len(unit_rows)]
    shadow[unit_rows] = np.maximum(-marg * scale, 0.0)
    return assigned, shadow, status, seconds, m


# -- exploration, overflow and the result ----------------------------------------------------


def _by_primary(primary: np.ndarray, n_units: int) -> list[np.ndarray]:
    """Candidate indices per primary unit code, in input order."""
    order = np.argsort(primary, kind="stable")
    bounds = np.searchsorted(primary[order], np.arange(n_units + 1))
    return [order[bounds[k] : bounds[k + 1]] for k in range(n_units)]


def _finish(
    prep: _Prepared,
    assigned: np.ndarray,
    slots: np.ndarray,
    shadow: np.ndarray,
    *,
    seed: int | None,
    officer_measures: Iterable[str],
    lighter: Mapping[str, str],
    exploration_measure: str,
    status: str,
    solve_seconds: float,
    started: float,
    n_pairs: int,
) -> Allocation:
    n = len(prep.taxpayer_id)
    units = prep.units.copy()
    n_units = len(units)
    unit_code = assigned.copy()
    model, explore, overflow, rest = range(4)  # positions in SELECTIONS
    selection = np.where(assigned >= 0, model, -1)
    probability = np.full(n, np.nan)
    pool_size = np.zeros(n_units, dtype=np.int64)
    drawn = np.zeros(n_units, dtype=np.int64)
    if slots.any():
        rng = np.random.default_rng(seed)
        for k, members in enumerate(_by_primary(prep.primary, n_units)):
            pool = members[assigned[members] < 0]
            pool_size[k] = len(pool)
            size = int(min(slots[k], len(pool)))
            if size == 0:
                continue
            pick = rng.choice(pool, size=size, replace=False)
            selection[pick] = explore
            probability[pick] = size / len(pool)
            unit_code[pick] = k
            drawn[k] = size
    recommended = prep.measure
    measure = recommended.copy()
    drawn_mask = selection == explore
    measure[drawn_mask] = MEASURES.index(exploration_measure)
    left = selection < 0
    officer = np.isin(recommended, [MEASURES.index(m) for m in officer_measures])
    over = left & officer
    light = np.array([MEASURES.index(lighter.get(m, m)) for m in MEASURES])
    selection[over] = overflow
    measure[over] = light[recommended[over]]
    unit_code[over] = prep.primary[over]
    selection[left & ~officer] = rest

    unit_ids = pd.array(units["unit_id"].to_numpy(dtype=object), dtype="str")
    measures = pd.array(np.asarray(MEASURES, dtype=object), dtype="str")
    out = pd.DataFrame(
        {
            "taxpayer_id": prep.taxpayer_id,
            "unit_id": unit_ids.take(unit_code, allow_fill=True),
            "selection": pd.array(np.asarray(SELECTIONS, dtype=object), dtype="str").take(
                selection
            ),
            "selection_probability": probability,
            "measure": measures.take(measure),
            "recommended_measure": measures.take(recommended),
            "route_reason": prep.route_reason,
            "primary_unit": unit_ids.take(prep.primary),
            "escalated": (assigned >= 0) & (assigned != prep.primary),
            "expected_yield": prep.expected_yield,
        }
    )
    chosen = assigned >= 0
    ey = np.nan_to_num(prep.expected_yield)
    units["exploration_slots"] = slots
    units["model_capacity"] = units["capacity"].to_numpy() - slots
    units["assigned"] = np.bincount(assigned[chosen], minlength=n_units)
    units["exploration"] = drawn
    units["pool"] = pool_size
    units["assigned_yield"] = np.bincount(assigned[chosen], weights=ey[chosen], minlength=n_units)
    units["shadow_price"] = shadow
    units["binding"] = units["assigned"] >= units["model_capacity"]
    return Allocation(
        cases=out,
        units=units,
        objective=float(ey[chosen].sum()),
        status=status,
        solve_seconds=solve_seconds,
        seconds=time.perf_counter() - started,
        n_pairs=n_pairs,
    )


def allocate(
    candidates: pd.DataFrame,
    capacities: pd.Series | pd.DataFrame | Mapping[str, int],
    *,
    exploration_share: float = 0.05,
    seed: int,
    officer_measures: Iterable[str] = DEFAULT_OFFICER_MEASURES,
    lighter: Mapping[str, str] = DEFAULT_LIGHTER,
    exploration_measure: str = "assessment",
) -> Allocation:
    """Allocate the candidates to units by linear programming (see the module docstring).

    ``candidates``: one row per taxpayer, as :func:`taxrisk.serving.routing.route` returns:
    taxpayer_id, expected_yield (yuan), primary_unit, allowed_units (tuple of unit ids);
    optional measure (recommended measure, default ``assessment``) and route_reason.
    ``capacities``: cases per unit per cycle: a Series or mapping unit_id -> int, or a frame
    with unit_id, capacity (and level), e.g. the units table. ``seed``: the exploration draw.
    """
    started = time.perf_counter()
    if exploration_measure not in MEASURES:
        raise DispatchError(f"exploration_measure {exploration_measure!r} is not a measure")
    officer = tuple(officer_measures)
    prep = _prepare(candidates, capacities, officer, lighter)
    cap = prep.units["capacity"].to_numpy(dtype=np.int64)
    slots = exploration_slots(cap, exploration_share)
    assigned, shadow, status, seconds, n_pairs = _solve(prep, cap - slots)
    return _finish(
        prep,
        assigned,
        slots,
        shadow,
        seed=seed,
        officer_measures=officer,
        lighter=lighter,
        exploration_measure=exploration_measure,
        status=status,
        solve_seconds=seconds,
        started=started,
        n_pairs=n_pairs,
    )


def greedy(
    candidates: pd.DataFrame,
    capacities: pd.Series | pd.DataFrame | Mapping[str, int],
    *,
    officer_measures: Iterable[str] = DEFAULT_OFFICER_MEASURES,
    lighter: Mapping[str, str] = DEFAULT_LIGHTER,
) -> Allocation:
    """The baseline: each unit (city first, then counties, then branches; by unit_id within a
    level) takes its best remaining candidates by expected yield (ties by input order), among
    those whose primary unit it is, up to its capacity. No escalation, no exploration; the
    overflow rule is the same as :func:`allocate`'s. ``shadow_price`` is null."""
    started = time.perf_counter()
    officer = tuple(officer_measures)
    prep = _prepare(candidates, capacities, officer, lighter)
    units = prep.units
    n_units = len(units)
    cap = units["capacity"].to_numpy(dtype=np.int64)
    ey = prep.expected_yield
    positive = np.isfinite(ey) & (ey > 0)
    assigned = np.full(len(ey), -1, dtype=np.int64)
    members = _by_primary(prep.primary, n_units)
    rank = [_LEVEL_ORDER.get(str(lv), len(_LEVEL_ORDER)) for lv in units["level"]]
    for k in sorted(range(n_units), key=lambda k: (rank[k], units["unit_id"].iat[k])):
        pool = members[k][positive[members[k]] & (assigned[members[k]] < 0)]
        best = pool[np.argsort(-ey[pool], kind="stable")][: int(cap[k])]
        assigned[best] = k
    return _finish(
        prep,
        assigned,
        np.zeros(n_units, dtype=np.int64),
        np.full(n_units, math.nan),
        seed=None,
        officer_measures=officer,
        lighter=lighter,
        exploration_measure="assessment",
        status="greedy",
        solve_seconds=0.0,
        started=started,
        n_pairs=0,
    )
