"""The matrix is unchanged by performance work: a small committed world's matrices (one
as-of date, and a batch of three) are compared column by column with reference matrices
produced by the code at the branch point of the speed work (commit e90634a), before any
optimisation; regenerated once since, for issue 11 item 3 (a taxpayer's audits, registry
events and property read at the as-of date itself, and ``land_use_tax`` on land held a whole
year): the regenerated reference differs from the old one only in those sources' columns,
``land_tax_per_m2`` and its industry median, and the three registry-event indicators.

Counts and flags must be equal exactly, floats to 1e-9 relative, or 1e-12 absolute for values
near zero (the reference was written before sums of money were rounded to the fen, when
DuckDB's parallel float sums, added in a varying order, left a cancelling sum a few 1e-16
from zero: seen on ``vat_cit_revenue_log`` and ``stranded_share``). Regenerate
the reference only when a change is *meant* to alter the matrix (a new indicator, a fixed
formula), never to make a speed change pass:

    .venv/bin/python tests/features/test_matrix_identity.py --write
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from taxrisk.features.loading import load_folder
from taxrisk.features.matrix import build_matrices, build_matrix

DATA = Path(__file__).parent / "data"
#: 400 taxpayers x 24 months: ``taxrisk demo-data --taxpayers 400 --months 24 --seed 7``
#: (truth/ left out)
WORLD = DATA / "identity_world"
AS_OF = dt.date(2025, 12, 31)
BATCH = [dt.date(2025, 3, 14), dt.date(2025, 7, 31), dt.date(2025, 12, 31)]
REF_SINGLE = DATA / "identity_single.parquet"
REF_BATCH = DATA / "identity_batch.parquet"


def _matrices() -> tuple[pd.DataFrame, pd.DataFrame]:
    tables = load_folder(WORLD, as_of=AS_OF).tables
    single = build_matrix(tables, AS_OF)
    batch = build_matrices(tables, BATCH)
    return single, batch


def _flat(m: pd.DataFrame) -> pd.DataFrame:
    """Index as columns, categories as text, rows in key order (for Parquet and comparison)."""
    out = m.reset_index()
    if "as_of" in out.columns:
        out["as_of"] = pd.to_datetime(out["as_of"]).dt.strftime("%Y-%m-%d")
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(str)
    keys = [c for c in ("as_of", "taxpayer_id") if c in out.columns]
    return out.sort_values(keys).reset_index(drop=True)


def _assert_same(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert list(got.columns) == list(ref.columns)
    assert len(got) == len(ref)
    for c in ref.columns:
        g, r = got[c], ref[c]
        if pd.api.types.is_float_dtype(r):
            gv, rv = g.to_numpy(dtype="float64"), r.to_numpy(dtype="float64")
            assert (np.isnan(gv) == np.isnan(rv)).all(), f"{c}: nulls differ"
            ok = ~np.isnan(rv)
            np.testing.assert_allclose(gv[ok], rv[ok], rtol=1e-9, atol=1e-12, err_msg=c)
        else:
            assert g.dtype == r.dtype, f"{c}: {g.dtype} != {r.dtype}"
            assert g.astype(str).tolist() == r.astype(str).tolist(), f"{c}: values differ"


@pytest.fixture(scope="module")
def matrices() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _matrices()


def test_single_matrix_unchanged(matrices: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    single, _ = matrices
    ref = pd.read_parquet(REF_SINGLE)
    assert ref["taxpayer_id"].nunique() > 300  # the reference is a real matrix
    _assert_same(_flat(single), ref)


def test_batch_matrix_unchanged(matrices: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, batch = matrices
    ref = pd.read_parquet(REF_BATCH)
    assert ref["as_of"].nunique() == len(BATCH)
    _assert_same(_flat(batch), ref)


def test_the_comparison_can_fail(matrices: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """A one-ulp-above-tolerance change of one float, or one flipped flag, is caught."""
    ref = pd.read_parquet(REF_SINGLE)
    got = _flat(matrices[0])
    floats = [c for c in ref.columns if pd.api.types.is_float_dtype(ref[c])]
    col = next(c for c in floats if ref[c].notna().any() and (ref[c].abs() > 1).any())
    row = ref[col].abs().idxmax()
    bad = got.copy()
    bad.loc[row, col] = bad.loc[row, col] * (1 + 1e-7)
    with pytest.raises(AssertionError):
        _assert_same(bad, ref)
    flag = next(c for c in ref.columns if c.endswith("__fired"))
    bad = got.copy()
    bad.loc[0, flag] = 1 - bad.loc[0, flag]
    with pytest.raises(AssertionError):
        _assert_same(bad, ref)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    s, b = _matrices()
    _flat(s).to_parquet(REF_SINGLE, index=False)
    _flat(b).to_parquet(REF_BATCH, index=False)
    print(REF_SINGLE, len(s), REF_BATCH, len(b))
