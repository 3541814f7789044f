"""The web pages through Starlette's TestClient, on the seeded store (serving/web/).

The app is the real one (``create_app`` mounts the pages on the API's store sessions), except
in :func:`test_pages_mount_on_a_bare_app`. Every POST goes through the sign-in page's or the
signed-in page's CSRF token, as a browser's would.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from starlette.exceptions import StarletteDeprecationWarning
from store_factories import SEED_RUN_ID, Seeded, SeedInfo
from taxrisk.features.catalog import CATALOG
from taxrisk.serving.api.main import create_app
from taxrisk.serving.store import users
from taxrisk.serving.store.models import Case, Feedback, ScoringRun
from taxrisk.serving.web import mount
from taxrisk.serving.web.i18n import LANGS, messages
from taxrisk.serving.web.progress import unit_progress

from taxrisk.settings import Settings, get_settings

with warnings.catch_warnings():
    # Starlette 1.x warns at import that it prefers httpx2; the lock has httpx (same API).
    warnings.filterwarnings(
        "ignore",
        message="Using `httpx` with `starlette.testclient` is deprecated",
        category=StarletteDeprecationWarning,
    )
    from starlette.testclient import TestClient

SECRET = "web-test-secret-key"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TEMPLATES = Path(__file__).resolve().parents[2] / "serving"


@dataclass
class Web:
    client: TestClient
    info: SeedInfo
    seeded: Seeded

    def csrf(self, path: str = "/web/signin") -> str:
        r = self.client.get(path)
        m = CSRF.search(r.text)
        assert m, f"no CSRF token on {path} ({r.status_code})"
        return m.group(1)

    def sign_in(self, who: str, next_url: str = "/web/") -> None:
        r = self.client.post(
            "/web/signin",
            data={"token": self.info.tokens[who], "csrf_token": self.csrf(), "next": next_url},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        assert r.headers["location"] == next_url

    def case(self, case_id: str) -> Case:
        s = self.seeded.session
        s.expire_all()
        case = s.get(Case, case_id)
        assert case is not None
        return case


def _settings(workspace: Path, **kw: object) -> Settings:
    return get_settings(workspace=workspace, secret_key=SECRET, **kw)


@pytest.fixture
def web(seeded: Seeded, workspace: Path) -> Iterator[Web]:
    app = create_app(_settings(workspace), engine=seeded.engine)
    with TestClient(app, raise_server_exceptions=True) as client:
        yield Web(client, seeded.info, seeded)


def _small_open_case(info: SeedInfo, unit: str = "U01") -> str:
    """A new case of ``unit`` whose expected yield is below the approval line."""
    for cid in info.by_status["new"]:
        if cid in info.by_unit.get(unit, []) and cid != info.case_ids[0]:
            return cid
    raise AssertionError("no small new case")


def _feedback(web: Web, case_id: str, **fields: str) -> object:
    data = {
        "outcome": "adjusted",
        "measure_taken": "assessment",
        "tax_recovered": "12345.5",
        "late_fees": "100",
        "penalties": "0",
        "notes": "",
    }
    data.update(fields)
    if "csrf_token" not in data:
        data["csrf_token"] = web.csrf(f"/web/cases/{case_id}")
    return web.client.post(f"/web/cases/{case_id}/feedback", data=data, follow_redirects=False)


# --- sign-in, sessions, CSRF ------------------------------------------------------------------


def test_sign_in_gives_an_http_only_lax_cookie_and_lands_on_the_unit_queue(web: Web) -> None:
    token = web.csrf()
    r = web.client.post(
        "/web/signin",
        data={"token": web.info.tokens["sel_u01"], "csrf_token": token, "next": "/web/"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "taxrisk_web=" in cookie
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "Path=/web" in cookie
    assert web.info.tokens["sel_u01"] not in cookie  # the token never goes into the cookie
    r = web.client.get("/web/", follow_redirects=False)
    assert r.headers["location"] == "/web/units/U01/cases"
    page = web.client.get("/web/units/U01/cases")
    assert page.status_code == 200
    assert "城东区税务局" in page.text
    assert "sel_u01" in page.text


def test_the_root_and_pages_without_a_session_go_to_sign_in(web: Web) -> None:
    r = web.client.get("/", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/web/"
    r = web.client.get("/web/units/U01/cases?status=new", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/web/signin?next=%2Fweb%2Funits%2FU01%2Fcases%3Fstatus%3Dnew"


def test_a_wrong_token_is_refused(web: Web) -> None:
    r = web.client.post(
        "/web/signin",
        data={"token": "not-a-token", "csrf_token": web.csrf(), "next": "/web/"},
        follow_redirects=False,
    )
    assert r.status_code == 400
    assert "令牌无效" in r.text
    assert web.client.get("/web/queue", follow_redirects=False).status_code == 303


def test_sign_in_goes_back_where_it_was_asked_but_never_off_site(web: Web) -> None:
    web.sign_in("sel_u01", "/web/units/U011/cases")
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        r = web.client.post(
            "/web/signin",
            data={"token": web.info.tokens["sel_u01"], "csrf_token": web.csrf(), "next": target},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/web/"


def test_a_post_without_the_csrf_token_is_403(web: Web) -> None:
    r = web.client.post(
        "/web/signin", data={"token": web.info.tokens["admin"]}, follow_redirects=False
    )
    assert r.status_code == 403
    web.sign_in("sel_u01")
    cid = _small_open_case(web.info)
    before = web.case(cid).status
    form = {"outcome": "no_change", "measure_taken": "notice"}
    for extra in ({}, {"csrf_token": ""}, {"csrf_token": "forged"}):
        r = web.client.post(
            f"/web/cases/{cid}/feedback", data={**form, **extra}, follow_redirects=False
        )
        assert r.status_code == 403
        assert "表单已失效" in r.text
    assert web.case(cid).status == before
    assert web.client.post("/web/signout", follow_redirects=False).status_code == 403
    # the token of the anonymous session is not valid once signed in (rotated at sign-in)
    anon = TestClient(web.client.app)
    stale = CSRF.search(anon.get("/web/signin").text).group(1)  # type: ignore[union-attr]
    r = _feedback(web, cid, csrf_token=stale)
    assert r.status_code == 403  # type: ignore[attr-defined]


def test_sign_out_ends_the_session(web: Web) -> None:
    web.sign_in("admin")
    r = web.client.post(
        "/web/signout", data={"csrf_token": web.csrf("/web/queue")}, follow_redirects=False
    )
    assert r.status_code == 303
    assert web.client.get("/web/units/U00/cases", follow_redirects=False).status_code == 303


def test_a_revoked_user_is_signed_out_at_once(web: Web) -> None:
    web.sign_in("sel_u02")
    assert web.client.get("/web/units/U02/cases").status_code == 200
    users.revoke_user(web.seeded.session, "sel_u02")
    web.seeded.session.commit()
    r = web.client.get("/web/units/U02/cases", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/web/signin")


# --- scope: a selector sees its units only ----------------------------------------------------


def test_another_units_case_and_pages_are_404_for_a_selector(web: Web) -> None:
    web.sign_in("sel_u01")
    other = web.info.by_unit["U02"][0]
    other_name = web.case(other).taxpayer_name
    parent = web.info.by_unit["U00"][0]
    for path in (
        f"/web/cases/{other}",
        f"/web/cases/{parent}",
        f"/web/cases/{other}/report.html",
        f"/web/cases/{other}/report.pdf",
        "/web/cases/C-no-such-case",
        "/web/units/U02/cases",
        "/web/units/U00/cases",
        "/web/units/U02/progress",
        "/web/units/NOPE/cases",
    ):
        r = web.client.get(path)
        assert r.status_code == 404, path
        assert other_name not in r.text
    r = _feedback(web, other, csrf_token=web.csrf("/web/queue"))
    assert r.status_code == 404  # type: ignore[attr-defined]
    # the unit below is visible
    own_below = web.info.by_unit["U011"][0]
    assert web.client.get(f"/web/cases/{own_below}").status_code == 200
    assert web.client.get("/web/units/U011/cases").status_code == 200


def test_the_runs_and_model_pages_are_for_analysts_and_admins(web: Web) -> None:
    web.sign_in("sel_u01")
    assert web.client.get("/web/runs").status_code == 403
    assert web.client.get("/web/model").status_code == 403
    web.sign_in("analyst")
    assert web.client.get("/web/runs").status_code == 200
    assert web.client.get(f"/web/runs/{SEED_RUN_ID}").status_code == 200
    assert web.client.get("/web/runs/no-such-run").status_code == 404


# --- the queue --------------------------------------------------------------------------------


def _queue_case_ids(html: str) -> list[str]:
    return re.findall(r'href="/web/cases/([^"/]+)"', html)


def test_the_queue_is_best_first_with_capacity_counts(web: Web) -> None:
    web.sign_in("sel_u01")
    html = web.client.get("/web/units/U01/cases").text
    ids = _queue_case_ids(html)
    visible = set(web.info.by_unit["U01"]) | set(web.info.by_unit["U011"])
    assert set(ids) == visible
    yields = [web.case(c).expected_yield for c in ids]
    assert yields == sorted(yields, reverse=True)
    assert "本周期应对能力" in html and "本轮下达" in html
    only = _queue_case_ids(web.client.get("/web/units/U01/cases?below=0").text)
    assert set(only) == set(web.info.by_unit["U01"])


def test_queue_filters_by_status_industry_and_risk_level(web: Web) -> None:
    web.sign_in("admin")
    ids = _queue_case_ids(web.client.get("/web/units/U00/cases?status=new").text)
    assert ids and set(ids) == set(web.info.by_status["new"])
    ids = _queue_case_ids(web.client.get("/web/units/U00/cases?risk_level=high").text)
    assert ids and all(web.case(c).risk_level == "high" for c in ids)
    industry = web.case(web.info.case_ids[2]).industry
    html = web.client.get(f"/web/units/U00/cases?industry={industry}").text
    ids = _queue_case_ids(html)
    assert ids and all(web.case(c).industry == industry for c in ids)
    assert f'<option value="{industry}" selected>' in html
    assert _queue_case_ids(web.client.get("/web/units/U00/cases?status=bogus&page=x").text)


def test_user_text_is_escaped_everywhere(web: Web) -> None:
    s = web.seeded.session
    cid = _small_open_case(web.info)
    case = s.get(Case, cid)
    assert case is not None
    case.taxpayer_name = '<img src=x onerror="alert(1)">恶意名称'
    s.commit()
    web.sign_in("sel_u01")
    note = "<script>alert('x')</script> 核实后补税"
    r = _feedback(web, cid, notes=note)
    assert r.status_code == 303  # type: ignore[attr-defined]
    for path in (f"/web/cases/{cid}", f"/web/cases/{cid}/report.html", "/web/units/U01/cases"):
        html = web.client.get(path).text
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path
        assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;恶意名称" in html, path
    page = web.client.get(f"/web/cases/{cid}").text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; 核实后补税" in page


# --- the case page and feedback ---------------------------------------------------------------


def test_the_case_page_shows_scores_indicators_waterfall_guides_and_history(web: Web) -> None:
    web.sign_in("sel_u01")
    cid = _small_open_case(web.info)
    case = web.case(cid)
    html = web.client.get(f"/web/cases/{cid}").text
    assert case.taxpayer_name in html
    for ci in case.indicators:
        if ci.fired and ci.item in CATALOG:
            assert CATALOG[ci.item].name_zh in html
            assert CATALOG[ci.item].guide_zh in html
    assert '<svg class="waterfall"' in html
    assert html.count('class="bar bar-') == len(case.indicators) + 2 + (
        1 if "其他因素合计" in html else 0
    )
    assert "操作记录" in html and "下达" in html  # the dispatch entry of the action log
    assert 'action="/web/cases/' in html and "提交应对结果" in html


def test_feedback_closes_the_case_and_the_form_goes(web: Web) -> None:
    web.sign_in("sel_u01")
    cid = _small_open_case(web.info)
    r = _feedback(web, cid, notes="约谈后补缴")
    assert r.status_code == 303  # type: ignore[attr-defined]
    assert r.headers["location"] == f"/web/cases/{cid}?done=closed"  # type: ignore[attr-defined]
    assert web.case(cid).status == "closed"
    html = web.client.get(f"/web/cases/{cid}?done=closed").text
    assert "反馈已提交，案件已办结。" in html
    assert "应对结果" in html and "12,346 元" in html and "约谈后补缴" in html
    assert "提交应对结果" not in html  # no form on a closed case
    assert "提交结果" in html  # the feedback entry in the history
    again = _feedback(web, cid)
    assert again.status_code == 409  # type: ignore[attr-defined]


def test_feedback_errors_are_shown_next_to_their_fields(web: Web) -> None:
    web.sign_in("sel_u01")
    cid = _small_open_case(web.info)
    r = _feedback(web, cid, outcome="", tax_recovered="-5", late_fees="abc", covers_from="2025-13")
    assert r.status_code == 422  # type: ignore[attr-defined]
    html = r.text  # type: ignore[attr-defined]
    for field, message in (
        ("outcome", "请选择应对结论。"),
        ("tax_recovered", "金额不能为负数。"),
        ("late_fees", "请输入数字金额（元）。"),
        ("covers_from", "请按 YYYY-MM 格式填写月份。"),
    ):
        assert f'aria-describedby="err-{field}"' in html
        assert f'<p class="field-error" id="err-{field}">{message}</p>' in html
    assert 'value="-5"' in html  # what was typed is kept
    assert web.case(cid).status == "new"


def test_a_large_case_awaits_approval_by_another_user(web: Web) -> None:
    cid = web.info.first("review")
    web.sign_in("sel_u01")  # the submitter
    html = web.client.get(f"/web/cases/{cid}").text
    assert "待集体审议" in html
    assert "审批通过并办结" not in html
    assert "审批须由提交人以外的人员进行" in html
    r = web.client.post(
        f"/web/cases/{cid}/approve",
        data={"csrf_token": web.csrf(f"/web/cases/{cid}")},
        follow_redirects=False,
    )
    assert r.status_code == 409
    web.sign_in("admin")
    html = web.client.get(f"/web/cases/{cid}").text
    assert "审批通过并办结" in html
    r = web.client.post(
        f"/web/cases/{cid}/approve",
        data={"csrf_token": web.csrf(f"/web/cases/{cid}")},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert web.case(cid).status == "closed"
    fb = web.seeded.session.scalars(select(Feedback).where(Feedback.case_id == cid)).one()
    assert fb.approved_by == "admin"
    assert "已审批，案件已办结。" in web.client.get(r.headers["location"]).text


def test_big_feedback_goes_to_review(web: Web) -> None:
    web.sign_in("sel_u01")
    cid = _small_open_case(web.info)
    r = _feedback(web, cid, tax_recovered="2000000")
    assert r.headers["location"].endswith("?done=review")  # type: ignore[attr-defined]
    assert web.case(cid).status == "review"


def test_reject_needs_a_reason(web: Web) -> None:
    cid = web.info.first("review")
    web.sign_in("admin")
    url = f"/web/cases/{cid}/reject"
    r = web.client.post(url, data={"csrf_token": web.csrf(f"/web/cases/{cid}"), "reason": " "})
    assert r.status_code == 422 and "请填写退回理由。" in r.text
    r = web.client.post(
        url,
        data={"csrf_token": web.csrf(f"/web/cases/{cid}"), "reason": "补充证据"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert web.case(cid).status == "in_progress"


def test_an_analyst_reads_cases_but_gets_no_form(web: Web) -> None:
    web.sign_in("analyst")
    cid = _small_open_case(web.info)
    html = web.client.get(f"/web/cases/{cid}").text
    assert "提交应对结果" not in html
    r = _feedback(web, cid)
    assert r.status_code == 403  # type: ignore[attr-defined]
    assert web.case(cid).status == "new"


def test_the_report_downloads(web: Web) -> None:
    web.sign_in("sel_u01")
    cid = _small_open_case(web.info)
    r = web.client.get(f"/web/cases/{cid}/report.pdf")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-")
    r = web.client.get(f"/web/cases/{cid}/report.html")
    assert r.headers["content-type"].startswith("text/html")
    assert "风险应对任务说明书" in r.text
    assert web.client.get(f"/web/cases/{cid}/report.doc").status_code == 404


# --- language ---------------------------------------------------------------------------------


def test_english_on_request_and_chinese_by_default(web: Web) -> None:
    assert '<html lang="zh-CN">' in web.client.get("/web/signin").text
    r = web.client.get("/web/lang/en?next=/web/signin", follow_redirects=False)
    assert r.headers["location"] == "/web/signin"
    html = web.client.get("/web/signin").text
    assert '<html lang="en">' in html and "API token" in html
    web.sign_in("sel_u01")  # the language survives sign-in
    html = web.client.get("/web/units/U01/cases").text
    assert "Case queue" in html and "Capacity this cycle" in html
    cid = _small_open_case(web.info)
    case = web.case(cid)
    html = web.client.get(f"/web/cases/{cid}").text
    fired = [ci.item for ci in case.indicators if ci.fired and ci.item in CATALOG]
    assert CATALOG[fired[0]].name_en in html
    html = web.client.get(f"/web/cases/{cid}?lang=zh").text
    assert "案件队列" in html


def test_both_languages_have_the_same_keys_and_every_key_used_exists() -> None:
    zh, en = messages("zh"), messages("en")
    assert set(zh) == set(en)
    assert all(v.strip() for lang in LANGS for v in messages(lang).values())
    used: set[str] = set()
    for path in [*TEMPLATES.glob("web/templates/*.html"), *TEMPLATES.glob("reports/templates/*")]:
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""", path.read_text()))
    for path in [*TEMPLATES.glob("web/*.py"), *TEMPLATES.glob("reports/*.py")]:
        used |= set(
            re.findall(r'"((?:errors|signin|feedback|item|waterfall)\.[a-z_]+)"', path.read_text())
        )
    used = {k for k in used if k != "signin.html" and not k.endswith("_")}
    missing = sorted(k for k in used if k not in zh)
    assert not missing


