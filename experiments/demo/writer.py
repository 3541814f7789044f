"""Streaming writers: one file per table, appended chunk by chunk.

Parquet files get one row group per chunk (LZ4; dictionary encoding for text columns); CSV files a header then rows. Periods are
written as ``YYYY-MM``/``YYYY-Qn`` strings, dates as Parquet/Arrow ``date32`` (ISO in CSV).
Output is byte-identical for identical input (no timestamps are written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = ["SCHEMAS_ARROW", "TableWriter"]

_S, _F, _I, _D = pa.string(), pa.float64(), pa.int64(), pa.date32()


def _schema(*cols: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(n, t) for n, t in cols])


SCHEMAS_ARROW: dict[str, pa.Schema] = {
    "units": _schema(("unit_id", _S), ("parent_id", _S), ("level", _S), ("name", _S), ("capacity", _I)),
    "taxpayers": _schema(
        ("taxpayer_id", _S), ("name", _S), ("unit_id", _S), ("industry", _S), ("taxpayer_type", _S),
        ("collection_method", _S), ("registered_on", _D), ("deregistered_on", _D), ("registered_capital", _F),
    ),
    "vat_returns": _schema(
        ("taxpayer_id", _S), ("period", _S), ("sales", _F), ("output_tax", _F), ("input_tax", _F),
        ("input_tax_transferred_out", _F), ("tax_payable", _F), ("credit_carried_forward", _F), ("filed_on", _D),
    ),
    "cit_returns": _schema(
        ("taxpayer_id", _S), ("period", _S), ("revenue", _F), ("cost", _F), ("profit", _F),
        ("tax_payable", _F), ("filed_on", _D),
    ),
    "local_tax_returns": _schema(
        ("taxpayer_id", _S), ("period", _S), ("tax_type", _S), ("base", _F), ("tax_payable", _F), ("filed_on", _D)
    ),
    "invoices": _schema(("seller_id", _S), ("buyer_id", _S), ("period", _S), ("amount", _F), ("tax", _F), ("count", _I)),
    "electricity": _schema(("taxpayer_id", _S), ("period", _S), ("kwh", _F), ("charge", _F)),
    "social_insurance": _schema(("taxpayer_id", _S), ("period", _S), ("headcount", _I), ("wages", _F)),
    "registrations": _schema(
        ("taxpayer_id", _S), ("changed_on", _D), ("change_type", _S), ("amount", _F), ("counterparty", _S)
    ),
    "property": _schema(("taxpayer_id", _S), ("event_on", _D), ("event", _S), ("value", _F), ("area_m2", _F)),
    "industries": _schema(("industry", _S), ("name", _S), ("parent", _S), ("model", _S)),
    "industry_norms": _schema(("industry", _S), ("metric", _S), ("value", _F), ("note", _S)),
    "operations": _schema(("taxpayer_id", _S), ("period", _S), ("metric", _S), ("value", _F), ("source", _S)),
    "audits": _schema(
        ("case_id", _S), ("taxpayer_id", _S), ("selected_on", _D), ("selection_reason", _S),
        ("selection_probability", _F), ("unit_id", _S), ("measure", _S), ("closed_on", _D), ("outcome", _S),
        ("tax_recovered", _F), ("late_fees", _F), ("penalties", _F), ("covers_from", _S), ("covers_to", _S),
    ),
    "truth/gaps": _schema(
        ("taxpayer_id", _S), ("period", _S), ("tax_due", _F), ("tax_declared", _F), ("gap", _F), ("scheme", _S)
    ),
}  # fmt: skip

OPTIONAL = frozenset(
    {"local_tax_returns", "electricity", "social_insurance", "registrations", "property", "industries",
     "industry_norms", "operations"}
)  # fmt: skip


class TableWriter:
    """Appends Arrow tables to ``out/NAME.parquet`` (or ``.csv``), one file per table."""

    def __init__(self, out: Path, fmt: Literal["parquet", "csv"] = "parquet") -> None:
        self.out = Path(out)
        self.fmt = fmt
        self._writers: dict[str, pq.ParquetWriter | pacsv.CSVWriter] = {}
        self.rows: dict[str, int] = {}

    def path(self, name: str) -> Path:
        return self.out / f"{name}.{self.fmt}"

    def write(self, name: str, table: pa.Table) -> None:
        schema = SCHEMAS_ARROW[name]
        table = table.select(schema.names).cast(schema)
        w = self._writers.get(name)
        if w is None:
            path = self.path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            if self.fmt == "parquet":
                strings = [f.name for f in schema if pa.types.is_string(f.type)]
                w = pq.ParquetWriter(path, schema, compression="lz4", use_dictionary=strings)
            else:
                w = pacsv.CSVWriter(path, schema)
            self._writers[name] = w
            self.rows[name] = 0
        if table.num_rows:
            w.write_table(table)
        self.rows[name] += table.num_rows

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()
