"""The case selectors' and analysts' web pages (server-rendered Jinja2, ``/web/...``).

:func:`mount` adds them to an app: the router of :mod:`.pages`, the static files under
``/web/static``, the two exception handlers of the pages (the error page, the redirect to
sign-in), a shutdown step disposing of an engine the pages built for themselves, and ``GET /`` -> ``/web/`` when the app has no root route of its own. The pages use
the API's store sessions and serving config when ``create_app`` put them on
``app.state.api``, else they build their own from ``settings``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from taxrisk.settings import Settings

__all__ = ["mount"]


def mount(app: FastAPI, settings: Settings) -> None:
    """Add the pages to ``app`` (call once, before the app starts)."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager
    from typing import Any

    from fastapi import Request
    from fastapi.responses import RedirectResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.routing import Route

    from .i18n import translator
    from .pages import router
    from .security import load_session, save_session
    from .state import SECURITY_HEADERS, STATIC, PageError, SignInRequired, WebState

    state = WebState.build(settings)
    app.state.taxrisk_web = state
    app.include_router(router)
    app.mount("/web/static", StaticFiles(directory=STATIC), name="web-static")

    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        ws = load_session(request, state.signer)
        t = translator(ws.lang)
        html = state.env.get_template("error.html").render(
            t=t,
            viewer=None,
            status=exc.status,
            message=t(exc.key),
            here=request.url.path,
            here_full=request.url.path,
            csrf_field="",
            csrf_token="",
        )
        response = Response(
            html, status_code=exc.status, media_type="text/html", headers=SECURITY_HEADERS
        )
        save_session(response, ws, state.signer, secure=state.secure_cookies)
        return response

    async def sign_in_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        from urllib.parse import urlencode

        return RedirectResponse(
            "/web/signin?" + urlencode({"next": exc.next_url}),
            status_code=303,
            headers=SECURITY_HEADERS,
        )

    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with previous(a) as inner:
            yield inner
        state.close()  # the engine the pages built for themselves, if they did

    app.router.lifespan_context = lifespan
    app.add_exception_handler(PageError, page_error)
    app.add_exception_handler(SignInRequired, sign_in_required)

    has_root = any(isinstance(r, Route) and r.path == "/" for r in app.router.routes)
    if not has_root:

        async def root() -> RedirectResponse:
            return RedirectResponse("/web/", status_code=307)

        app.add_api_route("/", root, include_in_schema=False, methods=["GET"])
