"""Benchmark: the LP allocation against the greedy baseline, and the cost of explanations.

    python -m taxrisk.experiments.bench_allocation [--taxpayers 1000000] [--capacity 20000]
        [--counties 15] [--branches 9] [--seed 0] [--explain-rows 10000] [--no-explain]

Allocation: a synthetic province-sized candidate frame: one city bureau, ``--counties``
counties with ``--branches`` branches each (~150 units in 3 levels), capacities summing to
about ``--capacity`` (K), expected yields lognormal (yuan), 5% key taxpayers (annual tax paid
over 1,000,000 yuan: the city), 1% cross-county cases, about 10% complex cases (4 or more
fired indicators, or an expected yield over 500,000 yuan: may go one level up), managed 85%
by branches and 15% by counties. It is routed by :func:`taxrisk.serving.routing.route`, then
allocated by :func:`taxrisk.serving.dispatch.allocate` (without exploration, to compare like
with like, and with the default 5%) and :func:`taxrisk.serving.dispatch.greedy`.

Explanations: a :class:`~taxrisk.training.models.YieldModel` of 300 trees of 15 leaves per
model on ~220 features (synthetic audits), then
:func:`taxrisk.serving.explain.contributions` for one taxpayer (median of 50 calls, ms) and
for ``--explain-rows`` rows.

Prints a table of figures (seconds, yuan).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import pandas as pd
from taxrisk.features.catalog import CATALOG
from taxrisk.serving.dispatch import allocate, greedy
from taxrisk.serving.explain import contributions
from taxrisk.serving.routing import route
from taxrisk.training.models import YieldModel


def units_frame(counties: int, branches: int, capacity: int, seed: int) -> pd.DataFrame:
    """The units: a city, counties and branches, capacities summing to about ``capacity``
    (city 5%, counties 30%, branches 65% of K)."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str | None, str, int]] = [
        ("CITY", None, "city", max(1, int(0.05 * capacity)))
    ]
    county_cap = 0.30 * capacity / counties
    branch_cap = 0.65 * capacity / (counties * branches)
    for c in range(counties):
        cid = f"C{c:02d}"
        rows.append(
            (
                cid,
                "CITY",
                "county",
                int(rng.integers(int(0.6 * county_cap), int(1.4 * county_cap) + 1)),
            )
        )
        for b in range(branches):
            cap = int(rng.integers(int(0.5 * branch_cap), int(1.5 * branch_cap) + 1))
            rows.append((f"{cid}B{b}", cid, "branch", cap))
    u = pd.DataFrame(rows, columns=["unit_id", "parent_id", "level", "capacity"])
    u["name"] = u["unit_id"]
    return u


