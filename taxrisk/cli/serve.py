"""``taxrisk serve [--host H] [--port P]``: the API and the web pages, with uvicorn."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from ._app import app, console


def _url(host: str, port: int) -> str:
    try:
        shown = f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:  # a host name
        shown = host
    return f"http://{shown}:{port}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command("serve")
def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (default: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
) -> None:
    """Serve the HTTP API (/api/v1, /docs) and the case selectors' web pages (/web/).

    One uvicorn worker over the case store of TAXRISK_DATABASE_URL (default the workspace's
    cases.db, created and migrated if needed) and the MLflow registry of MLFLOW_TRACKING_URI.
    Users authenticate with the tokens of `taxrisk users add`. Tokens travel in clear over
    plain HTTP: beyond this machine, serve behind a TLS reverse proxy. Stop with Ctrl-C.
    """
    import uvicorn

    from taxrisk.serving.api.main import create_app
    from taxrisk.settings import get_settings

    settings = get_settings()
    application = create_app(settings)
    url = _url(host, port)
    console.print(f"taxrisk serving on {url}", markup=False, soft_wrap=True)
    console.print(
        f"  API {url}/api/v1   docs {url}/docs   pages {url}/web/   health {url}/health",
        markup=False,
        soft_wrap=True,
    )
    if not _is_loopback(host):
        console.print(
            f"warning: listening on {host}, beyond this machine; tokens travel in clear "
            "without TLS (put a TLS reverse proxy in front)",
            markup=False,
            soft_wrap=True,
        )
    uvicorn.run(
        application,
        host=host,
        port=port,
        workers=1,
        log_level="info",
        server_header=False,
        proxy_headers=False,
    )
