"""World styles (issue 11, items 7 and 8): what each one changes, and what it keeps."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from taxrisk.experiments.demo import DemoDataError, generate
from taxrisk.experiments.demo.styles import CONTRACT_NORMS, STANDARD, STYLES

AS_OF = dt.date(2025, 12, 31)
N, SEED = 1200, 17


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("styles")
    out = {}
    for name in ("standard", "shifted", "drift"):
        generate(root / name, taxpayers=N, months=36, seed=SEED, style=name)
        out[name] = root / name
    return out


def _truth(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "truth" / "gaps.parquet")


def test_default_style_is_standard(tmp_path: Path, worlds: dict[str, Path]) -> None:
    generate(tmp_path / "d", taxpayers=N, months=36, seed=SEED)
    for f in ("vat_returns.parquet", "audits.parquet", "truth/gaps.parquet"):
        assert (tmp_path / "d" / f).read_bytes() == (worlds["standard"] / f).read_bytes()
    assert STYLES["standard"] == STANDARD
    with pytest.raises(DemoDataError, match="--style"):
        generate(tmp_path / "x", taxpayers=50, style="nope")


@pytest.mark.parametrize("style", ["standard", "shifted", "drift"])
def test_truth_is_what_was_evaded(worlds: dict[str, Path], style: str) -> None:
    t = _truth(worlds[style])
    under = t["tax_declared"] <= t["tax_due"]
    assert ((t["tax_declared"] + t["gap"] - t["tax_due"]).abs()[under] < 0.02).all()
    assert (t["gap"] >= 0).all()
    assert t.loc[t["gap"] > 0, "scheme"].notna().all()
    assert t.loc[t["gap"] == 0, "scheme"].isna().all()


def test_shifted_world_uses_only_the_contracts_names_and_loads_clean(
    worlds: dict[str, Path],
) -> None:
    from taxrisk.features.loading import load_folder

    folder = worlds["shifted"]
    norms = pd.read_parquet(folder / "industry_norms.parquet")
    assert set(norms["metric"]) == CONTRACT_NORMS
    ops = pd.read_parquet(folder / "operations.parquet")
    assert set(ops["metric"]) <= {"raw_material_t", "output_t", "stock_t", "kilns",
                                  "kiln_capacity", "cycles", "mined_volume_m3"}  # fmt: skip
    assert not (folder / "property.parquet").exists()
    assert not (folder / "social_insurance.parquet").exists()
    loaded = load_folder(folder, as_of=AS_OF)
    assert set(loaded.missing_optional) == {"property", "social_insurance"}
    assert all(not c.quarantined for c in loaded.counts.values())
    # another audit policy: a larger random stratum with its own selection probability
    a = pd.read_parquet(folder / "audits.parquet")
    s = pd.read_parquet(worlds["standard"] / "audits.parquet")
    rnd = a[a["selection_reason"] == "random"]
    assert set(rnd["selection_probability"]) == {0.005}
    assert len(rnd) > 1.5 * (s["selection_reason"] == "random").sum()
    # and another scheme mix
    mix = _truth(folder).groupby("scheme")["gap"].sum() / _truth(folder)["gap"].sum()
    std = (
        _truth(worlds["standard"]).groupby("scheme")["gap"].sum()
        / _truth(worlds["standard"])["gap"].sum()
    )
    assert (mix.reindex(std.index, fill_value=0) - std).abs().sum() > 0.1


def test_drift_keeps_the_history_and_brings_a_scheme_no_past_audit_saw(
    worlds: dict[str, Path],
) -> None:
    drift, std = _truth(worlds["drift"]), _truth(worlds["standard"])
    before = "2025-01"  # the drift window: the last 12 months
    old_d = drift[drift["period"] < before].reset_index(drop=True)
    old_s = std[std["period"] < before].reset_index(drop=True)
    pd.testing.assert_frame_equal(old_d, old_s)
    new = drift[drift["scheme"] == "personal_account_sales"]
    assert not new.empty and (new["period"] >= before).all()
    assert new["gap"].sum() > 0.1 * drift.loc[drift["period"] >= before, "gap"].sum()
    assert "personal_account_sales" not in set(std["scheme"].dropna())
    # no audit selected before the window covers a month of the new scheme
    audits = pd.read_parquet(worlds["drift"] / "audits.parquet")
    early = audits[pd.to_datetime(audits["selected_on"]) < pd.Timestamp(before + "-01")]
    assert (early["covers_to"] < before).all()
    # the mix moves: the standard schemes' share of the last 12 months' gap falls
    last = drift[drift["period"] >= before]
    last_std = std[std["period"] >= before]
    share = last.groupby("scheme")["gap"].sum() / last["gap"].sum()
    share_std = last_std.groupby("scheme")["gap"].sum() / last_std["gap"].sum()
    assert share.get("cash_sales", 0.0) < share_std.get("cash_sales", 0.0)


def test_cli_style_option(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from taxrisk.cli import app

    runner = CliRunner()
    out = tmp_path / "w"
    res = runner.invoke(app, ["demo-data", "--out", str(out), "--taxpayers", "60", "--months",
                              "12", "--style", "shifted"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "style shifted" in res.output.replace("\n", " ")
    assert not (out / "property.parquet").exists() and (out / "vat_returns.parquet").exists()
    res = runner.invoke(app, ["demo-data", "--out", str(out), "--style", "bogus"])
    assert res.exit_code != 0
