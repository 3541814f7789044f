"""`taxrisk indicators`: the catalog listed and exported; the run's indicator config."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from taxrisk.features.catalog import CATALOG, RECORD_FIELDS
from taxrisk.features.config import current_config, default_config
from typer.testing import CliRunner

from taxrisk.cli import app

runner = CliRunner()


def test_lists_every_indicator() -> None:
    r = runner.invoke(app, ["indicators"], env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    for ind_id in CATALOG:
        assert ind_id in r.output


def test_exports_csv_and_json(tmp_path: Path) -> None:
    out = tmp_path / "catalog.csv"
    r = runner.invoke(app, ["indicators", "--format", "csv", "--out", str(out)])
    assert r.exit_code == 0, r.output
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [x["id"] for x in rows] == list(CATALOG)
    assert set(rows[0]) == set(RECORD_FIELDS)
    assert all(x["basis"] and x["guide_zh"] and x["name_zh"] for x in rows)
    r = runner.invoke(app, ["indicators", "--format", "json"])
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    two_tax = next(x for x in data if x["id"] == "two_tax")
    assert two_tax["threshold"] == default_config().threshold("two_tax")
    assert two_tax["tables"] == "vat_returns local_tax_returns" and two_tax["classic"] is True


def test_the_config_file_reaches_the_export_and_bad_keys_fail(tmp_path: Path) -> None:
    over = tmp_path / "over.toml"
    over.write_text("[thresholds]\ntwo_tax = 0.25\n", encoding="utf-8")
    r = runner.invoke(app, ["indicators", "--format", "json", "--config", str(over)])
    assert next(x for x in json.loads(r.stdout) if x["id"] == "two_tax")["threshold"] == 0.25
    r = runner.invoke(app, ["--indicator-config", str(over), "indicators", "--format", "json"])
    assert next(x for x in json.loads(r.stdout) if x["id"] == "two_tax")["threshold"] == 0.25
    bad = tmp_path / "bad.toml"
    bad.write_text("[shell]\nyoung = 3\n", encoding="utf-8")
    r = runner.invoke(app, ["indicators", "--config", str(bad)])
    assert r.exit_code != 0 and "shell.young: unknown key" in str(r.exception)
    # each command installs its own config: one without the option is back on the defaults
    r = runner.invoke(app, ["indicators", "--format", "json"])
    assert next(x for x in json.loads(r.stdout) if x["id"] == "two_tax")["threshold"] == 0.5
    assert current_config() is default_config()
