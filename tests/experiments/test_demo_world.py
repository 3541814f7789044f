"""The synthetic city (session fixture ``demo_world``): tables, schema, truth, audits, as-of rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from taxrisk.features.schema import SCHEMAS

AS_OF = dt.date(2025, 12, 31)


def read(world: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(world / f"{name}.parquet")


def test_every_contract_table_and_truth_present(demo_world: Path) -> None:
    for name in SCHEMAS:
        assert (demo_world / f"{name}.parquet").exists(), name
        assert pq.read_metadata(demo_world / f"{name}.parquet").num_rows > 0, name
    assert (demo_world / "truth" / "gaps.parquet").exists()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_conformance(demo_world: Path, name: str) -> None:
    schema = SCHEMAS[name]
    df = read(demo_world, name)
    assert list(df.columns) == list(schema.column_names)
    assert not df.duplicated(list(schema.key)).any(), "key not unique"
    for col in schema.columns:
        s = df[col.name]
        if not col.nullable:
            assert s.notna().all(), f"{name}.{col.name} has nulls"
        if col.allowed is not None:
            assert set(s.dropna().unique()) <= set(col.allowed), f"{name}.{col.name}"
        if col.nonneg:
            assert (s.dropna() >= 0).all(), f"{name}.{col.name} negative"
        if col.kind == "month":
            assert s.str.fullmatch(r"\d{4}-(0[1-9]|1[0-2])").all()
        if col.kind == "quarter":
            assert s.str.fullmatch(r"\d{4}-Q[1-4]").all()


def test_loader_quarantines_nothing(demo_world: Path) -> None:
    from taxrisk.features.loading import load_folder

    result = load_folder(demo_world, as_of=AS_OF)
    assert set(result.counts) == set(SCHEMAS)
    assert result.missing_optional == []
    for name, counts in result.counts.items():
        assert counts.quarantined == {}, (name, counts.quarantined)
        assert counts.rows_in == counts.rows_used > 0
    # returns of December 2025 are filed in 2026: present, but not yet known at the as-of date
    assert result.counts["vat_returns"].not_yet_known > 0


def test_foreign_keys_resolve(demo_world: Path) -> None:
    tp = read(demo_world, "taxpayers")
    units = read(demo_world, "units")
    ids = set(tp.taxpayer_id)
    for name in ("vat_returns", "cit_returns", "local_tax_returns", "electricity", "social_insurance",
                 "registrations", "property", "operations", "audits"):  # fmt: skip
        assert set(read(demo_world, name).taxpayer_id) <= ids, name
    assert set(tp.unit_id) <= set(units.unit_id)
    assert set(units.parent_id.dropna()) <= set(units.unit_id)
    inv = read(demo_world, "invoices")
    outsiders = set(inv.seller_id) - ids
    assert outsiders and not any(o.startswith("TP") for o in outsiders)
    assert (inv.amount < 0).any(), "some red-letter credits"


def test_truth_is_consistent(demo_world: Path) -> None:
    g = read(demo_world, "truth/gaps")
    assert not g.duplicated(["taxpayer_id", "period"]).any()
    assert (g.gap >= 0).all()
    assert np.allclose(g.gap, np.maximum(g.tax_due - g.tax_declared, 0.0), atol=0.011)
    under = g.tax_declared <= g.tax_due
    assert np.allclose(g.tax_declared[under] + g.gap[under], g.tax_due[under], atol=0.011)
    assert (g.scheme.isna() == (g.gap == 0)).all()
    # truth rows are the active taxpayer-months: one per VAT-filing month at least
    v = read(demo_world, "vat_returns")
    keys = set(zip(g.taxpayer_id, g.period, strict=True))
    assert all(k in keys for k in zip(v.taxpayer_id, v.period, strict=True))


def test_evasion_is_a_varied_minority(demo_world: Path) -> None:
    g = read(demo_world, "truth/gaps")
    evaders = g[
        g.scheme.notna() & ~g.scheme.isin(["honest_error", "non_filing"])
    ].taxpayer_id.unique()
    share = len(evaders) / read(demo_world, "taxpayers").shape[0]
    assert 0.05 < share < 0.16
    schemes = set(g.scheme.dropna())
    assert {"cash_sales", "fake_invoices", "unrecorded_purchases", "inflated_inputs", "shell_invoicing",
            "advance_receipts", "quota_exceed", "honest_error"} <= schemes  # fmt: skip
    # cash-heavy trades evade more than wholesale
    tp = read(demo_world, "taxpayers").set_index("taxpayer_id")
    ev = tp.index.isin(evaders)
    by = pd.Series(ev, index=tp.index).groupby(tp.industry).mean()
    assert by[["6210", "8010", "5299", "8111"]].mean() > by[["5190", "7290"]].mean()


def test_returns_respect_the_as_of_rule(demo_world: Path) -> None:
    v = read(demo_world, "vat_returns")
    period_end = (pd.to_datetime(v.period + "-01") + pd.offsets.MonthEnd(0)).dt.date
    filed = pd.to_datetime(v.filed_on).dt.date
    assert (filed > period_end).all()
    late = (pd.to_datetime(filed) - pd.to_datetime(period_end)).dt.days > 45
    assert 0.01 < late.mean() < 0.1
    c = read(demo_world, "cit_returns")
    q_end = pd.PeriodIndex(c.period.str.replace("-", ""), freq="Q").end_time.date
    assert (pd.to_datetime(c.filed_on).dt.date.values > q_end).all()


def test_audit_history_has_real_practice_bias(demo_world: Path) -> None:
    a = read(demo_world, "audits")
    reasons = a.selection_reason.value_counts(normalize=True)
    assert reasons["rule"] > 0.5
    assert {"random", "tip", "campaign"} <= set(reasons.index)
    rnd = a[a.selection_reason == "random"]
    assert rnd.selection_probability.notna().all()
    assert a[a.selection_reason != "random"].selection_probability.isna().all()
    closed = a[a.closed_on.notna()]
    days = (pd.to_datetime(closed.closed_on) - pd.to_datetime(closed.selected_on)).dt.days
    assert days.between(55, 370).all()
    assert (pd.to_datetime(closed.closed_on).dt.date <= AS_OF).all()
    open_ = a[a.closed_on.isna()]
    assert len(open_) > 0 and open_.outcome.isna().all() and open_.tax_recovered.isna().all()
    assert (closed[closed.outcome == "no_change"].tax_recovered == 0).all()
    assert (closed[closed.outcome == "adjusted"].tax_recovered > 0).all()
    assert (a.covers_from <= a.covers_to).all()
    # honest taxpayers mostly end no_change; evaders are adjusted more often
    g = read(demo_world, "truth/gaps")
    ev = set(g[g.scheme.notna() & (g.scheme != "honest_error")].taxpayer_id)
    is_ev = closed.taxpayer_id.isin(ev)
    adj = closed.outcome == "adjusted"
    assert adj[~is_ev].mean() < 0.5 < adj[is_ev].mean() + 0.3
    assert adj[is_ev].mean() > adj[~is_ev].mean()
    # auditors find only part of the gap
    assert closed.tax_recovered.sum() < g.gap.sum()


def test_units_capacity_is_one_to_three_percent(demo_world: Path) -> None:
    units = read(demo_world, "units")
    tp = read(demo_world, "taxpayers")
    active = tp.deregistered_on.isna().sum()
    assert 0.01 <= units.capacity.sum() / active <= 0.03
    assert (units.level == "city").sum() == 1
    assert set(tp.unit_id) & set(units[units.level == "branch"].unit_id)


def test_honest_look_alikes_fire_naive_rules(demo_world: Path) -> None:
    """Many honest taxpayers have long zero/negative filing streaks (exempt, exporters, start-ups)."""
    v = read(demo_world, "vat_returns")
    g = read(demo_world, "truth/gaps")
    zero = v.assign(z=v.tax_payable <= 0).groupby("taxpayer_id").z.sum()
    flagged = set(zero[zero >= 6].index)
    ev = set(g[g.scheme.notna() & (g.scheme != "honest_error")].taxpayer_id)
    assert len(flagged - ev) > 2 * len(flagged & ev)
    assert (v.credit_carried_forward > 0).mean() > 0.02
