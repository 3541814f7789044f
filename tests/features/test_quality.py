"""The data-quality report: exact figures on a tiny folder, and the HTML/JSON files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from taxrisk.features.loading import LoadResult, load_folder
from taxrisk.features.quality import (
    SEVERITIES,
    build_report,
    coverage,
    default_as_of,
    default_as_of_from_counts,
    never_filing,
    profile_from_counts,
    render_html,
    table_profile,
    write_report,
)
from taxrisk.features.schema import SCHEMAS

AS_OF = dt.date(2024, 3, 31)

FILES = {
    "units.csv": """unit_id,parent_id,level,name,capacity
C,,city,市局,10
""",
    # T1, T2 active at AS_OF; T3 deregistered before; T4 registered after
    "taxpayers.csv": """taxpayer_id,name,unit_id,industry,taxpayer_type,collection_method,registered_on,deregistered_on,registered_capital
T1,甲,C,C13,general,self_assessed,2020-01-01,,1000
T2,乙,C,C13,small_scale,fixed_quota,2021-01-01,,1000
T3,丙,C,C13,general,self_assessed,2019-01-01,2023-12-31,1000
T4,丁,C,C13,general,self_assessed,2024-06-01,,1000
""",
    # T2's only return is filed after AS_OF; the last row is quarantined (negative sales)
    "vat_returns.csv": """taxpayer_id,period,sales,output_tax,input_tax,input_tax_transferred_out,tax_payable,credit_carried_forward,filed_on
T1,2024-01,100,13,5,0,8,0,2024-02-15
T1,2024-02,100,13,5,0,8,0,2024-03-15
T2,2024-03,100,3,0,0,3,0,2024-04-15
T1,2024-03,-100,13,5,0,8,0,2024-04-15
""",
    "cit_returns.csv": """taxpayer_id,period,revenue,cost,profit,tax_payable,filed_on
T1,2024-Q1,300,250,50,12.5,2024-04-20
""",
    "invoices.csv": """seller_id,buyer_id,period,amount,tax,count
T1,T2,2024-02,100,13,1
T1,OUT,2024-03,-10,-1.3,1
""",
    "audits.csv": """case_id,taxpayer_id,selected_on,selection_reason,selection_probability,unit_id,measure,closed_on,outcome,tax_recovered,late_fees,penalties,covers_from,covers_to
A1,T1,2023-06-01,random,0.05,C,assessment,2023-09-01,no_change,0,0,0,2022-01,2022-12
""",
    "electricity.csv": """taxpayer_id,period,kwh,charge
T1,2024-01,1000,800
T3,2023-11,1000,800
""",
    # T2's only operations row is older than the 12-month coverage window
    "operations.csv": """taxpayer_id,period,metric,value,source
T2,2023-01,output_t,10,officer
""",
}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadResult:
    root = tmp_path_factory.mktemp("q") / "city"
    root.mkdir()
    for name, text in FILES.items():
        (root / name).write_text(text, encoding="utf-8")
    return load_folder(root, as_of=AS_OF)


def test_coverage_and_never_filing(loaded: LoadResult) -> None:
    cov = coverage(loaded.tables, AS_OF)
    assert cov["_active"]["taxpayers"] == 2
    assert cov["electricity"] == {"present": True, "taxpayers": 1, "share": 0.5}
    assert cov["invoices"] == {"present": True, "taxpayers": 2, "share": 1.0}
    assert cov["operations"] == {"present": True, "taxpayers": 0, "share": 0.0}
    assert cov["social_insurance"] == {"present": False, "taxpayers": None, "share": None}
    nf = never_filing(loaded.tables, AS_OF)
    assert nf == {"count": 1, "active": 2, "share": 0.5, "examples": ["T2"]}
    # a day after T2's filing it has filed
    assert never_filing(loaded.tables, dt.date(2024, 4, 15))["count"] == 0


def test_default_as_of_is_latest_known_date(loaded: LoadResult) -> None:
    # taxpayers.registered_on 2024-06-01 is the latest known_on in the data
    assert default_as_of(loaded.tables) == dt.date(2024, 6, 1)
    assert default_as_of_from_counts(loaded.counts) == dt.date(2024, 6, 1)
    # without taxpayers, the latest is the last day of the last invoice month
    others = {n: c for n, c in loaded.counts.items() if n not in ("taxpayers", "cit_returns")}
    assert default_as_of_from_counts(others) == dt.date(2024, 4, 15)


def test_profile_from_counts_matches_a_query(loaded: LoadResult) -> None:
    for name, c in loaded.counts.items():
        schema = SCHEMAS[name]
        assert profile_from_counts(c, schema) == table_profile(loaded.tables[name], schema), name


def test_report_content(loaded: LoadResult) -> None:
    rep = build_report(loaded)
    assert rep["as_of"] == "2024-03-31" and rep["active_taxpayers"] == 2
    vat = rep["tables"]["vat_returns"]
    assert (vat["rows_in"], vat["rows_used"], vat["quarantined"], vat["not_yet_known"]) == (
        4,
        3,
        {"negative_value": 1},
        1,
    )
    assert vat["ranges"]["period"] == {"min": "2024-01", "max": "2024-03"}
    assert rep["tables"]["cit_returns"]["ranges"]["period"] == {"min": "2024-Q1", "max": "2024-Q1"}
    assert rep["tables"]["taxpayers"]["null_rates"]["deregistered_on"] == 0.75
    assert rep["tables"]["taxpayers"]["null_rates"]["name"] == 0.0
    assert rep["tables"]["taxpayers"]["not_yet_known"] == 1
    assert "social_insurance" in rep["missing_optional"]
    assert rep["never_filing"]["count"] == 1
    sev = [SEVERITIES.index(p["severity"]) for p in rep["problems"]]
    assert sev == sorted(sev), "problems are sorted most serious first"
    first = rep["problems"][0]
    assert first["severity"] == "high" and first["table"] == "vat_returns"
    messages = " | ".join(p["message"] for p in rep["problems"])
    assert "operations covers only 0.0%" in messages
    assert "never filed" in messages and "social_insurance is absent" in messages


def test_report_files(loaded: LoadResult, tmp_path: Path) -> None:
    rep = build_report(loaded)
    html_path, json_path = write_report(rep, tmp_path / "out")
    assert json.loads(json_path.read_text(encoding="utf-8")) == rep
    html = html_path.read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in html
    assert "数据质量报告" in html
    assert "vat_returns" in html and "negative_value" in html and "T2" in html
    assert "<script" not in html and "<link" not in html and "http" not in html  # self-contained
    assert render_html(rep) == html
