"""The console script's exits: usage errors show click's message and exit 2, library errors
one line and exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXE = str(Path(sys.executable).with_name("taxrisk"))


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_usage_error_is_a_usage_message(tmp_path: Path) -> None:
    res = _run("users", "add", "x", "--role", "wizard", cwd=tmp_path)
    assert res.returncode == 2
    assert "Invalid value for '--role'" in res.stderr and "unexpected" not in res.stderr


def test_library_error_is_one_line(tmp_path: Path) -> None:
    res = _run("runs", "show", "R-nope", cwd=tmp_path)
    assert res.returncode == 1
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: no scoring run 'R-nope'")
