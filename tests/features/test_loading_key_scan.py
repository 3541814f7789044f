"""The one-pass key scan (``rules.key_scan``) and the direct write of clean tables
(``rules.write_if_clean``) quarantine exactly what the rule-by-rule set rules did. On a
dirty copy of a small world (duplicates, same-day and later amendments, references to
unknown taxpayers and units, cascading self references), the counts, the quarantine files
and the clean tables equal those of a reference that finds repeated keys with a hash
aggregate and runs every foreign-key update unconditionally (the code before); and the
validated snapshot written straight from the files equals the one written from the stages.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from taxrisk.features.loading import LoadResult, load_folder, load_validated, rules
from taxrisk.features.loading import folder as folder_mod
from taxrisk.features.loading.reading import ident
from taxrisk.features.schema import SCHEMAS, TableSchema

WORLD = Path(__file__).parent / "data" / "identity_world"


def _reference_set_checks(
    con: ibis.BaseBackend,
    stage: str,
    schema: TableSchema,
    checks: list[rules.Check],
    loaded: set[str],
) -> None:
    """The set rules as they ran before the key scan: a hash aggregate for repeated keys,
    then every foreign-key update whether or not a reference misses."""
    st = ident(stage)
    key = schema.key
    dup_key = tuple(c for c in (*key, schema.known_on.column if schema.versioned else None) if c)
    dup_idx = len(checks)
    checks.append(rules.Check("duplicate_key", "+".join(dup_key), row_level=False))
    key_list = ", ".join(ident(k) for k in key)
    cand = ident(f"_refcand_{stage}")
    con.raw_sql(
        f"CREATE OR REPLACE TEMP TABLE {cand} AS SELECT hash({key_list}) AS h FROM {st} "
        "WHERE _check IS NULL GROUP BY h HAVING count(*) > 1"
    )
    among = f"hash({key_list}) IN (SELECT h FROM {cand})"
    multi = rules.execute_count(con, f"SELECT count(*) FROM {cand}") > 0
    if multi:
        rules._mark_duplicates(con, st, dup_key, dup_idx, among)
    fks = sorted(
        (fk for fk in schema.foreign_keys if fk.ref_table in loaded | {schema.name}),
        key=lambda fk: fk.ref_table == schema.name,
    )
    for fk in fks:
        idx = len(checks)
        checks.append(rules.Check("foreign_key", "+".join(fk.columns), row_level=False))
        sql = rules._fk_update(st, fk, idx, own=fk.ref_table == schema.name)
        while rules.execute_count(con, sql) and fk.ref_table == schema.name:
            pass
    if schema.versioned and multi:
        rules._date_versions(con, st, schema, dup_idx, among)
    con.raw_sql(f"DROP TABLE IF EXISTS {cand}")


def _dirty_world(root: Path) -> Path:
    """The identity world with every set rule made to fire (and a few row rules)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for f in sorted(WORLD.glob("*.parquet")):
        t = pq.read_table(f)
        n = t.num_rows
        name = f.stem
        extra: list[pa.Table] = []
        if name == "units":
            orphan = t.slice(n - 1, 1)
            orphan = orphan.set_column(
                orphan.schema.get_field_index("unit_id"), "unit_id", pa.array(["X1"])
            )
            orphan = orphan.set_column(
                orphan.schema.get_field_index("parent_id"), "parent_id", pa.array(["NOPE"])
            )
            child = orphan.set_column(
                orphan.schema.get_field_index("unit_id"), "unit_id", pa.array(["X2"])
            )
            child = child.set_column(
                child.schema.get_field_index("parent_id"), "parent_id", pa.array(["X1"])
            )
            extra += [orphan, child]
        if name == "taxpayers":
            extra.append(t.take(rng.choice(n, 5, replace=False)))  # duplicated taxpayers
            moved = t.take(rng.choice(n, 3, replace=False))
            moved = moved.set_column(
                moved.schema.get_field_index("unit_id"), "unit_id", pa.array(["X2"] * 3)
            )
            t = t.filter(pc.invert(pc.is_in(t["taxpayer_id"], moved["taxpayer_id"])))
            extra.append(moved)  # their unit is quarantined (cascade): so are they and theirs
        if "taxpayer_id" in t.column_names and name != "taxpayers":
            ghosts = t.take(rng.choice(n, min(n, 7), replace=False))
            ghosts = ghosts.set_column(
                ghosts.schema.get_field_index("taxpayer_id"),
                "taxpayer_id",
                pa.array([f"GHOST{i}" for i in range(ghosts.num_rows)]),
            )
            t = pa.concat_tables([t.slice(0, n // 2), ghosts, t.slice(n // 2)])
        if n > 10 and name not in ("taxpayers", "units", "industries", "industry_norms"):
            extra.append(t.take(rng.choice(n, 6, replace=False)))  # exact duplicates
        if name in ("vat_returns", "cit_returns", "local_tax_returns"):
            later = t.take(rng.choice(n, 9, replace=False))
            i = later.schema.get_field_index("filed_on")
            filed = later["filed_on"].to_pylist()
            later = later.set_column(
                i,
                "filed_on",
                pa.array([d + dt.timedelta(days=40) for d in filed], later.schema.field(i).type),
            )
            extra.append(later)  # amendments: versions, not duplicates
        if extra:
            t = pa.concat_tables([t, *[e.cast(t.schema) for e in extra]])
        pq.write_table(t, root / f.name)
    return root


@pytest.mark.parametrize("batch", [7, 1 << 20])
def test_key_scan_quarantines_what_the_rule_by_rule_pass_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    world = _dirty_world(tmp_path / "dirty")
    monkeypatch.setattr(rules, "_BATCH_ROWS", batch)  # 7: flags found in a later batch
    got = load_folder(world, as_of=dt.date(2025, 6, 30), quarantine_dir=tmp_path / "q_new")
    with monkeypatch.context() as m:
        m.setattr(folder_mod, "set_checks", _reference_set_checks)
        ref = load_folder(world, as_of=dt.date(2025, 6, 30), quarantine_dir=tmp_path / "q_ref")
    fired = {r for c in ref.counts.values() for r in c.quarantined}
    assert {"duplicate_key", "foreign_key"} <= fired  # the dirty world exercises both rules
    assert sum(c.superseded for c in ref.counts.values()) > 0  # and versions
    for name, c in ref.counts.items():
        g = got.counts[name]
        assert (g.rows_in, g.rows_used, g.quarantined, g.not_yet_known, g.superseded) == (
            c.rows_in,
            c.rows_used,
            c.quarantined,
            c.not_yet_known,
            c.superseded,
        ), name
        if c.quarantine_file is not None:
            assert g.quarantine_file is not None
            assert g.quarantine_file.read_bytes() == c.quarantine_file.read_bytes(), name
        else:
            assert g.quarantine_file is None
        a = got.tables.tables[name].to_pyarrow()
        b = ref.tables.tables[name].to_pyarrow()
        assert a.schema == b.schema, name
        keys = [(col, "ascending") for col in a.column_names]
        assert a.sort_by(keys).equals(b.sort_by(keys)), name


def test_repeated_hashes_are_exactly_the_keys_carried_twice() -> None:
    """``key_scan``'s repeated hashes equal a GROUP BY ... HAVING count(*) > 1, over many
    batches, with rows failing a row rule left out."""
    rng = np.random.default_rng(1)
    n = 5000
    keys = rng.integers(0, 4000, n)
    check = np.where(rng.random(n) < 0.1, 3, -1)
    con = ibis.duckdb.connect()
    con.con.register(
        "_src",
        pa.table({"k": pa.array(keys), "c": pa.array(check).cast(pa.int16())}),
    )
    con.raw_sql(
        'CREATE TABLE "_stage_t" AS SELECT k, CASE WHEN c < 0 THEN NULL ELSE c END AS _check '
        "FROM _src"
    )
    old = rules._BATCH_ROWS
    try:
        rules._BATCH_ROWS = 333
        n, repeated, unresolved = rules.key_scan(
            con, '"_stage_t"', '"_stage_t"', '"k"', [], where="_check IS NULL"
        )
    finally:
        rules._BATCH_ROWS = old
    want = sorted(
        r[0]
        for r in con.raw_sql(
            'SELECT hash("k") h FROM "_stage_t" WHERE _check IS NULL GROUP BY h HAVING count(*) > 1'
        ).fetchall()
    )
    assert len(want) > 100
    assert n == int((check < 0).sum())
    assert repeated.tolist() == want
    assert unresolved == set()


def _one_fault_each(root: Path) -> Path:
    """The identity world with one fault per table kind the direct write must give up on:
    a row rule (a negative VAT sales figure), a duplicated invoice, an electricity reading of
    an unknown taxpayer; every other table clean."""
    root.mkdir(parents=True)
    for f in sorted(WORLD.glob("*.parquet")):
        t = pq.read_table(f)
        if f.stem == "vat_returns":
            i = t.schema.get_field_index("sales")
            sales = t["sales"].to_pylist()
            sales[len(sales) // 2] = -1.0
            t = t.set_column(i, "sales", pa.array(sales, t.schema.field(i).type))
        if f.stem == "invoices":
            t = pa.concat_tables([t, t.slice(t.num_rows - 1, 1)])
        if f.stem == "electricity":
            i = t.schema.get_field_index("taxpayer_id")
            ids = t["taxpayer_id"].to_pylist()
            ids[-1] = "GHOST"
            t = t.set_column(i, "taxpayer_id", pa.array(ids, t.schema.field(i).type))
        pq.write_table(t, root / f.name)
    return root


def _snapshot_tables(result: LoadResult) -> dict[str, pa.Table]:
    assert result.snapshot is not None
    out = {}
    for f in sorted(result.snapshot.path.glob("*.parquet")):
        t = pq.read_table(f)
        out[f.stem] = t.sort_by([(c, "ascending") for c in t.column_names])
    return out


@pytest.mark.parametrize("world", ["clean", "one_fault_each", "dirty"])
def test_direct_write_equals_the_staged_path(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    world: str,
) -> None:
    """``load_validated`` writes a table with no broken rule straight from its file (no
    stage); the snapshot, the counts and the quarantine files equal those of the staged
    path for every table, and a table with one broken rule of any kind is staged."""
    make = {"clean": lambda p: WORLD, "one_fault_each": _one_fault_each, "dirty": _dirty_world}
    folder = make[world](tmp_path / "world")
    as_of = dt.date(2025, 6, 30)
    with caplog.at_level(logging.INFO, logger="taxrisk.features.loading"):
        got = load_validated(
            folder, snapshots=tmp_path / "s_new", as_of=as_of, quarantine_dir=tmp_path / "q_new"
        )
    direct = {
        r.getMessage().split(":")[0] for r in caplog.records if "(no stage)" in r.getMessage()
    }
    with monkeypatch.context() as m:
        m.setattr(folder_mod, "_streamable", lambda schema: False)
        ref = load_validated(
            folder, snapshots=tmp_path / "s_ref", as_of=as_of, quarantine_dir=tmp_path / "q_ref"
        )
    streamable = {n for n in ref.counts if folder_mod._streamable(SCHEMAS[n])}
    if world == "clean":
        assert direct == streamable  # every table no other refers to went the direct way
    elif world == "one_fault_each":
        assert direct == streamable - {"vat_returns", "invoices", "electricity"}
        assert got.counts["vat_returns"].quarantined == {"negative_value": 1}
        assert got.counts["invoices"].quarantined == {"duplicate_key": 2}
        assert got.counts["electricity"].quarantined == {"foreign_key": 1}
    else:
        assert not direct & {"vat_returns", "invoices", "electricity", "audits"}
    assert _snapshot_tables(got).keys() == _snapshot_tables(ref).keys()
    for name, t in _snapshot_tables(ref).items():
        g = _snapshot_tables(got)[name]
        assert g.schema == t.schema, name
        assert g.equals(t), name
    for name, c in ref.counts.items():
        g = got.counts[name]
        assert g.table == c.table and g.rows_in == c.rows_in and g.rows_used == c.rows_used
        assert (g.quarantined, g.not_yet_known, g.superseded) == (
            c.quarantined,
            c.not_yet_known,
            c.superseded,
        ), name
        assert (g.null_counts, g.ranges, g.missing_columns, g.extra_columns) == (
            c.null_counts,
            c.ranges,
            c.missing_columns,
            c.extra_columns,
        ), name
        if c.quarantine_file is None:
            assert g.quarantine_file is None, name
        else:
            assert g.quarantine_file is not None
            assert g.quarantine_file.read_bytes() == c.quarantine_file.read_bytes(), name
