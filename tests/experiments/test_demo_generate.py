"""Generator behaviour: determinism, chunking, dropping optional tables, CSV, bad arguments."""

from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path

import pytest
from taxrisk.experiments import demo
from taxrisk.experiments.demo import DemoDataError, generate

generate_mod = importlib.import_module("taxrisk.experiments.demo.generate")


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_world(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", taxpayers=300, months=14, seed=3)
    generate(tmp_path / "b", taxpayers=300, months=14, seed=3)
    generate(tmp_path / "c", taxpayers=300, months=14, seed=4)
    fa, fb, fc = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert fa == fb
    assert len(fa) == 15  # 14 contract tables + truth/gaps
    assert fa["vat_returns.parquet"] != fc["vat_returns.parquet"]
    assert fa["truth/gaps.parquet"] != fc["truth/gaps.parquet"]
    assert a["tables"]["taxpayers"] == 300
    assert a["as_of"] == "2025-12-31"


def test_chunks_in_parallel_give_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generate_mod, "CHUNK_SIZE", 120)
    generate(tmp_path / "one", taxpayers=300, months=13, seed=5, workers=1)
    generate(tmp_path / "two", taxpayers=300, months=13, seed=5, workers=2)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_drop_optional_tables(tmp_path: Path) -> None:
    from taxrisk.features.loading import load_folder

    out = tmp_path / "w"
    summary = generate(out, taxpayers=200, months=12, seed=1, drop=("electricity", "operations"))
    assert not (out / "electricity.parquet").exists()
    assert not (out / "operations.parquet").exists()
    assert "electricity" not in summary["tables"]
    result = load_folder(out, as_of=dt.date(2025, 12, 31))
    assert set(result.missing_optional) == {"electricity", "operations"}
    with pytest.raises(DemoDataError, match="only optional tables"):
        generate(out, taxpayers=200, months=12, seed=1, drop=("vat_returns",))


def test_csv_world_loads_clean(tmp_path: Path) -> None:
    from taxrisk.features.loading import load_folder

    out = tmp_path / "csv"
    generate(out, taxpayers=200, months=12, seed=2, fmt="csv", end="2024-06")
    assert (out / "truth" / "gaps.csv").exists()
    assert (
        (out / "vat_returns.csv").read_text(encoding="utf-8").startswith('"taxpayer_id","period"')
    )
    result = load_folder(out, as_of=dt.date(2024, 6, 30))
    assert all(c.rows_quarantined == 0 for c in result.counts.values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"taxpayers": 5}, "--taxpayers"), ({"months": 6}, "--months"), ({"end": "2025-13"}, "--end"),
     ({"fmt": "xlsx"}, "--format")],
)  # fmt: skip
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(DemoDataError, match=message):
        generate(tmp_path, **kwargs)


def test_planted_ids_exported() -> None:
    assert demo.PLANTED["flour_mill"]["taxpayer_id"] == "TP00000001"
    assert {"flour_mill", "brick_works", "beer_maker"} == set(demo.PLANTED)


def test_cli_demo_data(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from taxrisk.cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["demo-data", "--out", str(out), "--taxpayers", "150", "--months", "12",
                                      "--seed", "9", "--drop", "property"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "invoices.parquet").exists() and not (out / "property.parquet").exists()
    assert "evaders" in result.output and "planted flour_mill: TP00000001" in result.output
    bad = CliRunner().invoke(app, ["demo-data", "--out", str(out), "--months", "3"])
    assert bad.exit_code != 0
