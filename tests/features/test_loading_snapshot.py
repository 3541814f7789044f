"""Validate once (issue 12.5): the validated snapshot is reused while the folder's files are
unchanged, a changed file invalidates it, and a partial snapshot (a run killed while writing)
is never used. Tables read from a snapshot equal the tables validated in memory."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from factory import world_frames, write_world
from loading_world import base_world, write_folder
from taxrisk.features.loading import fingerprint, load_folder, load_validated
from taxrisk.features.loading import snapshot as snapshot_mod
from taxrisk.features.loading.snapshot import snapshot_dir
from typer.testing import CliRunner

AS_OF = dt.date(2024, 6, 30)


def _frames(result: object) -> dict[str, pd.DataFrame]:
    tables = result.tables  # type: ignore[attr-defined]
    out = {}
    for name in tables:
        df = tables[name].to_pandas()
        out[name] = df.sort_values(list(df.columns)).reset_index(drop=True)
    return out


def _assert_same_tables(a: object, b: object) -> None:
    fa, fb = _frames(a), _frames(b)
    assert list(fa) == list(fb)
    for name in fa:
        pd.testing.assert_frame_equal(fa[name], fb[name], check_dtype=True, obj=name)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_world(world_frames(40, 20, seed=3), tmp_path / "data folder's")  # quote, space


def test_snapshot_tables_equal_the_validated_tables(folder: Path, tmp_path: Path) -> None:
    in_memory = load_folder(folder, as_of=AS_OF)
    fresh = load_validated(folder, snapshots=tmp_path / "snaps", as_of=AS_OF)
    assert fresh.snapshot is not None and not fresh.snapshot.reused
    _assert_same_tables(in_memory, fresh)
    for name, c in in_memory.counts.items():
        assert fresh.counts[name] == c, name
    assert fresh.missing_optional == in_memory.missing_optional


def test_second_load_reuses_the_snapshot(
    folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snaps = tmp_path / "snaps"
    first = load_validated(folder, snapshots=snaps, as_of=AS_OF)
    with caplog.at_level("INFO", logger="taxrisk.features.loading.snapshot"):
        second = load_validated(folder, snapshots=snaps, as_of=AS_OF)
    assert first.snapshot is not None and second.snapshot is not None
    assert second.snapshot.reused and second.snapshot.fingerprint == first.snapshot.fingerprint
    assert f"using validated snapshot {first.snapshot.fingerprint} from " in caplog.text
    _assert_same_tables(first, second)
    assert second.counts == first.counts
    # counts that depend on the date are recomputed for another as-of date
    early = load_validated(folder, snapshots=snaps, as_of=dt.date(2022, 6, 30))
    assert early.snapshot is not None and early.snapshot.reused
    assert early.counts["vat_returns"].not_yet_known > first.counts["vat_returns"].not_yet_known
    assert early.counts["vat_returns"].not_yet_known == (
        load_folder(folder, as_of=dt.date(2022, 6, 30)).counts["vat_returns"].not_yet_known
    )
    # fresh=True validates again and rewrites
    again = load_validated(folder, snapshots=snaps, as_of=AS_OF, fresh=True)
    assert again.snapshot is not None and not again.snapshot.reused


def test_a_changed_file_invalidates_the_snapshot(folder: Path, tmp_path: Path) -> None:
    snaps = tmp_path / "snaps"
    first = load_validated(folder, snapshots=snaps)
    assert first.snapshot is not None
    units = folder / "units.csv"
    text = units.read_text(encoding="utf-8")
    units.write_text(text.replace("市局", "市局X"), encoding="utf-8")  # same size class, new bytes
    os.utime(units, ns=(units.stat().st_atime_ns, units.stat().st_mtime_ns))  # mtime kept
    second = load_validated(folder, snapshots=snaps)
    assert second.snapshot is not None and not second.snapshot.reused
    assert second.snapshot.fingerprint != first.snapshot.fingerprint
    names = second.tables["units"].name.to_pyarrow().to_pylist()
    assert "市局X" in names
    # only the newest snapshot of the folder is kept
    kept = [d.name for d in snapshot_dir(snaps, folder).iterdir()]
    assert kept == [second.snapshot.fingerprint]
    # a new table file changes the fingerprint too
    (folder / "property.csv").write_text(
        "taxpayer_id,event_on,event,value,area_m2\n", encoding="utf-8"
    )
    assert fingerprint(folder) != second.snapshot.fingerprint


def test_fingerprint_sees_a_big_file_rewritten_with_its_size(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", base_world())
    big = folder / "invoices.csv"
    header, *_ = big.read_text(encoding="utf-8").splitlines()
    line = "S1,B1,2024-01,100.0,13.0,1\n"
    big.write_text(header + "\n" + line * 60000, encoding="utf-8")  # > 1 MiB: sampled
    st = big.stat()
    before = fingerprint(folder)
    big.write_text(header + "\n" + line.replace("S1", "S2") * 60000, encoding="utf-8")
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert big.stat().st_size == st.st_size
    assert fingerprint(folder) != before  # the samples differ
    assert fingerprint(folder) == fingerprint(folder)


def test_a_partial_snapshot_is_never_used(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed while writing leaves a partial folder: the next run validates afresh."""
    snaps = tmp_path / "snaps"
    fp = fingerprint(folder)

    class Killed(BaseException):
        pass

    def killed_before_rename(self: Path, target: Path) -> Path:
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(Path, "rename", killed_before_rename)
        with pytest.raises(Killed):
            load_validated(folder, snapshots=snaps)
    parent = snapshot_dir(snaps, folder)
    partial = [d for d in parent.iterdir() if d.name.startswith(".partial-")]
    assert len(partial) == 1 and (partial[0] / "manifest.json").is_file()
    assert not (parent / fp).exists()
    # the killed process is gone: give the partial folder a dead process's id
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = parent / f".partial-{fp}-{dead.pid}"
    os.replace(partial[0], orphan)
    # a folder under the final name without a complete manifest is not trusted either
    (parent / fp).mkdir()
    (parent / fp / "units.parquet").write_bytes(b"PAR1")
    result = load_validated(folder, snapshots=snaps)
    assert result.snapshot is not None and not result.snapshot.reused
    assert not orphan.exists()
    again = load_validated(folder, snapshots=snaps)
    assert again.snapshot is not None and again.snapshot.reused
    _assert_same_tables(result, again)
    assert snapshot_mod.RULES_VERSION >= 2


