"""The pages' session cookie, CSRF tokens and form parsing.

* **Session**: one cookie (``taxrisk_web``, path ``/web``, HttpOnly, SameSite=Lax, Secure in
  production) holding ``{uid, csrf, lang}`` signed and timestamped with ``settings.secret_key``
  (itsdangerous). It is issued on the first visit, before sign-in, so the sign-in form has a
  CSRF token too; signing in stores the user id and rotates the CSRF token; signing out clears
  the user. The user is re-read from the store on every request, so a revoked token ends its
  web sessions at once. Sessions expire after :data:`MAX_AGE` seconds.
* **CSRF**: every POST carries the session's token in a hidden ``csrf_token`` field; a POST
  without it, or with another, is refused with 403 before anything else runs.
* **Forms**: ``application/x-www-form-urlencoded`` bodies parsed here (no multipart: the
  pages upload nothing), at most :data:`MAX_FORM_BYTES`.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from .i18n import DEFAULT_LANG, LANGS

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "MAX_AGE",
    "FormTooLarge",
    "WebSession",
    "csrf_ok",
    "load_session",
    "parse_form",
    "safe_next",
    "save_session",
    "serializer",
]

COOKIE = "taxrisk_web"
COOKIE_PATH = "/web"
CSRF_FIELD = "csrf_token"
MAX_AGE = 12 * 3600  # seconds: one working day
MAX_FORM_BYTES = 64 * 1024
_SALT = "taxrisk.web.session"


class FormTooLarge(ValueError):
    """A form body over :data:`MAX_FORM_BYTES`."""


@dataclass
class WebSession:
    """The signed cookie's content; ``dirty`` when the response must set it again."""

    csrf: str
    uid: int | None = None
    lang: str = DEFAULT_LANG
    dirty: bool = field(default=False, compare=False)

    @classmethod
    def fresh(cls, lang: str = DEFAULT_LANG) -> WebSession:
        return cls(csrf=secrets.token_urlsafe(32), lang=lang, dirty=True)

    def sign_in(self, uid: int) -> None:
        self.uid = uid
        self.csrf = secrets.token_urlsafe(32)  # a new token for the new privilege
        self.dirty = True

    def sign_out(self) -> None:
        self.uid = None
        self.csrf = secrets.token_urlsafe(32)
        self.dirty = True

    def set_lang(self, lang: str) -> None:
        if lang in LANGS and lang != self.lang:
            self.lang = lang
            self.dirty = True

    def dump(self) -> dict[str, Any]:
        return {"csrf": self.csrf, "uid": self.uid, "lang": self.lang}


def serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=_SALT)


def load_session(request: Request, signer: URLSafeTimedSerializer) -> WebSession:
    """The request's session, or a fresh anonymous one (bad, old or missing cookie)."""
    raw = request.cookies.get(COOKIE)
    if raw:
        try:
            data = signer.loads(raw, max_age=MAX_AGE)
        except BadSignature:  # includes SignatureExpired
            data = None
        if isinstance(data, dict) and isinstance(data.get("csrf"), str):
            uid = data.get("uid")
            lang = data.get("lang")
            return WebSession(
                csrf=data["csrf"],
                uid=uid if isinstance(uid, int) else None,
                lang=lang if lang in LANGS else DEFAULT_LANG,
            )
    return WebSession.fresh()


def save_session(
    response: Response, ws: WebSession, signer: URLSafeTimedSerializer, *, secure: bool
) -> None:
    """Set the cookie on ``response`` when the session changed (or is new)."""
    if not ws.dirty:
        return
    response.set_cookie(
        COOKIE,
        signer.dumps(ws.dump()),
        max_age=MAX_AGE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=secure,
    )


async def parse_form(request: Request) -> dict[str, str]:
    """A URL-encoded form body as ``{field: value}`` (last value wins), UTF-8."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge(f"form body over {MAX_FORM_BYTES} bytes")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return {}
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def csrf_ok(ws: WebSession, form: dict[str, str]) -> bool:
    sent = form.get(CSRF_FIELD, "")
    return bool(sent) and hmac.compare_digest(sent.encode(), ws.csrf.encode())


def safe_next(target: str | None, default: str) -> str:
    """A local redirect target under ``/web`` (never another host), else ``default``."""
    if (
        target
        and target.startswith("/web")
        and not target.startswith("//")
        and "\\" not in target
        and all(ch.isprintable() for ch in target)
    ):
        return target
    return default
