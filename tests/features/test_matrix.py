"""The matrix: shape and types, the batch form, leakage-freedom, optional tables switched
off, and the `taxrisk features` command on a generated demo world."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from factory import world_frames, write_world
from taxrisk.features.catalog import CATALOG
from taxrisk.features.matrix import CATEGORICAL, build_matrices, build_matrix, feature_columns
from taxrisk.features.tables import Tables
from test_catalog import _future_changed
from typer.testing import CliRunner

DATES = [dt.date(2023, 11, 30), dt.date(2024, 1, 9), dt.date(2024, 3, 20)]


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return world_frames(60, 30, seed=5)


@pytest.fixture(scope="module")
def batch(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return build_matrices(Tables.from_frames(frames), DATES)


def test_columns_and_types(batch: pd.DataFrame) -> None:
    assert batch.index.names == ["as_of", "taxpayer_id"] and batch.index.is_unique
    assert set(batch.index.get_level_values("as_of")) == set(DATES)
    for c in CATEGORICAL:
        assert str(batch[c].dtype) == "category"
    feats = feature_columns(batch)
    assert "unit_id" not in feats and {"industry", "taxpayer_type", "collection_method"} <= set(
        feats
    )
    for c in feats[3:]:
        assert batch[c].dtype in ("float64", "int8"), c
    fired = [c for c in batch.columns if c.endswith("__fired")]
    assert len(fired) == len(CATALOG)
    assert "sales_month_avg" in batch.columns and "model_gap" in batch.columns


def test_batch_rows_equal_single_builds(
    frames: dict[str, pd.DataFrame], batch: pd.DataFrame
) -> None:
    tables = Tables.from_frames(frames)
    for d in (DATES[2],):
        one = build_matrix(tables, d)
        part = batch.xs(d, level="as_of")
        pd.testing.assert_frame_equal(
            one.sort_index(), part[one.columns].sort_index(), check_categorical=False
        )


def test_leakage_free(frames: dict[str, pd.DataFrame], batch: pd.DataFrame) -> None:
    """Changing or deleting every row dated after the as-of date leaves the matrix as is,
    for the single build and for the batch."""
    d = DATES[1]
    changed = Tables.from_frames(_future_changed(frames, d))
    part = batch.xs(d, level="as_of")
    again = build_matrices(changed, [d]).xs(d, level="as_of")
    pd.testing.assert_frame_equal(part.sort_index(), again.sort_index(), check_categorical=False)


def test_pairs_restrict_the_output(frames: dict[str, pd.DataFrame], batch: pd.DataFrame) -> None:
    want = batch.index[[0, 5, -1]].to_frame(index=False)
    got = build_matrices(Tables.from_frames(frames), DATES, pairs=want)
    assert list(got.index) == list(batch.index[[0, 5, -1]])
    pd.testing.assert_frame_equal(got, batch.loc[got.index], check_categorical=False)


def test_missing_optional_tables_switch_indicators_off(frames: dict[str, pd.DataFrame]) -> None:
    optional = (
        "local_tax_returns",
        "electricity",
        "social_insurance",
        "registrations",
        "property",
        "industries",
        "industry_norms",
        "operations",
    )
    lean = {k: v for k, v in frames.items() if k not in optional}
    m = build_matrix(Tables.from_frames(lean), DATES[2])
    off = m.attrs["switched_off"]
    assert off["electricity_vs_sales"] == "missing optional table electricity"
    assert "two_tax" in off and "kiln_model_gap" in off and "fuel_input" in off
    assert "two_tax__fired" not in m.columns and "vat_burden__fired" in m.columns
    assert m["vat_burden"].notna().any()


def test_demo_world_and_cli(demo_world: Path, tmp_path: Path, workspace: Path) -> None:
    from taxrisk.cli import features as _  # noqa: F401  registers the command
    from taxrisk.cli._app import app

    out = tmp_path / "m.parquet"
    res = CliRunner().invoke(
        app, ["features", str(demo_world), "--as-of", "2024-06-30", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    m = pd.read_parquet(out)
    assert m.columns[0] == "taxpayer_id" and m["taxpayer_id"].is_unique and len(m) > 500
    fired = m[[c for c in m.columns if c.endswith("__fired")]]
    assert fired.to_numpy().sum() > 0
    assert "switched off" in res.output
    # a world without its optional tables
    lean = tmp_path / "lean"
    lean.mkdir()
    for f in demo_world.iterdir():
        if f.is_file() and f.stem in (
            "units",
            "taxpayers",
            "vat_returns",
            "cit_returns",
            "invoices",
            "audits",
        ):
            (lean / f.name).write_bytes(f.read_bytes())
    res = CliRunner().invoke(
        app, ["features", str(lean), "--as-of", "2024-06-30", "--out", str(tmp_path / "lean.csv")]
    )
    assert res.exit_code == 0, res.output
    assert "electricity_vs_sales: missing optional table electricity" in res.output
    assert pd.read_csv(tmp_path / "lean.csv").shape[0] == len(m)


def test_bad_output_extension(tmp_path: Path, workspace: Path) -> None:
    from taxrisk.cli import features as _  # noqa: F401
    from taxrisk.cli._app import app

    folder = write_world(world_frames(10, 14, seed=2), tmp_path / "w")
    res = CliRunner().invoke(
        app, ["features", str(folder), "--as-of", "2023-01-31", "--out", str(tmp_path / "m.xlsx")]
    )
    assert res.exit_code != 0 and ".parquet or .csv" in res.output


def test_same_files_same_matrix_on_many_threads(demo_world: Path) -> None:
    """Two builds of the same data on four threads are bit-identical. Threads add a float
    sum in an order that changes from run to run; unrounded, every rebuild of this world
    differed (a few hundred cells, an industry's median ratio one ulp apart: a PSI of 0.54
    between two scoring runs on the same files), so a re-scored round showed a shift and
    a re-read report other figures. Sums of money are rounded to the fen the data is kept in."""
    import ibis
    from taxrisk.features.loading import load_folder

    con = ibis.duckdb.connect()
    con.raw_sql("SET threads = 4")
    tables = load_folder(demo_world, con=con, as_of=dt.date(2025, 12, 31), profile=False).tables
    first = build_matrix(tables, dt.date(2025, 12, 31))
    assert len(first) > 1000 and first["stranded_share"].notna().sum() > 100
    for _ in range(2):
        pd.testing.assert_frame_equal(
            build_matrix(tables, dt.date(2025, 12, 31)), first, check_exact=True
        )