def candidates_frame(n: int, units: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Synthetic candidates (one per taxpayer) with the columns :func:`route` takes."""
    rng = np.random.default_rng(seed)
    branches = units.loc[units["level"] == "branch", "unit_id"].to_numpy()
    counties = units.loc[units["level"] == "county", "unit_id"].to_numpy()
    by_branch = rng.random(n) < 0.85
    unit = np.where(
        by_branch,
        branches[rng.integers(0, len(branches), n)],
        counties[rng.integers(0, len(counties), n)],
    )
    key = rng.random(n) < 0.05
    tax = np.where(key, rng.lognormal(14.5, 0.8, n) + 1e6, rng.lognormal(9, 1.5, n).clip(0, 9e5))
    ey = rng.lognormal(8.0, 1.6, n) * np.where(key, 8.0, 1.0)
    fired = rng.poisson(1.0, n) + np.where(rng.random(n) < 0.08, 4, 0)
    measure = np.where(
        fired >= 3,
        "assessment",
        np.where(fired >= 1, "notice", "outreach"),
    )
    measure = np.where(rng.random(n) < 0.01, "audit", measure)
    return pd.DataFrame(
        {
            "taxpayer_id": [f"T{i:07d}" for i in range(n)],
            "unit_id": unit,
            "expected_yield": ey,
            "annual_tax_paid": tax,
            "n_fired": fired,
            "cross_county": rng.random(n) < 0.01,
            "measure": measure,
        }
    )


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def model_matrix(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """~220 features named like the catalog's (value, __pct, __fired per indicator, plus
    aggregates and a categorical), and audit labels with a planted signal."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray | pd.Categorical] = {
        "industry": pd.Categorical(rng.choice([f"I{k:02d}" for k in range(20)], n))
    }
    for iid, ind in CATALOG.items():
        v = rng.normal(0, 1, n)
        cols[iid] = v
        if ind.pct:
            cols[f"{iid}__pct"] = pd.Series(v).rank(pct=True).to_numpy()
        cols[f"{iid}__fired"] = (v > 1.2).astype("int8")
    k = 0
    while len(cols) < 221:
        cols[f"agg_{k:03d}"] = rng.lognormal(10, 2, n)
        k += 1
    X = pd.DataFrame(cols, index=pd.Index([f"T{i:06d}" for i in range(n)], name="taxpayer_id"))
    fired = X[[c for c in X.columns if c.endswith("__fired")]].sum(axis=1).to_numpy()
    logit = -1.5 + 0.6 * fired + 0.3 * X["vat_burden"].to_numpy()
    adjusted = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    amount = np.where(adjusted == 1, X["agg_000"].to_numpy() * 0.05 * (1 + fired), 0.0)
    return X, adjusted, amount


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--taxpayers", type=int, default=1_000_000)
    ap.add_argument("--capacity", type=int, default=20_000, help="K, cases per cycle")
    ap.add_argument("--counties", type=int, default=15)
    ap.add_argument("--branches", type=int, default=9, help="branches per county")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--explain-rows", type=int, default=10_000)
    ap.add_argument("--fit-rows", type=int, default=5_000)
    ap.add_argument("--no-explain", action="store_true")
    args = ap.parse_args(argv)

    rows: list[tuple[str, str]] = []
    units = units_frame(args.counties, args.branches, args.capacity, args.seed)
    cands = candidates_frame(args.taxpayers, units, args.seed + 1)
    routed, t_route = timed(route, cands, units)
    rows += [
        ("taxpayers", f"{len(cands):,}"),
        ("units (city/county/branch)", f"{len(units)} ({units['level'].value_counts().to_dict()})"),
        ("capacity K", f"{int(units['capacity'].sum()):,}"),
        ("route reasons", str(routed["route_reason"].value_counts().to_dict())),
        ("complex (may go up)", f"{routed['complex'].mean():.1%}"),
        ("route, s", f"{t_route:.2f}"),
    ]
    lp, t_lp = timed(allocate, routed, units, exploration_share=0.0, seed=args.seed)
    gr, t_gr = timed(greedy, routed, units)
    lp5, t_lp5 = timed(allocate, routed, units, exploration_share=0.05, seed=args.seed)
    binding = lp.units[lp.units["binding"]]
    rows += [
        ("LP pairs (of all)", f"{lp.n_pairs:,} (of {sum(map(len, routed['allowed_units'])):,})"),
        ("allocate: total expected yield, yuan", f"{lp.objective:,.0f}"),
        ("greedy: total expected yield, yuan", f"{gr.objective:,.0f}"),
        ("ratio allocate / greedy", f"{lp.objective / gr.objective:.4f}"),
        ("allocate: escalated cases", f"{int(lp.cases['escalated'].sum()):,}"),
        ("allocate, s (solver s)", f"{t_lp:.2f} ({lp.solve_seconds:.2f})"),
        ("greedy, s", f"{t_gr:.2f}"),
        (
            "allocate 5% exploration: model yield, yuan / s",
            f"{lp5.objective:,.0f} / {t_lp5:.2f}",
        ),
        (
            "exploration cases",
            f"{int(lp5.units['exploration'].sum()):,} "
            f"(selections {lp5.cases['selection'].value_counts().to_dict()})",
        ),
        (
            "shadow price median (binding units), yuan",
            f"{binding['shadow_price'].median():,.0f}",
        ),
        ("LP status", lp.status),
    ]
    if not args.no_explain:
        X, adjusted, amount = model_matrix(args.fit_rows + args.explain_rows, args.seed + 2)
        params = {"n_estimators": 300, "num_leaves": 15}
        fit_X = X.iloc[: args.fit_rows]
        model, t_fit = timed(
            YieldModel(params, params).fit,
            fit_X,
            adjusted[: args.fit_rows],
            amount[: args.fit_rows],
        )
        rest = X.iloc[args.fit_rows :]
        one = rest.iloc[[0]]
        contributions(model, one)  # warm up
        times = []
        for k in range(50):
            _, t = timed(contributions, model, rest.iloc[[k % len(rest)]])
            times.append(t)
        ex, t_bulk = timed(contributions, model, rest)
        t_prep = statistics.median(
            timed(model.prepare, rest.iloc[[k]], allow_extra=True)[1] for k in range(10)
        )
        rows += [
            ("model features / trees per model / leaves", f"{len(X.columns)} / 300 / 15"),
            ("fit, s", f"{t_fit:.1f}"),
            (
                "contributions, 1 taxpayer, ms (median of 50)",
                f"{statistics.median(times) * 1e3:.1f}",
            ),
            ("  of which model.prepare, 1 row, ms (median of 10)", f"{t_prep * 1e3:.1f}"),
            (f"contributions, {len(rest):,} rows, s", f"{t_bulk:.2f}"),
            ("  items rows", f"{len(ex.items):,}"),
        ]
    rows.append(("load average (1, 5, 15 min) at the end", str(os.getloadavg())))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
