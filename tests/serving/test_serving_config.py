"""serving/config.toml as a validated object: defaults, overrides, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from taxrisk.serving.config import ServingConfigError, config_for, load_config

from taxrisk.settings import get_settings


def test_defaults_are_complete() -> None:
    cfg = load_config()
    assert [lv.name for lv in cfg.risk_levels] == ["high", "medium", "low"]
    assert cfg.measures.by_level["high"] == "assessment"
    assert cfg.routing.key_taxpayer_line == 1_000_000.0
    assert cfg.dispatch.exploration_share == 0.05
    assert set(cfg.time_limits) == {"outreach", "guidance", "notice", "assessment", "audit"}


def test_override_file_changes_only_its_keys(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[routing]\nkey_taxpayer_line = 2000000.0\n[dispatch]\nexploration_share = 0.1\n")
    cfg = load_config(f)
    assert cfg.routing.key_taxpayer_line == 2_000_000.0 and cfg.dispatch.exploration_share == 0.1
    assert cfg.routing.cross_county_share == load_config().routing.cross_county_share
    # through the settings (TAXRISK_SERVING_CONFIG)
    assert config_for(get_settings(serving_config=f)).dispatch.exploration_share == 0.1


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[routing]\nkey_line = 5\n", "routing.key_line"),  # unknown key
        ("[dispatch]\nexploration_share = 'lots'\n", "dispatch.exploration_share"),  # type
        ("[dispatch]\nexploration_share = 1.5\n", "dispatch.exploration_share"),  # range
        ("[measures]\noverflow = { audit = 'audit', assessment = 'notice' }\n", "measures"),
        ("[time_limits]\naudit = 0\n", "time_limits"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, where: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ServingConfigError, match=where.replace(".", r"\.")):
        load_config(f)
