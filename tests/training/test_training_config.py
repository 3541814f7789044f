"""The training config: validated, one source of truth per default, every documented value
accepted."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from taxrisk.training.config import DEFAULT_PATH, ConfigError, TrainingConfig, load_config


def _write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "over.toml"
    f.write_text(text, encoding="utf-8")
    return f


def test_defaults_are_the_toml_file() -> None:
    raw = tomllib.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    cfg = load_config()
    assert cfg.snapshot == raw["training"]["snapshot"]
    assert cfg.min_examples == raw["training"]["min_examples"]
    assert cfg.min_adjusted == raw["training"]["min_adjusted"]
    assert cfg.lightgbm_params["num_leaves"] == raw["lightgbm"]["num_leaves"]
    assert cfg.search_space["learning_rate"] == raw["search"]["learning_rate"]
    assert cfg.labels.metric_months == raw["labels"]["metric_months"]


def test_no_default_outside_the_toml_file() -> None:
    # the models carry types and ranges only: a key missing from the file is an error
    raw = tomllib.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    del raw["training"]["min_examples"]
    with pytest.raises(Exception, match="min_examples"):
        TrainingConfig.model_validate(raw)


@pytest.mark.parametrize("snapshot", ["exact", "month_end", "quarter_end"])
def test_every_documented_snapshot_is_accepted(tmp_path: Path, snapshot: str) -> None:
    cfg = load_config(_write(tmp_path, f'[training]\nsnapshot = "{snapshot}"\n'))
    assert cfg.snapshot == snapshot


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"training\.snapshots"):
        load_config(_write(tmp_path, '[training]\nsnapshots = "exact"\n'))
    with pytest.raises(ConfigError, match=r"lightgbm\.num_leaf"):
        load_config(_write(tmp_path, "[lightgbm]\nnum_leaf = 7\n"))
    with pytest.raises(ConfigError, match="modelling"):
        load_config(_write(tmp_path, "[modelling]\nx = 1\n"))


def test_wrong_type_or_value_is_an_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"training\.validation_share.*'0.25'"):
        load_config(_write(tmp_path, '[training]\nvalidation_share = "0.25"\n'))
    with pytest.raises(ConfigError, match=r"training\.snapshot.*weekly"):
        load_config(_write(tmp_path, '[training]\nsnapshot = "weekly"\n'))
    with pytest.raises(ConfigError, match=r"bias\.method"):
        load_config(_write(tmp_path, '[bias]\nmethod = "magic"\n'))
    with pytest.raises(ConfigError, match=r"training\.default_trials"):
        load_config(_write(tmp_path, "[training]\ndefault_trials = 2.5\n"))
    with pytest.raises(ConfigError, match=r"validation\.closure_quantile"):
        load_config(_write(tmp_path, "[validation]\nclosure_quantile = 1.5\n"))
    with pytest.raises(ConfigError, match=r"search\.num_leaves"):
        load_config(_write(tmp_path, "[search]\nnum_leaves = [31, 4]\n"))


def test_an_override_changes_only_its_keys(tmp_path: Path) -> None:
    base = load_config()
    cfg = load_config(_write(tmp_path, "[bias]\nmax_weight = 5.0\n"))
    assert cfg.max_weight == 5.0 and cfg.bias_method == base.bias_method
    assert cfg.replace("training", seed=7).seed == 7
    with pytest.raises(ConfigError, match="seed"):
        cfg.replace("training", seed="seven")


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(_write(tmp_path, "[training\n"))
