"""``taxrisk users add/list/revoke`` and ``taxrisk serve`` (a real uvicorn in a subprocess)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from taxrisk.serving.store.session import make_engine, session_factory, upgrade
from taxrisk.serving.store.users import authenticate
from typer.testing import CliRunner

from taxrisk.cli import app
from taxrisk.settings import get_settings


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_users_add_list_revoke(workspace: Path) -> None:
    code, out, err = run("users", "add", "alice", "--role", "admin")
    assert code == 0, err
    token = out.strip()
    assert len(token) >= 43 and "\n" not in token  # the token alone on stdout
    assert "alice" in err and "shown once" in err
    engine = make_engine(get_settings())
    with session_factory(engine)() as session:
        user = authenticate(session, token)
        assert user is not None and user.role == "admin"
    code, out, err = run("users", "list")
    assert code == 0
    assert "alice" in out + err
    assert token not in out + err  # never shown again
    code, _, err = run("users", "revoke", "alice")
    assert code == 0, err
    with session_factory(engine)() as session:
        assert authenticate(session, token) is None
    code, _, err = run("users", "revoke", "alice")
    assert code != 0
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("users", "add", "bob", "--role", "selector"), "needs a unit"),
        (("users", "add", "bob", "--role", "wizard"), "wizard"),
        (("users", "add", "bob", "--role", "selector", "--unit", "NOPE"), "unknown unit"),
        (("users", "revoke", "nobody"), "no user named"),
    ],
)
def test_users_refusals(workspace: Path, args: tuple[str, ...], message: str) -> None:
    code, out, err = run(*args)
    assert code != 0
    assert message in out + err + str(CliRunner().invoke(app, list(args)).exception)


def test_users_add_then_duplicate(workspace: Path) -> None:
    assert run("users", "add", "carol", "--role", "analyst")[0] == 0
    code, out, _ = run("users", "add", "carol", "--role", "analyst")
    assert code != 0
    assert out.strip() == ""  # no token for a user that was not created


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_starts_the_api_and_prints_the_url(workspace: Path) -> None:
    settings = get_settings()
    settings.ensure_workspace()
    engine = make_engine(settings)
    upgrade(engine)
    engine.dispose()
    port = _free_port()
    env = {**os.environ, "TAXRISK_WORKSPACE": str(workspace), "MLFLOW_DISABLE_TELEMETRY": "true"}
    exe = Path(sys.executable).with_name("taxrisk")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.stdout.read() if proc.stdout else "") from None
                time.sleep(0.2)
        assert r.status_code == 200
        assert r.json()["status"] == "ok"
        assert "server" not in r.headers  # no banner
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/runs").status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
    assert f"http://127.0.0.1:{port}" in output
