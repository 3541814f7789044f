"""What the pages share: the state :func:`~taxrisk.serving.web.mount` keeps on the app, the
per-request dependencies (store session, web session, signed-in user) and page rendering.

The store session is the API's when ``create_app`` built one (``app.state.api.sessions``, the
same engine and config), else one built here from the settings on first use (a test app made
of ``FastAPI()`` + :func:`mount`). Routes commit their writes themselves; the session is
closed (and anything uncommitted rolled back) after the response.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.orm import Session, sessionmaker

from ..config import ServingConfig
from ..reports.formatting import FILTERS
from ..reports.render import TEMPLATES as REPORT_TEMPLATES
from ..reports.render import serving_config
from ..reports.view import item_name
from ..store.action_log import Actor
from ..store.models import User
from .i18n import LANGS, Translator, translator
from .monitoring_view import psi_reading
from .security import CSRF_FIELD, WebSession, load_session, save_session, serializer

if TYPE_CHECKING:
    from taxrisk.settings import Settings

    from ..modelinfo import ModelInfoCache

__all__ = [
    "DbDep",
    "PageError",
    "SessionCookie",
    "SignInRequired",
    "Viewer",
    "WebState",
    "get_db",
    "get_state",
    "redirect",
    "render",
]

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")

#: response headers of every page: no framing, no sniffing, no scripts at all
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class PageError(Exception):
    """Answer with the error page: ``status`` and a message key of the translations."""

    def __init__(self, status: int, key: str, detail: str = "") -> None:
        self.status = status
        self.key = key
        self.detail = detail
        super().__init__(f"{status} {key} {detail}".strip())


class SignInRequired(Exception):
    """Redirect to the sign-in page (then back to ``next``)."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url
        super().__init__(next_url)


@dataclass
class WebState:
    settings: Settings
    signer: URLSafeTimedSerializer
    env: jinja2.Environment
    _config: ServingConfig | None = None
    _sessions: sessionmaker[Session] | None = None
    _models: ModelInfoCache | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, settings: Settings) -> WebState:
        env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(
                [jinja2.FileSystemLoader(TEMPLATES), jinja2.FileSystemLoader(REPORT_TEMPLATES)]
            ),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(FILTERS)
        env.filters["psi_reading"] = psi_reading
        env.filters["item_label"] = item_name
        return cls(settings=settings, signer=serializer(settings.secret_key), env=env)

    def sessions(self, request: Request) -> sessionmaker[Session]:
        api = getattr(request.app.state, "api", None)
        if api is not None:
            return api.sessions  # type: ignore[no-any-return]
        with self._lock:
            if self._sessions is None:
                from ..store.session import make_engine, session_factory

                self._sessions = session_factory(make_engine(self.settings))
            return self._sessions

    def config(self, request: Request) -> ServingConfig:
        api = getattr(request.app.state, "api", None)
        if api is not None:
            return api.config  # type: ignore[no-any-return]
        if self._config is None:
            self._config = serving_config(self.settings)
        return self._config

    def models(self, request: Request) -> ModelInfoCache:
        api = getattr(request.app.state, "api", None)
        if api is not None and getattr(api, "models", None) is not None:
            return api.models  # type: ignore[no-any-return]
        with self._lock:
            if self._models is None:
                from ..modelinfo import ModelInfoCache

                self._models = ModelInfoCache(self.settings)
            return self._models

    def close(self) -> None:
        """Dispose of the engine built here, if any (at the app's shutdown)."""
        with self._lock:
            if self._sessions is not None:
                bind = self._sessions.kw.get("bind")
                if bind is not None:
                    bind.dispose()
                self._sessions = None

    @property
    def secure_cookies(self) -> bool:
        return self.settings.environment == "production"


def get_state(request: Request) -> WebState:
    state: WebState = request.app.state.taxrisk_web
    return state


StateDep = Annotated[WebState, Depends(get_state)]


def get_db(request: Request, state: StateDep) -> Iterator[Session]:
    session = state.sessions(request)()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


DbDep = Annotated[Session, Depends(get_db)]


def get_web_session(request: Request, state: StateDep) -> WebSession:
    ws = load_session(request, state.signer)
    wanted = request.query_params.get("lang")
    if wanted in LANGS:
        ws.set_lang(wanted)
    return ws


SessionCookie = Annotated[WebSession, Depends(get_web_session)]


@dataclass(frozen=True)
class Viewer:
    """The signed-in user as the pages see it."""

    user_id: int
    name: str
    role: str
    unit_id: str | None

    @property
    def actor(self) -> Actor:
        return Actor(self.name, self.role, self.unit_id)

    @property
    def writes_cases(self) -> bool:
        return self.role in ("admin", "selector")

    @property
    def oversees(self) -> bool:
        return self.role in ("admin", "analyst")


def current_viewer(request: Request, db: DbDep, ws: SessionCookie) -> Viewer | None:
    if ws.uid is None:
        return None
    user = db.get(User, ws.uid)
    if user is None or user.revoked_at is not None:
        ws.sign_out()
        return None
    if user.role == "selector" and not user.unit_id:
        return None  # a selector without a unit has no rights (as in the API)
    return Viewer(user.user_id, user.name, user.role, user.unit_id)


def require_viewer(
    request: Request, viewer: Annotated[Viewer | None, Depends(current_viewer)]
) -> Viewer:
    if viewer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return viewer


def require_oversight(viewer: Annotated[Viewer, Depends(require_viewer)]) -> Viewer:
    if not viewer.oversees:
        raise PageError(403, "errors.forbidden")
    return viewer


MaybeViewer = Annotated[Viewer | None, Depends(current_viewer)]
ViewerDep = Annotated[Viewer, Depends(require_viewer)]
OversightDep = Annotated[Viewer, Depends(require_oversight)]


def render(
    request: Request,
    state: WebState,
    ws: WebSession,
    template: str,
    *,
    viewer: Viewer | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    t: Translator = translator(ws.lang)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    html = state.env.get_template(template).render(
        t=t,
        viewer=viewer,
        csrf_field=CSRF_FIELD,
        csrf_token=ws.csrf,
        here=request.url.path,
        here_full=here,
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    save_session(response, ws, state.signer, secure=state.secure_cookies)
    return response


def redirect(state: WebState, ws: WebSession, url: str) -> Response:
    response = RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)
    save_session(response, ws, state.signer, secure=state.secure_cookies)
    return response
