"""Settings: built by a function, from TAXRISK_* and .env, nothing created at import."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from taxrisk.settings import get_settings


def test_defaults_live_under_one_workspace(workspace: Path) -> None:
    s = get_settings()
    assert s.root == workspace.resolve()
    assert s.tracking_uri == f"sqlite:///{workspace.resolve() / 'mlflow.db'}"
    assert s.cases_url.endswith("cases.db")
    assert not workspace.exists(), "building settings must not create the workspace"
    s.ensure_workspace()
    for d in (s.quality_dir, s.quarantine_dir, s.reports_dir, s.optuna_dir, s.artifacts_dir):
        assert d.is_dir()


def test_env_file_and_mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TAXRISK_WORKSPACE", raising=False)
    (tmp_path / ".env").write_text("TAXRISK_WORKSPACE=/srv/tr\nTAXRISK_DUCKDB_THREADS=1\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    s = get_settings()
    assert s.root == Path("/srv/tr")
    assert s.duckdb_threads == 1
    assert s.tracking_uri == "http://127.0.0.1:5000"


def test_production_refuses_placeholder_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAXRISK_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        get_settings()
    monkeypatch.setenv("TAXRISK_SECRET_KEY", "a-real-secret-value")
    assert get_settings().environment == "production"
