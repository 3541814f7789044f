"""The indicator config is validated data: unknown keys and wrong types are errors naming the
key; an override file changes only what it names; a run uses the config it is given."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from factory import world_frames
from taxrisk.features.catalog import CATALOG
from taxrisk.features.config import (
    ConfigError,
    current_config,
    default_config,
    load_config,
    use_config,
)
from taxrisk.features.matrix import build_matrix
from taxrisk.features.tables import Tables


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "over.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_cover_every_indicator() -> None:
    cfg = load_config(indicator_ids=CATALOG)
    assert set(cfg.thresholds) == set(CATALOG)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[shell]\nyoung_month = 12\n", r"over\.toml: shell\.young_month: unknown key"),
        ("[shell]\nyoung_months = 'a year'\n", r"shell\.young_months: Input should be a valid"),
        ("[thresholds]\ntwo_tax = true\n", r"thresholds\.two_tax: Input should be a valid"),
        ("[thresholds]\nno_such = 1.0\n", r"thresholds\.no_such: unknown indicator"),
        ("[models]\nloss_rate = 1.5\n", r"models\.loss_rate: Input should be less than 1"),
        ("[nonsense]\nx = 1\n", r"over\.toml: nonsense: unknown key"),
        ("shell = 3\n", r"shell: expected a table"),
        ("[thresholds\n", r"not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text), indicator_ids=CATALOG)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")


def test_override_changes_only_what_it_names(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, "[thresholds]\ntwo_tax = 0.3\n[shell]\nsurge_ratio = 5\n"))
    base = default_config()
    assert cfg.threshold("two_tax") == 0.3 and cfg.shell.surge_ratio == 5.0
    assert cfg.shell.young_months == base.shell.young_months
    assert {k: v for k, v in cfg.thresholds.items() if k != "two_tax"} == {
        k: v for k, v in base.thresholds.items() if k != "two_tax"
    }


def test_a_run_uses_its_config(tmp_path: Path) -> None:
    """Thresholds are read per run, not at import: the same world fires differently under
    another config given explicitly or installed for the run."""
    tables = Tables.from_frames(world_frames(40, 26, seed=5))
    as_of = dt.date(2023, 12, 10)
    a = build_matrix(tables, as_of)
    strict = load_config(_write(tmp_path, "[thresholds]\nzero_negative_share = 0.0\n"))
    b = build_matrix(tables, as_of, config=strict)
    assert (a["zero_negative_share"].dropna() == b["zero_negative_share"].dropna()).all()
    fires = b["zero_negative_share"].notna() & (b["zero_negative_streak"] < 6)
    assert (b["zero_negative_share__fired"] == fires.astype("int8")).all()
    assert b["zero_negative_share__fired"].sum() > a["zero_negative_share__fired"].sum()
    with use_config(strict):
        assert current_config() is strict
        c = build_matrix(tables, as_of)
    assert current_config() is default_config()
    assert (c["zero_negative_share__fired"] == b["zero_negative_share__fired"]).all()
