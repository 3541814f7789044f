"""The FastAPI application: :func:`create_app` builds it from the settings.

The engine is built once here (``make_engine`` + ``upgrade``) unless one is passed in (tests,
benchmarks), and disposed of at shutdown when it was built here. Everything the routes need
lives in ``app.state.api`` (:class:`~taxrisk.serving.api.deps.ApiState`); nothing is global.

Layout: ``GET /health`` (no auth), the API under ``/api/v1``, ``/openapi.json`` and ``/docs``;
the web pages under ``/web/`` (``GET /`` redirects there) unless ``web=False``.
Request bodies are limited to ``max_body_size`` bytes (413 JSON beyond); every response carries
``X-Content-Type-Options: nosniff``, API responses ``Cache-Control: no-store`` (they hold
taxpayers' data), and JSON bodies escape ``<``, ``>`` and ``&`` (:class:`_ResponseGuard`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from taxrisk.serving.config import ServingConfig, config_for
from taxrisk.serving.modelinfo import ModelInfoCache
from taxrisk.serving.store.session import make_engine, session_factory, upgrade

import taxrisk
from taxrisk.settings import Settings, get_settings

from .deps import ApiState
from .errors import install_error_handlers
from .listing import StoreClock, VersionedCache
from .routes import api_router, health

__all__ = ["API_PREFIX", "MAX_BODY_SIZE", "create_app"]

API_PREFIX = "/api/v1"
#: request bodies beyond this many bytes get 413 (feedback with 4,000 characters of notes in
#: CJK is ~12 KiB)
MAX_BODY_SIZE = 64 * 1024


#: bytes that never occur in JSON outside strings, escaped inside them (as Go and Rails do):
#: a body echoing ``<script>`` stays inert even if something renders it as HTML
_JSON_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"))


class _ResponseGuard:
    """Every response: ``X-Content-Type-Options: nosniff``; API responses: ``Cache-Control:
    no-store`` (they hold taxpayers' data); JSON bodies: ``<``, ``>``, ``&`` as ``\\u`` escapes.

    Pure ASGI (cheap). A JSON body is held until complete, escaped, and sent with its new
    ``content-length``; other bodies pass through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope.get("path", "").startswith(API_PREFIX)
        start: Message | None = None
        chunks: list[bytes] = []

        async def guarded_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])]
                present = {k.lower() for k, _ in headers}
                if b"x-content-type-options" not in present:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if api and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.startswith(b"application/json"):
                    start = message  # hold it: the length changes
                    return
                await send(message)
                return
            if message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(chunks)
                for raw, escaped in _JSON_ESCAPES:
                    body = body.replace(raw, escaped)
                start["headers"] = [
                    (k, v) for k, v in start["headers"] if k.lower() != b"content-length"
                ] + [(b"content-length", str(len(body)).encode())]
                held, start = start, None
                await send(held)
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await send(message)

        await self.app(scope, receive, guarded_send)


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _BodyLimit:
    """413 ``{"detail": ...}`` for a request body over ``max_bytes`` (pure ASGI).

    A declared ``content-length`` over the limit is refused before anything is read; otherwise
    the body is read (at most ``max_bytes`` + one chunk, however it is streamed) and handed to
    the app whole. The app never sees an oversized body.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body over {self.max_bytes} bytes"
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None:
            if not declared.strip().isdigit():
                await _send_json(send, 400, "invalid content-length")
                return
            if int(declared) > self.max_bytes:
                await _send_json(send, 413, too_large)
                return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await _send_json(send, 413, too_large)
                return
            more = bool(message.get("more_body", False))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    config: ServingConfig | None = None,
    max_body_size: int = MAX_BODY_SIZE,
    model_cache_seconds: float = 30.0,
    freshness: float = 0.05,
    web: bool = True,
) -> FastAPI:
    """The API over the case store named by ``settings`` (or over ``engine``, not upgraded
    and not disposed of here). ``config``: the serving config (default: the packaged one,
    overlaid with ``TAXRISK_SERVING_CONFIG`` when set). ``freshness``: seconds a reading of
    the store version is trusted (:class:`~taxrisk.serving.api.listing.StoreClock`; a change
    committed by another process shows within twice that). ``web``: also mount the pages
    (``/web/...``, :func:`taxrisk.serving.web.mount`) on the same store sessions."""
    settings = settings or get_settings()
    own_engine = engine is None
    if engine is None:
        settings.ensure_workspace()
        engine = make_engine(settings)
        upgrade(engine)
    config = config or config_for(settings)
    state = ApiState(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        config=config,
        models=ModelInfoCache(settings, ttl=model_cache_seconds),
        cache=VersionedCache(),
        clock=StoreClock(freshness),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if own_engine:
            state.engine.dispose()

    app = FastAPI(
        title="taxrisk",
        summary="Risk scoring and case dispatch for tax bureaus",
        version=taxrisk.__version__,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.api = state
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(api_router, prefix=API_PREFIX)
    if web:
        from taxrisk.serving.web import mount

        mount(app, settings)
    app.add_middleware(_BodyLimit, max_bytes=max_body_size)
    app.add_middleware(_ResponseGuard)  # outermost: its headers go on every response
    return app