# --- progress, runs, model --------------------------------------------------------------------


def test_progress_counts_down_the_tree(seeded: Seeded) -> None:
    info = seeded.info
    rows = {r.unit_id: r for r in unit_progress(seeded.session, "U00", info.today)}
    assert list(rows) == ["U00", "U01", "U011", "U02"]
    live = [c for c in info.case_ids if c not in info.by_status.get("superseded", [])]
    city = rows["U00"].total
    assert city.cases == len(live)
    assert city.closed == len(info.by_status["closed"])
    assert city.review == len(info.by_status["review"])
    assert city.overdue == len(info.overdue)
    assert city.recovered == pytest.approx(86_000 + 4_300)  # the closed cases' accepted feedback
    u01 = rows["U01"].total
    u011_cases = [c for c in info.by_unit["U011"] if c in live]
    assert u01.cases == len([c for c in info.by_unit["U01"] if c in live]) + len(u011_cases)
    assert rows["U011"].depth == 2


def test_the_progress_page(web: Web) -> None:
    web.sign_in("admin")
    r = web.client.get("/web/progress", follow_redirects=True)
    assert r.status_code == 200
    for name in web.info.units.values():
        assert name in r.text
    web.sign_in("sel_u01")
    html = web.client.get("/web/progress", follow_redirects=True).text
    assert "城东区税务局第一税务所" in html and "城西区税务局" not in html


