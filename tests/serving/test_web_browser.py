"""The pages in a real browser: Debian's Chromium driven by Playwright, against a real uvicorn
server on a loopback port over the seeded store (SQLite).

A selector signs in with its token, opens its unit's queue, opens a case, reports the result,
and finds the case closed, in Chinese and in English. Screenshots go to
``$TAXRISK_TEST_ARTIFACTS/web`` (default ``test-artifacts/web`` at the repository root).
Chromium is launched as STACK.md says (``/usr/bin/chromium``, its flags, a fresh profile);
never ``playwright install``.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from store_factories import Seeded
from taxrisk.serving.api.main import create_app
from taxrisk.serving.store.models import Case

from taxrisk.settings import get_settings

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
REPO = Path(__file__).resolve().parents[2]
TEXT = {
    "zh": {
        "token": "API 令牌",
        "signin": "登录",
        "queue": "案件队列",
        "outcome": "应对结论",
        "tax": "补缴税款",
        "notes": "情况说明",
        "submit": "提交",
        "closed_notice": "反馈已提交，案件已办结。",
        "closed": "已办结",
        "status": "状态",
        "filter": "筛选",
    },
    "en": {
        "token": "API token",
        "signin": "Sign in",
        "queue": "Case queue",
        "outcome": "Outcome",
        "tax": "Tax recovered",
        "notes": "Notes",
        "submit": "Submit",
        "closed_notice": "Feedback recorded; the case is closed.",
        "closed": "closed",
        "status": "Status",
        "filter": "Filter",
    },
}


def _artifacts() -> Path:
    root = Path(os.environ.get("TAXRISK_TEST_ARTIFACTS") or REPO / "test-artifacts")
    out = root / "web"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(seeded: Seeded, workspace: Path) -> Iterator[str]:
    """The whole app (API and pages) under uvicorn on 127.0.0.1; its base URL."""
    url = seeded.engine.url.render_as_string(hide_password=False)
    settings = get_settings(workspace=workspace, database_url=url, secret_key="browser-test")
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start", pytrace=False)
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=20)


@pytest.fixture(scope="module")
def chromium_path() -> str:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"{CHROMIUM} not found: install Debian's chromium (scripts/setup.sh --test)",
            pytrace=False,
        )
    return CHROMIUM


@pytest.mark.parametrize("seeded", ["sqlite"], indirect=True)
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_selector_reports_a_result_in_the_browser(
    seeded: Seeded, server: str, chromium_path: str, tmp_path: Path, lang: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    text = TEXT[lang]
    info = seeded.info
    case_id = next(
        c for c in info.by_status["new"] if c in info.by_unit["U01"] and c != info.case_ids[0]
    )
    case = seeded.session.get(Case, case_id)
    assert case is not None
    shots = _artifacts()
    profile = tmp_path / "chromium-profile"
    problems: list[str] = []
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium_path,
            args=FLAGS,
            headless=True,
            viewport={"width": 1366, "height": 860},
            locale="zh-CN" if lang == "zh" else "en-US",
        )
        try:
            page = ctx.new_page()
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on(
                "request",
                lambda r: (
                    problems.append(f"outside request {r.url}")
                    if not r.url.startswith(server)
                    else None
                ),
            )
            page.on(
                "response",
                lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            page.goto(f"{server}/web/signin?lang={lang}")
            expect(page.locator("html")).to_have_attribute(
                "lang", "zh-CN" if lang == "zh" else "en"
            )
            page.get_by_label(text["token"]).fill(info.tokens["sel_u01"])
            page.get_by_role("button", name=text["signin"], exact=True).click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("城东区税务局")
            expect(page.get_by_role("heading", level=1)).to_contain_text(text["queue"])
            page.screenshot(path=str(shots / f"{lang}-1-queue.png"), full_page=True)

            page.get_by_role("link", name=case.taxpayer_name, exact=True).click()
            expect(page.get_by_role("heading", level=1)).to_contain_text(case.taxpayer_name)
            expect(page.locator("svg.waterfall")).to_be_visible()
            page.screenshot(path=str(shots / f"{lang}-2-case.png"), full_page=True)

            page.get_by_label(text["outcome"]).select_option("adjusted")
            page.get_by_label(text["tax"]).fill("23456")
            page.get_by_label(text["notes"]).fill("<b>约谈举证</b> checked in the browser")
            page.get_by_role("button", name=text["submit"], exact=True).click()
            expect(page.get_by_role("status")).to_have_text(text["closed_notice"])
            expect(page.locator(".case-head .badge.status-closed")).to_have_text(text["closed"])
            expect(page.locator("form.feedback")).to_have_count(0)
            expect(page.locator(".result dd.notes")).to_have_text(
                "<b>约谈举证</b> checked in the browser"
            )
            page.screenshot(path=str(shots / f"{lang}-3-closed.png"), full_page=True)

            page.goto(f"{server}/web/units/U01/cases")
            page.get_by_label(text["status"]).select_option("closed")
            page.get_by_role("button", name=text["filter"], exact=True).click()
            row = page.get_by_role("row").filter(has_text=case.taxpayer_name)
            expect(row).to_have_count(1)
            expect(row.locator(".badge.status-closed")).to_have_text(text["closed"])
            page.screenshot(path=str(shots / f"{lang}-4-queue-closed.png"), full_page=True)
        finally:
            ctx.close()
    shutil.rmtree(profile, ignore_errors=True)
    seeded.session.expire_all()
    assert seeded.session.get(Case, case_id).status == "closed"  # type: ignore[union-attr]
    assert not problems, problems