def test_cli_features_reuses_what_validate_wrote(
    folder: Path, tmp_path: Path, workspace: Path
) -> None:
    from taxrisk.cli import features as _f  # noqa: F401  registers the commands
    from taxrisk.cli import validate as _v  # noqa: F401
    from taxrisk.cli._app import app

    res = CliRunner().invoke(app, ["validate", str(folder), "--as-of", "2023-06-30"])
    assert res.exit_code == 0, res.output
    assert "validated and wrote snapshot" in res.output
    out = tmp_path / "m.parquet"
    res = CliRunner().invoke(
        app, ["features", str(folder), "--as-of", "2023-06-30", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "using validated snapshot" in res.output
    assert len(pd.read_parquet(out)) > 0


_KILLED_CHILD = """
import sys, time
from pathlib import Path
from taxrisk.features.loading import load_validated, snapshot

def stalled_finish(self, result, folder):
    print("written", flush=True)  # every table file is there, not the rename
    time.sleep(120)

snapshot._Writer.finish = stalled_finish
load_validated(Path(sys.argv[1]), snapshots=Path(sys.argv[2]))
"""


def test_a_run_killed_while_writing_leaves_nothing_usable(folder: Path, tmp_path: Path) -> None:
    """A real process killed (SIGKILL) after writing the table files, before the rename."""
    import signal
    import sys

    snaps = tmp_path / "snaps"
    with subprocess.Popen(
        [sys.executable, "-c", _KILLED_CHILD, str(folder), str(snaps)],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "written"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
    parent = snapshot_dir(snaps, folder)
    fp = fingerprint(folder)
    assert not (parent / fp).exists()
    assert [d.name for d in parent.iterdir()] == [f".partial-{fp}-{child.pid}"]
    result = load_validated(folder, snapshots=snaps)
    assert result.snapshot is not None and not result.snapshot.reused
    assert [d.name for d in parent.iterdir()] == [fp]  # the orphan is gone