def test_the_run_page_shows_monitoring(web: Web) -> None:
    s = web.seeded.session
    run = s.get(ScoringRun, SEED_RUN_ID)
    assert run is not None
    run.monitoring = {
        "score_psi_vs_previous": 0.31,
        "vs_previous": {
            "against": "run-0",
            "features": 3,
            "moderate": 1,
            "shifted": 1,
            "psi": {"vat_burden": 0.4, "sales_12": 0.12, "zero_negative_share": 0.01},
        },
        "selection_rates": [
            {
                "dimension": "industry",
                "group": "1311",
                "population": 50,
                "selected": 5,
                "rate": 0.1,
            },
            {
                "dimension": "size_class",
                "group": "large",
                "population": 10,
                "selected": 4,
                "rate": 0.4,
            },
        ],
    }
    s.commit()
    web.sign_in("analyst")
    html = web.client.get(f"/web/runs/{SEED_RUN_ID}").text
    assert "0.3100" in html and "明显偏移" in html
    assert CATALOG["vat_burden"].name_zh in html
    assert "按行业的选中率" in html and "40.00%" in html
    assert SEED_RUN_ID in web.client.get("/web/runs").text


def test_the_model_page_says_when_no_model_is_in_service(web: Web) -> None:
    web.sign_in("admin")
    html = web.client.get("/web/model").text
    assert "暂无在用模型" in html


