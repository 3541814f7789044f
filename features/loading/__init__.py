"""Loading a data folder: read every contract table, validate it, quarantine bad rows.

:func:`load_folder` turns a data folder (CONTRACT section 1) into clean typed tables
(:class:`~taxrisk.features.tables.Tables`) on a DuckDB connection, plus per-table counts.
:func:`load_validated` does the same once per folder and keeps the result as a validated
snapshot that later commands reuse (:mod:`.snapshot`).

Modules, one concept each: :mod:`.reading` (finding files, format sniffing, encodings,
headers), :mod:`.rules` (the quarantine rules in their order, and versions), :mod:`.quarantine`
(counts and quarantine files), :mod:`.folder` (:func:`load_folder`), :mod:`.snapshot`
(validate once).

Reading
    ``NAME.csv`` (UTF-8, a BOM is accepted, header row, every column read as text so that bad
    values are seen rather than coerced away) or ``NAME.parquet`` (any column types; dates and
    periods may be strings or date/timestamp types). The ``truth/`` subfolder is never read.
    Unknown files are ignored with a note; unknown columns are left out of the clean table and
    listed in :attr:`TableCounts.extra_columns`. A *nullable* contract column that is absent
    from the file is read as all-null and listed in :attr:`TableCounts.missing_columns`; a
    non-nullable one stops the run (:class:`~taxrisk.features.errors.MissingColumn`).

Stop cases (a :class:`~taxrisk.features.errors.DataError`, one line naming file and column)
    missing required table, both ``NAME.csv`` and ``NAME.parquet``, missing required column,
    empty file, header-only *required* table, binary data posing as CSV, not UTF-8 (with the
    ``iconv -f GBK`` hint), a malformed CSV line, an unreadable Parquet file. A header-only
    *optional* table is treated as absent and reported in :attr:`LoadResult.missing_optional`.

Rules (stable names; a row breaking several is quarantined under the first, in this order;
within one rule, columns in schema order)
    1. ``not_null``        a non-nullable column is null or blank
    2. ``type``            a non-blank number does not parse (``float``/``int``; NaN and
                           infinities count as unparsable; ``int`` accepts ``3.0``, not ``3.5``)
    3. ``date_format``     a non-blank date is not ISO ``YYYY-MM-DD``
    4. ``period_format``   a non-blank period is not ``YYYY-MM`` / ``YYYY-Qn``
    5. ``allowed_values``  a value outside the column's allowed set
    6. ``negative_value``  a negative value where the contract says it cannot be negative
    7. ``duplicate_key``   the key (as typed values) is carried by more than one row that passed
                           rules 1-6; every such row is quarantined, none trusted over another.
                           For the returns (``TableSchema.versioned``) the key is taken with
                           ``filed_on``: a later filing for the same key is an amendment, a
                           *version*, not a duplicate (see *Versions* below)
    8. ``foreign_key``     a reference does not resolve in the *clean* parent table (so a row
                           whose parent was quarantined goes too); self references (units
                           ``parent_id``, industries ``parent``) resolve within the table,
                           cascading until stable. Invoice counterparties are not checked.

Versions (point in time, for the returns)
    The rules run once over every row, so no rule may let a row filed later decide the fate
    of a row known earlier. An amended return (same key, later ``filed_on``) therefore does
    not quarantine the original: both are kept, and the clean table's ``superseded_on`` says
    from when the original is replaced. :func:`~taxrisk.features.tables.in_force` (used by
    ``Tables.known`` and the feature windows) keeps, at each as-of date, the latest version
    known then. Two versions filed the same day conflict: both are quarantined
    (``duplicate_key``), and the version before them stops on that day. Every other table's
    as-of date is part of its key or is a registry/case id, so a duplicate is never split
    over time and the rule stays as the contract says.

Rows dated after ``as_of`` are *not* quarantined: they are used (kept in the clean table) and
counted in :attr:`TableCounts.not_yet_known`; features see them only through
``Tables.known(name, as_of)``.

Invariant: ``rows_in == rows_used + sum(quarantined.values())`` for every table.

Quarantine files (``quarantine_dir/<table>.csv``, only for tables with quarantined rows; stale
files of other contract tables are removed): ``source_row`` (1-based position among the
file's data rows; for a CSV without embedded line breaks, the line number minus one), ``rule``,
``column`` (the offending column; the key columns joined by ``+`` for ``duplicate_key``),
then every contract column: the original text for the offending column, the parsed value
rendered as text for the others.

Engine
    Each table is read once into a materialised DuckDB table ``_stage_<name>`` (typed columns,
    ``_check``: the index of the rule a row broke or null, ``_value``: the offending original
    text); the key and foreign-key rules then mark rows in place; after counting and writing
    the quarantine, the failing rows and the two bookkeeping columns are dropped, and the
    clean table ``<name>`` is a view of the stage plus ``known_on``, so features never re-run
    validation. The stage is a plain scan with insertion order preserved, so its ``rowid`` is
    the source row. Load one folder per connection (names are fixed). All typing goes through
    :func:`~taxrisk.features.tables.parse_column`; the checks are Ibis expressions; reading
    files and the few set-level updates are DuckDB SQL kept in this module. Nothing is pulled
    into pandas; writing the quarantine reads the failing rows only. Blank lines in a CSV are
    skipped (they are not rows). Every path and identifier goes into SQL quoted
    (:func:`~taxrisk.features.tables.sql_str`, :func:`.reading.ident`).

    The set rules' first pass is read-only (:func:`.rules.key_scan`): the key hashes of the
    rows passing rules 1-6, sorted (a sort of one 64-bit column is several times cheaper
    than a hash aggregate over 90M invoice keys) to find keys carried twice, and a flag per
    reference to another table; the updates that mark rows run only when that pass finds
    something, and then exactly as described above.

Writing the validated snapshot (``load_folder(sink=...)``, what ``validate`` does)
    A table no other table refers to, without self references, is first written straight
    from its file to the snapshot by one query that raises at the first row breaking a row
    rule; its keys and references are then checked on the written file. When nothing fires
    (the usual case: no stage, no second copy of the data in memory), that file is the
    clean table. When anything fires, the file is removed and the table is staged as above,
    so quarantines, counts and files are the same either way (tested against the staged
    path, ``tests/features/test_loading_key_scan.py``). The parents (``units``,
    ``taxpayers``) and self-referencing tables are always staged: later foreign keys read
    their stage.
"""

from __future__ import annotations

from .folder import LoadResult, TableCounts, load_folder
from .reading import find_tables
from .rules import RULES, RULES_VERSION
from .snapshot import Snapshot, fingerprint, load_validated

__all__ = [
    "RULES",
    "RULES_VERSION",
    "LoadResult",
    "Snapshot",
    "TableCounts",
    "find_tables",
    "fingerprint",
    "load_folder",
    "load_validated",
]
