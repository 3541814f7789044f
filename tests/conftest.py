"""Shared fixtures.

``demo_world``: one small synthetic city (session scope), generated once by the project's own
generator, for integration tests of loading, features, training and evaluation. Tests needing
exact assertions write their own tiny files instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLBACKEND", "Agg")

DEMO_TAXPAYERS = 1500
DEMO_MONTHS = 30
DEMO_SEED = 7


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated data folder (with ``truth/``); read-only for tests."""
    from taxrisk.experiments.demo import generate

    out = tmp_path_factory.mktemp("demo_world")
    generate(out, taxpayers=DEMO_TAXPAYERS, months=DEMO_MONTHS, seed=DEMO_SEED)
    return out


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace folder, set as TAXRISK_WORKSPACE (and no MLFLOW_TRACKING_URI)."""
    ws = tmp_path / "ws"
    monkeypatch.setenv("TAXRISK_WORKSPACE", str(ws))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return ws
