"""A large, valid data folder for timing ``validate`` (the required tables only).

Not the synthetic city (no planted risk, no ``truth/``): plausible shapes and sizes, fast to
write. Everything is generated inside DuckDB from hashes of row numbers (deterministic for a
seed, no Python row loops).

    python experiments/make_bench_folder.py OUT [--taxpayers 1000000] [--months 36]
        [--invoices-per-month 2] [--format parquet|csv] [--seed 1]

Column types as the demo generator writes them: ids and periods as text, dates as dates,
money as doubles. Sizes: taxpayers N; vat_returns N x months; cit_returns N x months/3; invoices
N x months x invoices-per-month; units 1 + 10 + 100; audits N / 50.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import duckdb

log = logging.getLogger("make_bench_folder")


def _u(expr: str, seed: int) -> str:
    """A uniform [0, 1) number from a hash of ``expr`` and the seed."""
    return f"((hash({expr}, {seed}) % 1000003) / 1000003.0)"


def make(out: Path, taxpayers: int, months: int, per_month: int, fmt: str, seed: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    opts = "(FORMAT parquet, COMPRESSION zstd)" if fmt == "parquet" else "(FORMAT csv, HEADER true)"
    start_year, start_month = 2022, 1
    n, m = taxpayers, months

    def write(name: str, sql: str) -> None:
        t0 = time.time()
        con.execute(f"COPY ({sql}) TO '{out / f'{name}.{fmt}'}' {opts}")
        log.info("%s written in %.1f s", name, time.time() - t0)

    period = (
        f"strftime(make_date({start_year} + (({start_month} - 1 + mi) // 12)::INT, "
        f"(({start_month} - 1 + mi) % 12 + 1)::INT, 1), '%Y-%m')"
    )
    filed = (
        f"make_date({start_year} + (({start_month} + mi) // 12)::INT, "
        f"(({start_month} + mi) % 12 + 1)::INT, 15)"
    )
    write(
        "units",
        """
        SELECT 'U0' AS unit_id, NULL AS parent_id, 'city' AS level, '市局' AS name, 2000 AS capacity
        UNION ALL
        SELECT 'U' || i, 'U0', 'county', '县局' || i, 500 FROM range(1, 11) t(i)
        UNION ALL
        SELECT 'U' || i, 'U' || (1 + (i - 11) % 10), 'branch', '分局' || i, 100
        FROM range(11, 111) t(i)
        """,
    )
    write(
        "taxpayers",
        f"""
        SELECT 'T' || lpad(i::VARCHAR, 8, '0') AS taxpayer_id, '纳税人' || i AS name,
               'U' || (11 + i % 100) AS unit_id, 'C' || (10 + i % 40) AS industry,
               CASE WHEN {_u("i", seed)} < 0.3 THEN 'general' ELSE 'small_scale' END
                   AS taxpayer_type,
               CASE WHEN {_u("i + 7", seed)} < 0.2 THEN 'fixed_quota' ELSE 'self_assessed' END
                   AS collection_method,
               DATE '2010-01-01' + (i % 4000)::INT AS registered_on,
               CASE WHEN i % 25 = 0 THEN DATE '2023-06-30' END AS deregistered_on,
               round(1e5 + {_u("i + 3", seed)} * 1e7, 2) AS registered_capital
        FROM range({n}) t(i)
        """,
    )
    write(
        "vat_returns",
        f"""
        SELECT 'T' || lpad(i::VARCHAR, 8, '0') AS taxpayer_id, {period} AS period,
               round(s, 2) AS sales, round(s * 0.13, 2) AS output_tax,
               round(s * 0.11, 2) AS input_tax, 0.0::DOUBLE AS input_tax_transferred_out,
               round(s * 0.02, 2) AS tax_payable, 0.0::DOUBLE AS credit_carried_forward,
               {filed} AS filed_on
        FROM (SELECT i, mi, 1e4 + {_u("i * 64 + mi", seed)} * 1e6 AS s
              FROM range({n}) a(i), range({m}) b(mi))
        """,
    )
    write(
        "cit_returns",
        f"""
        SELECT 'T' || lpad(i::VARCHAR, 8, '0') AS taxpayer_id,
               ({start_year} + qi // 4)::VARCHAR || '-Q' || (qi % 4 + 1)::VARCHAR AS period,
               round(r, 2) AS revenue, round(r * 0.9, 2) AS cost, round(r * 0.1, 2) AS profit,
               round(r * 0.025, 2) AS tax_payable,
               make_date({start_year} + ((qi + 1) // 4)::INT,
                         (((qi + 1) % 4) * 3 + 1)::INT, 20) AS filed_on
        FROM (SELECT i, qi, 3e4 + {_u("i * 16 + qi", seed)} * 3e6 AS r
              FROM range({n}) a(i), range({max(m // 3, 1)}) b(qi))
        """,
    )
    write(
        "invoices",
        f"""
        SELECT 'T' || lpad(i::VARCHAR, 8, '0') AS seller_id,
               'T' || lpad(((i + 1 + k * 7919 + mi * 104729) % {n})::VARCHAR, 8, '0') AS buyer_id,
               {period} AS period,
               round(a, 2) AS amount, round(a * 0.13, 2) AS tax,
               (1 + (hash(i, mi, k) % 20))::BIGINT AS count
        FROM (SELECT i, mi, k, 1e3 + {_u("i * 128 + mi * 2 + k", seed)} * 1e5 AS a
              FROM range({n}) a(i), range({m}) b(mi), range({per_month}) c(k))
        """,
    )
    write(
        "audits",
        f"""
        SELECT 'A' || lpad(j::VARCHAR, 7, '0') AS case_id,
               'T' || lpad((j * 50)::VARCHAR, 8, '0') AS taxpayer_id,
               DATE '2022-03-01' + (j % 700)::INT AS selected_on,
               CASE WHEN j % 10 = 0 THEN 'random' ELSE 'rule' END AS selection_reason,
               CASE WHEN j % 10 = 0 THEN 0.01::DOUBLE END AS selection_probability,
               'U' || (11 + (j * 50) % 100) AS unit_id, 'assessment' AS measure,
               CASE WHEN j % 3 <> 0 THEN DATE '2022-06-01' + (j % 700)::INT END AS closed_on,
               CASE WHEN j % 3 = 1 THEN 'adjusted' WHEN j % 3 = 2 THEN 'no_change' END AS outcome,
               CASE WHEN j % 3 = 1 THEN 5000.0::DOUBLE WHEN j % 3 = 2 THEN 0.0::DOUBLE END AS tax_recovered,
               CASE WHEN j % 3 <> 0 THEN 0.0::DOUBLE END AS late_fees,
               CASE WHEN j % 3 <> 0 THEN 0.0::DOUBLE END AS penalties,
               '2021-01' AS covers_from, '2021-12' AS covers_to
        FROM range({max(n // 50, 1)}) t(j)
        """,
    )
    (out / "_READY").write_text("ok\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--taxpayers", type=int, default=1_000_000)
    ap.add_argument("--months", type=int, default=36)
    ap.add_argument("--invoices-per-month", type=int, default=2)
    ap.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    make(args.out, args.taxpayers, args.months, args.invoices_per_month, args.format, args.seed)


if __name__ == "__main__":
    main()
