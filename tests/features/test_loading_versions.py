"""Validation is point in time (issue 11.2): an amended return is a later version of the same
key, not a duplicate. At each as-of date the latest version known then is used, so a training
example built before the amendment sees the original, and one built after sees the amendment.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from factory import world_frames, write_world
from loading_world import base_world, quarantine_rows, write_folder
from taxrisk.features.loading import load_folder
from taxrisk.features.matrix import build_matrices, build_matrix
from taxrisk.features.quality import build_report

D1 = dt.date(2023, 9, 15)  # information date 2023-08-31: the original is known, not the amendment
D2 = dt.date(2023, 12, 15)  # information date 2023-11-30: the amendment is known
AMENDED_ON = "2023-10-20"


def _amendment(row: dict[str, str]) -> dict[str, str]:
    return {
        **row,
        "sales": "1500",
        "output_tax": "195",
        "tax_payable": "195",
        "filed_on": "2024-05-02",
    }


def test_amended_return_is_a_version_not_a_duplicate(tmp_path: Path) -> None:
    world = base_world()
    original = world["vat_returns"][1]  # T1 2024-02, filed 2024-03-15
    world["vat_returns"].append(_amendment(original))
    result = load_folder(
        write_folder(tmp_path / "d", world),
        as_of=dt.date(2024, 6, 30),
        quarantine_dir=tmp_path / "q",
    )
    counts = result.counts["vat_returns"]
    assert counts.quarantined == {} and counts.rows_used == counts.rows_in
    assert counts.superseded == 1  # the original, replaced at the as-of date
    tables = result.tables

    def t1_feb(at: dt.date) -> list[float]:
        t = tables.known("vat_returns", at)
        t = t.filter((t.taxpayer_id == "T1") & (t.period == dt.date(2024, 2, 1)))
        return sorted(t.sales.to_pyarrow().to_pylist())

    assert t1_feb(dt.date(2024, 3, 14)) == []
    assert t1_feb(dt.date(2024, 3, 15)) == [float(original["sales"])]
    assert t1_feb(dt.date(2024, 5, 1)) == [float(original["sales"])]
    assert t1_feb(dt.date(2024, 5, 2)) == [1500.0]
    assert t1_feb(dt.date(2025, 1, 1)) == [1500.0]
    report = build_report(result, as_of=dt.date(2024, 6, 30))
    assert report["tables"]["vat_returns"]["superseded"] == 1
    # without an as-of date every replaced version is counted
    assert load_folder(write_folder(tmp_path / "e", world)).counts["vat_returns"].superseded == 1


def test_two_versions_filed_the_same_day_are_duplicates(tmp_path: Path) -> None:
    """Two amendments filed on one day conflict: both are quarantined (none is trusted over
    the other), and from that day the key has no trusted version, so the original stops too."""
    world = base_world()
    original = world["vat_returns"][1]
    world["vat_returns"] += [_amendment(original), {**_amendment(original), "sales": "1600"}]
    q = tmp_path / "quarantine o'k"  # a quote and a space: SQL quoting of paths
    result = load_folder(write_folder(tmp_path / "d it's", world), quarantine_dir=q)
    assert result.counts["vat_returns"].quarantined == {"duplicate_key": 2}
    rows = quarantine_rows(q / "vat_returns.csv")
    assert [r["filed_on"] for r in rows] == ["2024-05-02", "2024-05-02"]
    t = result.tables.known("vat_returns", dt.date(2024, 4, 1))
    assert (
        t.filter((t.taxpayer_id == "T1") & (t.period == dt.date(2024, 2, 1)))
        .count()
        .to_pyarrow()
        .as_py()
        == 1
    )
    t = result.tables.known("vat_returns", dt.date(2024, 6, 1))
    assert (
        t.filter((t.taxpayer_id == "T1") & (t.period == dt.date(2024, 2, 1)))
        .count()
        .to_pyarrow()
        .as_py()
        == 0
    )


def test_versions_of_cit_and_local_tax_returns(tmp_path: Path) -> None:
    world = base_world()
    for table in ("cit_returns", "local_tax_returns"):
        if world.get(table):
            world[table].append({**world[table][0], "filed_on": "2025-01-20"})
    result = load_folder(write_folder(tmp_path / "d", world))
    for table in ("cit_returns", "local_tax_returns"):
        if world.get(table):
            assert result.counts[table].quarantined == {}, table
            assert result.counts[table].superseded == 1, table


# ------------------------------------------------------------------------------------------
# Through the feature matrix: the training example before the amendment sees the original


@pytest.fixture(scope="module")
def amended(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    frames = world_frames(60, 30, seed=5)
    vat = frames["vat_returns"]
    tp = frames["taxpayers"].set_index("taxpayer_id")
    active = tp[
        (tp["registered_on"] < "2022-06-01")
        & (tp["deregistered_on"].isna() | (tp["deregistered_on"] > "2024-06-30"))
    ].index
    rows = vat[
        vat["taxpayer_id"].isin(active)
        & (vat["period"] == "2023-06")
        & (vat["filed_on"] < "2023-08-31")
        & (vat["sales"].astype(float) > 0)
    ]
    assert len(rows), "the factory world has no suitable return"
    i = rows.index[0]
    original = vat.loc[i]
    amendment = original.copy()
    for c in ("sales", "output_tax"):
        amendment[c] = float(original[c]) * 3
    amendment["tax_payable"] = float(original["tax_payable"]) + 2 * float(original["output_tax"])
    amendment["filed_on"] = AMENDED_ON
    root = tmp_path_factory.mktemp("amended")
    both = {**frames, "vat_returns": pd.concat([vat, amendment.to_frame().T], ignore_index=True)}
    only_amendment = {
        **frames,
        "vat_returns": pd.concat([vat.drop(index=i), amendment.to_frame().T], ignore_index=True),
    }
    return {
        "taxpayer": str(original["taxpayer_id"]),
        "both": write_world(both, root / "both"),
        "original": write_world(frames, root / "original"),
        "amendment": write_world(only_amendment, root / "amendment"),
    }


def _matrix(folder: object, at: dt.date) -> pd.DataFrame:
    assert isinstance(folder, Path)
    return build_matrix(load_folder(folder).tables, at).sort_index()


def test_matrix_before_the_amendment_sees_the_original(amended: dict[str, object]) -> None:
    loaded = load_folder(amended["both"])  # type: ignore[arg-type]
    assert loaded.counts["vat_returns"].quarantined == {}
    batch = build_matrices(loaded.tables, [D1, D2])  # the training set's many-date path
    tp = amended["taxpayer"]
    for at, same_as, differs_from in ((D1, "original", "amendment"), (D2, "amendment", "original")):
        want = _matrix(amended[same_as], at)
        single = build_matrix(loaded.tables, at).sort_index()
        pd.testing.assert_frame_equal(single, want, check_categorical=False)
        part = batch.xs(at, level="as_of")[want.columns].sort_index()
        pd.testing.assert_frame_equal(part, want, check_categorical=False, check_names=False)
        other = _matrix(amended[differs_from], at)
        # and the other version would have given this taxpayer other features
        with pytest.raises(AssertionError):
            pd.testing.assert_series_equal(single.loc[tp], other.loc[tp], check_categorical=False)
