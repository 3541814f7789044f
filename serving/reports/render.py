"""The explanation report of one referral (风险应对任务说明书), as HTML or PDF.

One Jinja template (``templates/report.html``, autoescaped, self-contained: inline CSS and
SVG) renders both; the PDF is that HTML through WeasyPrint, which finds the CJK font
(``WenQuanYi Micro Hei``, Debian's ``fonts-wqy-microhei``) through fontconfig. The case is
fetched through the case service, so a user who may not see it gets
:class:`~taxrisk.serving.errors.CaseNotFound`, as from the API.
"""

from __future__ import annotations

import datetime as dt
import logging
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import jinja2
from sqlalchemy.orm import Session

from ..config import ServingConfig, config_for
from ..store.action_log import Actor
from ..web.i18n import DEFAULT_LANG, translator
from .formatting import FILTERS
from .view import case_view

if TYPE_CHECKING:
    from taxrisk.settings import Settings

__all__ = ["TEMPLATES", "environment", "render_html", "render_report", "serving_config"]

TEMPLATES = Path(__file__).with_name("templates")
#: the CJK font the PDF needs (STACK.md); named first in the template's font stack
PDF_FONT = "WenQuanYi Micro Hei"

log = logging.getLogger(__name__)


@cache
def environment() -> jinja2.Environment:
    """The reports' Jinja environment (autoescape on for every template)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def serving_config(settings: Settings) -> ServingConfig:
    """The serving config of the settings (``TAXRISK_SERVING_CONFIG``)."""
    return config_for(settings)


def render_html(
    session: Session,
    actor: Actor,
    case_id: str,
    settings: Settings,
    *,
    lang: str = DEFAULT_LANG,
    today: dt.date | None = None,
) -> str:
    """The report as an HTML document (a string)."""
    from ..store.cases import get_case

    case = get_case(session, actor, case_id)
    t = translator(lang)
    view = case_view(session, case, t, settings)
    limits = serving_config(settings).time_limits
    return (
        environment()
        .get_template("report.html")
        .render(
            v=view,
            t=t,
            today=(today or dt.date.today()).isoformat(),
            time_limit=limits.get(case.recommended_measure),  # type: ignore[call-overload]
        )
    )


def render_report(
    session: Session,
    actor: Actor,
    case_id: str,
    settings: Settings,
    fmt: Literal["html", "pdf"],
    *,
    lang: str = DEFAULT_LANG,
    today: dt.date | None = None,
) -> bytes:
    """The explanation report of ``case_id`` as UTF-8 HTML or as PDF bytes.

    Raises :class:`~taxrisk.serving.errors.CaseNotFound` when the case does not exist or
    ``actor`` may not see it; ``ValueError`` for another ``fmt``.
    """
    if fmt not in ("html", "pdf"):
        raise ValueError(f"report format must be 'html' or 'pdf', got {fmt!r}")
    html = render_html(session, actor, case_id, settings, lang=lang, today=today)
    if fmt == "html":
        return html.encode("utf-8")
    return html_to_pdf(html)


def html_to_pdf(html: str) -> bytes:
    """WeasyPrint, with no network access (the report has no external resources)."""
    import weasyprint

    def _no_fetch(url: str, *args: object, **kwargs: object) -> dict[str, object]:
        raise ValueError(f"reports load no external resources (asked for {url})")

    pdf = weasyprint.HTML(string=html, url_fetcher=_no_fetch).write_pdf()
    assert pdf is not None
    return bytes(pdf)