def test_pages_mount_on_a_bare_app(seeded: Seeded, workspace: Path) -> None:
    """Without ``create_app``'s state, the pages build their own engine from the settings."""
    url = seeded.engine.url.render_as_string(hide_password=False)
    app = FastAPI()
    mount(app, _settings(workspace, database_url=url))
    with TestClient(app) as client:
        w = Web(client, seeded.info, seeded)
        w.sign_in("sel_u02")
        html = client.get("/web/units/U02/cases").text
        assert set(_queue_case_ids(html)) == set(seeded.info.by_unit["U02"])
        r = client.get("/web/static/web.css")
        assert r.status_code == 200 and "text/css" in r.headers["content-type"]


def test_the_model_page_shows_the_champion_its_backtest_and_plots(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from taxrisk.serving import modelinfo

    info = modelinfo.ModelInfo(
        name="taxrisk",
        alias="champion",
        status="in_service",
        detail="model 'taxrisk' version 7 holds the alias 'champion'",
        version="7",
        run_id="abc123",
        metrics={
            "model.all_yield_capture": 0.61,
            "old_rules.all_yield_capture": 0.22,
            "model.random_auc": 0.7,
            "val_all_auc": 0.74,
            "labels.random.examples": 120.0,
            "labels.random.adjusted": 30.0,
            "time.fit_s": 3.5,
        },
        plots=("plots/calibration.png", "plots/yield_curve.png"),
    )

    class Stub:
        def get(self) -> modelinfo.ModelInfo:
            return info

    app = web.client.app
    app.state.api = dataclasses.replace(app.state.api, models=Stub())  # type: ignore[attr-defined]
    png = b"\x89PNG\r\n\x1a\nfake"
    monkeypatch.setattr(
        modelinfo, "model_plot", lambda s, i, name: png if name in i.plots else None
    )
    web.sign_in("analyst")
    html = web.client.get("/web/model").text
    assert "版本号" in html and ">7<" in html
    assert "回测：模型与旧规则比较" in html and "旧规则" in html
    assert "0.61" in html and "0.22" in html
    first = html.index("yield_curve.png")
    assert first < html.index("calibration.png")  # the yield curve first
    assert 'alt="收入曲线：按排序累计的补税收入"' in html
    r = web.client.get("/web/model/plots/plots/yield_curve.png")
    assert r.status_code == 200 and r.content == png and r.headers["content-type"] == "image/png"
    assert web.client.get("/web/model/plots/../../etc/passwd").status_code == 404
