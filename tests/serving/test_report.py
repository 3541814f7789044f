"""The explanation report (serving/reports/): HTML and PDF from one template, the waterfall,
the peer comparison from the run's matrix, and ``taxrisk report``.

The PDF's text is read back by :func:`pdf_text`, a small reader of what WeasyPrint writes
(object streams, Flate, Type0 fonts with a ToUnicode CMap): neither poppler's ``pdftotext``
nor pypdf is part of the environment. When ``pdftotext`` is on the PATH, the text is checked
with it as well.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pandas as pd
import pytest
from store_factories import SEED_RUN_ID, Seeded
from taxrisk.features.catalog import CATALOG
from taxrisk.serving.errors import CaseNotFound
from taxrisk.serving.reports.render import render_html, render_report
from taxrisk.serving.reports.view import waterfall
from taxrisk.serving.store.action_log import Actor
from taxrisk.serving.store.models import Case, ScoringRun
from taxrisk.serving.web.i18n import translator
from typer.testing import CliRunner

from taxrisk.cli import app as cli_app
from taxrisk.settings import Settings, get_settings

ADMIN = Actor("admin", "admin")
TODAY = dt.date(2026, 12, 15)

# --- a reader for the text of WeasyPrint's PDFs -----------------------------------------------


def _stream(body: bytes) -> bytes:
    m = re.search(rb"stream\r?\n(.*?)\r?\n?endstream", body, re.S)
    raw = m.group(1) if m else b""
    return zlib.decompress(raw) if b"/FlateDecode" in body.split(b"stream", 1)[0] else raw


def _objects(pdf: bytes) -> dict[int, bytes]:
    objs = {int(m[1]): m[2] for m in re.finditer(rb"(\d+)\s+0\s+obj\b(.*?)\bendobj", pdf, re.S)}
    for body in list(objs.values()):
        if b"/ObjStm" in body.split(b"stream", 1)[0]:
            data = _stream(body)
            first = int(re.search(rb"/First\s+(\d+)", body)[1])  # type: ignore[index]
            head = [int(x) for x in data[:first].split()]
            pairs = list(zip(head[0::2], head[1::2], strict=True))
            for i, (num, off) in enumerate(pairs):
                end = pairs[i + 1][1] if i + 1 < len(pairs) else len(data) - first
                objs[num] = data[first + off : first + end]
    return objs


def _utf16(hexs: bytes) -> str:
    return bytes.fromhex(hexs.decode()).decode("utf-16-be", "replace")


def _cmap(data: bytes) -> dict[bytes, str]:
    out: dict[bytes, str] = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", data, re.S):
        for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            out[bytes.fromhex(src.decode())] = _utf16(dst)
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", data, re.S):
        for lo, hi, dst in re.findall(
            rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(\[[^\]]*\]|<[0-9A-Fa-f]+>)", block
        ):
            a, b, width = int(lo, 16), int(hi, 16), len(lo) // 2
            if dst.startswith(b"["):
                for k, d in enumerate(re.findall(rb"<([0-9A-Fa-f]+)>", dst)):
                    out[(a + k).to_bytes(width, "big")] = _utf16(d)
            else:
                start = int(dst[1:-1], 16)
                for k in range(b - a + 1):
                    out[(a + k).to_bytes(width, "big")] = _utf16(
                        f"{start + k:0{len(dst) - 2}x}".encode()
                    )
    return out


def pdf_text(pdf: bytes) -> tuple[str, list[str]]:
    """(the text drawn on the pages and in their forms, the embedded fonts' names)."""
    objs = _objects(pdf)
    fonts: dict[int, dict[bytes, str]] = {}
    names: list[str] = []
    for num, body in objs.items():
        m = re.search(rb"/ToUnicode\s+(\d+)\s+0\s+R", body)
        if m:
            fonts[num] = _cmap(_stream(objs[int(m[1])]))
        f = re.search(rb"/BaseFont\s*/([^\s/<>\[\]]+)", body)
        if f:
            names.append(f[1].decode())
    resource: dict[bytes, int] = {}
    for body in objs.values():
        blocks = re.findall(rb"/Font\s*<<(.*?)>>", body, re.S)
        blocks += [objs.get(int(r), b"") for r in re.findall(rb"/Font\s+(\d+)\s+0\s+R", body)]
        for block in blocks:
            for name, ref in re.findall(rb"/([^\s/]+)\s+(\d+)\s+0\s+R", block):
                if int(ref) in fonts:
                    resource[name] = int(ref)
    contents = []
    for body in objs.values():
        head = body.split(b"stream", 1)[0]
        if re.search(rb"/Type\s*/Page\b", body):
            contents += [
                _stream(objs[int(r)]) for r in re.findall(rb"/Contents\s+(\d+)\s+0\s+R", body)
            ]
        elif re.search(rb"/Subtype\s*/Form\b", head):
            contents.append(_stream(body))
    out: list[str] = []
    token = re.compile(rb"/([^\s/]+)\s+[\d.]+\s+Tf|\[([^\]]*)\]\s*TJ|<([0-9A-Fa-f]*)>\s*Tj|\bET\b")
    for data in contents:
        cmap: dict[bytes, str] = {}
        for m in token.finditer(data):
            if m[1]:
                cmap = fonts.get(resource.get(m[1], -1), {})
            elif m[0] == b"ET":
                out.append("\n")
            else:
                for h in re.findall(rb"<([0-9A-Fa-f]*)>", m[2] or b"<" + m[3] + b">"):
                    raw = bytes.fromhex(h.decode())
                    out.append(
                        "".join(cmap.get(raw[i : i + 2], "\ufffd") for i in range(0, len(raw), 2))
                    )
    return "".join(out), names


def _squash(text: str) -> str:
    return "".join(text.split())


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def settings(workspace: Path) -> Settings:
    return get_settings(workspace=workspace)


def _top(case: Case) -> str:
    """The id of the case's first reason: the fired indicator with the largest contribution."""
    fired = [ci for ci in case.indicators if ci.fired]
    return max(fired, key=lambda ci: ci.contribution or 0.0).item


def _case(seeded: Seeded, status: str = "closed") -> Case:
    case = seeded.session.get(Case, seeded.info.first(status))
    assert case is not None
    return case


# --- tests ------------------------------------------------------------------------------------


def test_the_html_report_explains_the_referral(seeded: Seeded, settings: Settings) -> None:
    case = _case(seeded)
    html = render_report(
        seeded.session, ADMIN, case.case_id, settings, "html", today=TODAY
    ).decode()
    assert html.startswith("<!DOCTYPE html>")
    assert case.taxpayer_name in html and case.taxpayer_id in html
    top = CATALOG[_top(case)]
    reasons = html.split('id="s-why"', 1)[1].split("</section>", 1)[0]
    assert reasons.index(top.name_zh) < len(reasons)
    assert "高于同行业约" in reasons or "低于同行业约" in reasons
    for ci in case.indicators:
        if ci.fired and ci.item in CATALOG:
            assert CATALOG[ci.item].guide_zh in html  # 风险应对指南 per fired indicator
    assert '<svg class="waterfall"' in html
    assert f"模型版本 {case.model_version}" in html and SEED_RUN_ID in html
    assert "生成日期 2026-12-15" in html
    assert "应对结果" in html  # a closed case carries its result
    # self-contained: no stylesheet, image or script from anywhere
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<link" not in html
    assert "<script" not in html


def test_the_report_in_english(seeded: Seeded, settings: Settings) -> None:
    case = _case(seeded, "new")
    html = render_html(seeded.session, ADMIN, case.case_id, settings, lang="en", today=TODAY)
    assert '<html lang="en">' in html
    assert CATALOG[_top(case)].name_en in html
    assert "Why this taxpayer was chosen" in html


def test_the_pdf_has_the_chinese_text_in_the_cjk_font(seeded: Seeded, settings: Settings) -> None:
    case = _case(seeded)
    pdf = render_report(seeded.session, ADMIN, case.case_id, settings, "pdf", today=TODAY)
    assert pdf.startswith(b"%PDF-")
    text, fonts = pdf_text(pdf)
    assert fonts and all("WenQuanYi" in f for f in fonts)
    flat = _squash(text)
    assert "\ufffd" not in flat
    assert _squash(case.taxpayer_name) in flat
    assert _squash(CATALOG[_top(case)].name_zh) in flat
    assert "风险应对任务说明书" in flat and "预期收入构成" in flat
    assert "平均预期收入（基准）" in flat and "本户预期收入" in flat  # the SVG waterfall
    if shutil.which("pdftotext"):
        out = subprocess.run(
            ["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True
        ).stdout.decode()
        assert _squash(case.taxpayer_name) in _squash(out)


def test_a_selector_gets_no_report_of_another_unit(seeded: Seeded, settings: Settings) -> None:
    other = seeded.info.by_unit["U02"][0]
    with pytest.raises(CaseNotFound):
        render_report(seeded.session, Actor("sel_u01", "selector", "U01"), other, settings, "html")
    with pytest.raises(ValueError, match="html"):
        render_report(seeded.session, ADMIN, other, settings, "docx")  # type: ignore[arg-type]


def test_peer_medians_and_model_estimates_come_from_the_runs_matrix(
    seeded: Seeded, settings: Settings
) -> None:
    case = _case(seeded, "new")
    items = [ci.item for ci in case.indicators if ci.kind == "indicator"]
    peers = [f"P{i}" for i in range(4)]
    frame = pd.DataFrame(
        {
            "taxpayer_id": [case.taxpayer_id, *peers, "OTHER"],
            "industry": pd.Categorical([case.industry] * 5 + ["9999"]),
            **{i: [1.0, 2.0, 3.0, 4.0, 5.0, 100.0] for i in items},
            "model_implied_sales": [250_000.0, 0, 0, 0, 0, 0],
            "model_gap": [0.375, 0, 0, 0, 0, 0],
        }
    ).set_index("taxpayer_id")
    rel = f"runs/{SEED_RUN_ID}/matrix.parquet"
    (settings.root / rel).parent.mkdir(parents=True)
    frame.to_parquet(settings.root / rel)
    run = seeded.session.get(ScoringRun, SEED_RUN_ID)
    assert run is not None
    run.artifacts = {**run.artifacts, "matrix.parquet": rel}
    seeded.session.commit()
    html = render_html(seeded.session, ADMIN, case.case_id, settings, today=TODAY)
    assert "本批次同行业共 5 户纳税人。" in html
    assert "（行业中位数 3）" in html  # the median of 1..5, the other industry left out
    assert "模型测算月销售额" in html and "250,000 元" in html and "37.5%" in html


def test_the_waterfall_ends_at_the_expected_yield() -> None:
    t = translator("zh")
    w = waterfall(1000.0, [("a", 500.0), ("b", -200.0)], 1300.0, t)
    assert [b.kind for b in w.bars] == ["base", "up", "down", "total"]
    assert w.bars[-2].end == pytest.approx(1300.0) and w.bars[-1].end == 1300.0
    w = waterfall(None, [("a", 500.0)], 800.0, t)  # an unexplained remainder is shown
    assert [b.title for b in w.bars] == [
        "平均预期收入（基准）",
        "a",
        "其他因素合计",
        "本户预期收入",
    ]
    w = waterfall(0.0, [(f"x{i}", 10.0) for i in range(20)], 200.0, t)
    assert len(w.bars) == 12 + 3  # twelve items, "other", base and total
    assert all(w.plot_left <= b.x <= w.plot_right for b in w.bars)


def test_taxrisk_report_writes_html_and_pdf(
    seeded: Seeded, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = seeded.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("TAXRISK_DATABASE_URL", url)
    case = _case(seeded)
    runner = CliRunner()
    for suffix in ("html", "pdf"):
        out = workspace / f"out/report.{suffix}"
        result = runner.invoke(cli_app, ["report", case.case_id, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 1000
    assert case.taxpayer_name in (workspace / "out/report.html").read_text(encoding="utf-8")
    bad = runner.invoke(cli_app, ["report", case.case_id, "--out", str(workspace / "r.doc")])
    assert bad.exit_code != 0
    missing = subprocess.run(
        [
            str(Path(__file__).resolve().parents[2] / ".venv/bin/taxrisk"),
            "report",
            "C-nope",
            "--out",
            str(workspace / "x.html"),
        ],
        capture_output=True,
        text=True,
        env={
            "TAXRISK_DATABASE_URL": url,
            "PATH": "/usr/bin:/bin",
            "TAXRISK_WORKSPACE": str(workspace),
        },
        check=False,
    )
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1].startswith("error: ")
