"""``taxrisk validate``: exit codes, report and quarantine files in the workspace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taxrisk.cli import app, main

UNITS = "unit_id,parent_id,level,name,capacity\nC,,city,市局,10\n"
TAXPAYERS = (
    "taxpayer_id,name,unit_id,industry,taxpayer_type,collection_method,registered_on,"
    "deregistered_on,registered_capital\n"
    "T1,甲,C,C13,general,self_assessed,2020-01-01,,1000\n"
    "T2,乙,C,C13,general,self_assessed,2020-01-01,,1000\n"
)
VAT_HEADER = (
    "taxpayer_id,period,sales,output_tax,input_tax,input_tax_transferred_out,tax_payable,"
    "credit_carried_forward,filed_on\n"
)
VAT_GOOD = "T1,2024-01,100,13,5,0,8,0,2024-02-15\nT2,2024-02,100,13,5,0,8,0,2024-03-15\n"
VAT_BAD = "T1,2024-02,-100,13,5,0,8,0,2024-03-15\n"
OTHER = {
    "cit_returns.csv": "taxpayer_id,period,revenue,cost,profit,tax_payable,filed_on\n"
    "T1,2024-Q1,300,250,50,12.5,2024-04-20\n",
    "invoices.csv": "seller_id,buyer_id,period,amount,tax,count\nT1,T2,2024-02,100,13,1\n",
    "audits.csv": "case_id,taxpayer_id,selected_on,selection_reason,selection_probability,unit_id,"
    "measure,closed_on,outcome,tax_recovered,late_fees,penalties,covers_from,covers_to\n"
    "A1,T1,2023-06-01,rule,,C,audit,,,,,,,\n",
}


def make_folder(root: Path, vat_rows: str = VAT_GOOD + VAT_BAD) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "units.csv": UNITS,
        "taxpayers.csv": TAXPAYERS,
        "vat_returns.csv": VAT_HEADER + vat_rows,
    }
    for name, text in {**files, **OTHER}.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run the console entry point in process; its exit code."""
    monkeypatch.setattr(sys, "argv", ["taxrisk", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_validate_writes_report_and_quarantine(workspace: Path, tmp_path: Path) -> None:
    data = make_folder(tmp_path / "city-a")
    result = CliRunner().invoke(app, ["validate", str(data), "--as-of", "2024-02-29"])
    assert result.exit_code == 0, result.output
    report = json.loads(
        (workspace / "quality" / "city-a" / "report.json").read_text(encoding="utf-8")
    )
    vat = report["tables"]["vat_returns"]
    assert (vat["rows_in"], vat["rows_used"], vat["quarantined"]) == (3, 2, {"negative_value": 1})
    assert vat["not_yet_known"] == 1  # T2's return filed 2024-03-15
    assert report["as_of"] == "2024-02-29"
    html = (workspace / "quality" / "city-a" / "report.html").read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in html
    qfile = workspace / "quarantine" / "city-a" / "vat_returns.csv"
    assert (
        qfile.read_text(encoding="utf-8").splitlines()[1].startswith("3,negative_value,sales,T1,")
    )
    assert "report.html" in result.output and "vat_returns" in result.output

    # the data are fixed: the stale quarantine file goes
    make_folder(data, vat_rows=VAT_GOOD)
    result = CliRunner().invoke(app, ["validate", str(data)])
    assert result.exit_code == 0, result.output
    assert not qfile.exists()
    report = json.loads(
        (workspace / "quality" / "city-a" / "report.json").read_text(encoding="utf-8")
    )
    assert report["as_of"] == "2024-04-20"  # the latest date in the data
    assert report["tables"]["vat_returns"]["quarantined"] == {}


def test_unusable_table_exits_1_with_one_line(
    workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = make_folder(tmp_path / "city-b")
    (data / "taxpayers.csv").write_bytes(TAXPAYERS.encode("gbk"))
    assert run_main(monkeypatch, "validate", str(data)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "taxpayers.csv" in err[0] and "'name'" in err[0] and "iconv -f GBK -t UTF-8" in err[0]


def test_missing_column_exits_1(
    workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = make_folder(tmp_path / "city-c")
    (data / "units.csv").write_text("unit_id,parent_id,level,name\nC,,city,x\n", encoding="utf-8")
    assert run_main(monkeypatch, "validate", str(data)) == 1
    err = capsys.readouterr().err.strip()
    assert "units.csv" in err and "'capacity'" in err and "\n" not in err


def test_bad_as_of_is_a_usage_error(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_folder(tmp_path / "city-d")
    assert run_main(monkeypatch, "validate", str(data), "--as-of", "2024-13-01") == 2


def test_console_script(workspace: Path, tmp_path: Path) -> None:
    data = make_folder(tmp_path / "city-e", vat_rows=VAT_GOOD)
    exe = Path(sys.executable).parent / "taxrisk"
    done = subprocess.run(
        [str(exe), "validate", str(data)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (workspace / "quality" / "city-e" / "report.json").exists()
    assert not (workspace / "quarantine" / "city-e").exists() or not any(
        (workspace / "quarantine" / "city-e").iterdir()
    )
    help_text = subprocess.run(
        [str(exe), "validate", "--help"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    assert "--as-of" in help_text and "quarantine" in help_text


def test_demo_world_validates_clean(demo_world: Path, workspace: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(demo_world)])
    assert result.exit_code == 0, result.output
    report = json.loads(
        (workspace / "quality" / demo_world.name / "report.json").read_text(encoding="utf-8")
    )
    bad = {n: t["quarantined"] for n, t in report["tables"].items() if t["quarantined"]}
    assert not bad, bad
    assert all(t["rows_used"] == t["rows_in"] > 0 for t in report["tables"].values())
    assert not (workspace / "quarantine" / demo_world.name).exists() or not any(
        (workspace / "quarantine" / demo_world.name).iterdir()
    )
