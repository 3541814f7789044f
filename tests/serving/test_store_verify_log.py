"""``taxrisk verify-log``: exit 0 with the head on an intact log, one line and exit 1 on a
broken one (tampered with raw SQL on the real database)."""

from __future__ import annotations

import sys

import pytest
from sqlalchemy import text
from store_factories import Seeded
from taxrisk.serving.store.action_log import verify

from taxrisk.cli import main


def _run(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["taxrisk", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(exit_.value.code or 0), out.out + out.err


@pytest.fixture
def store_env(seeded: Seeded, monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> Seeded:
    monkeypatch.setenv(
        "TAXRISK_DATABASE_URL", seeded.engine.url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("TAXRISK_WORKSPACE", str(tmp_path))
    seeded.session.close()
    return seeded


def test_intact_log(
    store_env: Seeded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    head = verify(store_env.session)
    store_env.session.close()
    code, out = _run(["verify-log"], monkeypatch, capsys)
    assert code == 0, out
    assert f"{head.entries} entries verified" in out
    assert f"head: {head.head_seq}:{head.head_hash}" in out
    code, out = _run(
        ["verify-log", "--anchor", f"{head.head_seq}:{head.head_hash}"], monkeypatch, capsys
    )
    assert code == 0, out


@pytest.mark.parametrize(
    ("sql", "seq", "problem"),
    [
        ("UPDATE actions SET reason = '已核实' WHERE seq = 4", 4, "edited"),
        ("DELETE FROM actions WHERE seq = 9", 9, "deleted"),
    ],
)
def test_broken_log(
    store_env: Seeded,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sql: str,
    seq: int,
    problem: str,
) -> None:
    with store_env.engine.begin() as conn:
        conn.execute(text(sql))
    store_env.engine.dispose()
    code, out = _run(["verify-log"], monkeypatch, capsys)
    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("error: action log broken at entry ")
    assert f"entry {seq} ({problem})" in lines[0]


def test_bad_anchor_and_missing_store(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    monkeypatch.setenv("TAXRISK_WORKSPACE", str(tmp_path))
    monkeypatch.delenv("TAXRISK_DATABASE_URL", raising=False)
    code, out = _run(["verify-log"], monkeypatch, capsys)
    assert code == 1 and "no case store" in out
    code, out = _run(["verify-log", "--anchor", "12:xyz"], monkeypatch, capsys)
    assert code == 2 and "SEQ:HASH" in out
