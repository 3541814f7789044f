"""The data contract's tables as code (CONTRACT.md section 1).

One :class:`TableSchema` per table: its columns and their logical types, its key, its foreign
keys, the allowed values, which money may not be negative, and the *as-of rule* that says from
which date a row is known.

Logical column types and their clean (typed) form after loading:

==========  =========================================  ===============================
kind        in the file                                 clean column
==========  =========================================  ===============================
``str``     any text                                    string
``float``   number                                      float64
``int``     integer                                     int64
``date``    ISO ``YYYY-MM-DD`` (or a date/timestamp)    date
``month``   ``YYYY-MM`` (or a date/timestamp)           date: first day of the month
``quarter`` ``YYYY-Qn`` (or a date/timestamp)           date: first day of the quarter
==========  =========================================  ===============================

Every clean table also carries ``known_on`` (date, or null when the row has no date and is
always known): the day from which the row may be used, per the contract's as-of rule; a
versioned table (the returns) also carries ``superseded_on`` (date, or null): the day a later version of the same key (an amended
return) became known, from which the row is no longer used. The point-in-time filter is then
one expression for every table (:func:`taxrisk.features.tables.in_force`): ``known_on <= as_of``
and not ``superseded_on <= as_of``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "SCHEMAS",
    "Column",
    "ForeignKey",
    "KnownOn",
    "TableSchema",
    "load_order",
]

Kind = Literal["str", "float", "int", "date", "month", "quarter"]


@dataclass(frozen=True)
class Column:
    """One column of a contract table.

    ``nullable``: a null is allowed (otherwise a null quarantines the row, rule ``not_null``).
    ``nonneg``: money or a count that cannot be negative (rule ``negative_value``).
    ``allowed``: the allowed values (rule ``allowed_values``); nulls are governed by ``nullable``.
    ``decimals``: the decimals a ``float`` is recorded to (money: 2, yuan to the fen; meter
    readings and areas the same): the features round a sum of the column to them, so the sum
    is the same number in whatever order the engine's threads add it up.
    """

    name: str
    kind: Kind
    nullable: bool = False
    nonneg: bool = False
    allowed: tuple[str, ...] | None = None
    decimals: int | None = None


@dataclass(frozen=True)
class ForeignKey:
    """``columns`` of this table must match ``ref_columns`` of ``ref_table`` (rule ``foreign_key``)."""

    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class KnownOn:
    """How a row's ``known_on`` date is derived.

    ``column``: the date column that dates the row.
    ``period_end``: True when ``column`` is a period and the row is known at its last day.
    ``None`` column: the row has no date and is always known (reference tables).
    """

    column: str | None
    period_end: bool = False


@dataclass(frozen=True)
class TableSchema:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    optional: bool = False
    foreign_keys: tuple[ForeignKey, ...] = ()
    known_on: KnownOn = field(default_factory=lambda: KnownOn(None))
    #: Rows with the same key and a later ``known_on`` are versions (amendments), not
    #: duplicates: at each as-of date the latest version known then is used.
    versioned: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


def _c(name: str, kind: Kind = "str", **kw: object) -> Column:
    return Column(name, kind, **kw)  # type: ignore[arg-type]


def _money(name: str, nonneg: bool = True, nullable: bool = False) -> Column:
    return Column(name, "float", nullable=nullable, nonneg=nonneg, decimals=2)


_TP = ForeignKey(("taxpayer_id",), "taxpayers", ("taxpayer_id",))
_LOCAL_TAX_TYPES = ("urban_construction", "education_surcharge", "property", "land_use", "stamp")

SCHEMAS: dict[str, TableSchema] = {
    s.name: s
    for s in (
        TableSchema(
            "units",
            key=("unit_id",),
            columns=(
                _c("unit_id"),
                _c("parent_id", nullable=True),
                _c("level", allowed=("city", "county", "branch")),
                _c("name"),
                _c("capacity", "int", nonneg=True),
            ),
            foreign_keys=(ForeignKey(("parent_id",), "units", ("unit_id",)),),
        ),
        TableSchema(
            "taxpayers",
            key=("taxpayer_id",),
            columns=(
                _c("taxpayer_id"),
                _c("name"),
                _c("unit_id"),
                _c("industry"),
                _c("taxpayer_type", allowed=("general", "small_scale")),
                _c("collection_method", allowed=("self_assessed", "fixed_quota")),
                _c("registered_on", "date"),
                _c("deregistered_on", "date", nullable=True),
                _money("registered_capital"),
            ),
            foreign_keys=(ForeignKey(("unit_id",), "units", ("unit_id",)),),
            known_on=KnownOn("registered_on"),
        ),
        TableSchema(
            "vat_returns",
            key=("taxpayer_id", "period"),
            columns=(
                _c("taxpayer_id"),
                _c("period", "month"),
                _money("sales"),
                _money("output_tax"),
                _money("input_tax"),
                _money("input_tax_transferred_out"),
                _money("tax_payable", nonneg=False),
                _money("credit_carried_forward"),
                _c("filed_on", "date"),
            ),
            foreign_keys=(_TP,),
            known_on=KnownOn("filed_on"),
            versioned=True,
        ),
        TableSchema(
            "cit_returns",
            key=("taxpayer_id", "period"),
            columns=(
                _c("taxpayer_id"),
                _c("period", "quarter"),
                _money("revenue"),
                _money("cost"),
                _money("profit", nonneg=False),
                _money("tax_payable"),
                _c("filed_on", "date"),
            ),
            foreign_keys=(_TP,),
            known_on=KnownOn("filed_on"),
            versioned=True,
        ),
        TableSchema(
            "local_tax_returns",
            key=("taxpayer_id", "period", "tax_type"),
            optional=True,
            columns=(
                _c("taxpayer_id"),
                _c("period", "month"),
                _c("tax_type", allowed=_LOCAL_TAX_TYPES),
                _money("base"),
                _money("tax_payable"),
                _c("filed_on", "date"),
            ),
            foreign_keys=(_TP,),
            known_on=KnownOn("filed_on"),
            versioned=True,
        ),
        TableSchema(
            "invoices",
            key=("seller_id", "buyer_id", "period"),
            columns=(
                _c("seller_id"),
                _c("buyer_id"),
                _c("period", "month"),
                _money("amount", nonneg=False),
                _money("tax", nonneg=False),
                _c("count", "int", nonneg=True),
            ),
            # Either side may be outside the registry: no foreign keys (CONTRACT).
            known_on=KnownOn("period", period_end=True),
        ),
        TableSchema(
            "electricity",
            key=("taxpayer_id", "period"),
            optional=True,
            columns=(_c("taxpayer_id"), _c("period", "month"), _money("kwh"), _money("charge")),
            foreign_keys=(_TP,),
            known_on=KnownOn("period", period_end=True),
        ),
        TableSchema(
            "social_insurance",
            key=("taxpayer_id", "period"),
            optional=True,
            columns=(
                _c("taxpayer_id"),
                _c("period", "month"),
                _c("headcount", "int", nonneg=True),
                _money("wages"),
            ),
            foreign_keys=(_TP,),
            known_on=KnownOn("period", period_end=True),
        ),
        TableSchema(
            "registrations",
            key=("taxpayer_id", "changed_on", "change_type"),
            optional=True,
            columns=(
                _c("taxpayer_id"),
                _c("changed_on", "date"),
                _c(
                    "change_type",
                    allowed=("equity_transfer", "legal_rep", "capital", "address", "scope"),
                ),
                _money("amount", nullable=True),
                _c("counterparty", nullable=True),
            ),
            foreign_keys=(_TP,),
            known_on=KnownOn("changed_on"),
        ),
        TableSchema(
            "property",
            key=("taxpayer_id", "event_on", "event"),
            optional=True,
            columns=(
                _c("taxpayer_id"),
                _c("event_on", "date"),
                _c("event", allowed=("purchase", "sale", "lease_out")),
                _money("value"),
                _money("area_m2"),
            ),
            foreign_keys=(_TP,),
            known_on=KnownOn("event_on"),
        ),
        TableSchema(
            "industries",
            key=("industry",),
            optional=True,
            columns=(
                _c("industry"),
                _c("name"),
                _c("parent", nullable=True),
                _c(
                    "model",
                    nullable=True,
                    allowed=("power", "input_output", "kiln", "volume_density"),
                ),
            ),
            foreign_keys=(ForeignKey(("parent",), "industries", ("industry",)),),
        ),
        TableSchema(
            "industry_norms",
            key=("industry", "metric"),
            optional=True,
            columns=(_c("industry"), _c("metric"), _c("value", "float"), _c("note", nullable=True)),
        ),
        TableSchema(
            "operations",
            key=("taxpayer_id", "period", "metric"),
            optional=True,
            columns=(
                _c("taxpayer_id"),
                _c("period", "month"),
                _c("metric"),
                # physical quantities: tonnes to the kilogram, m3 to the litre, counts whole
                _c("value", "float", nonneg=True, decimals=3),
                _c("source", allowed=("officer", "third_party", "self_reported")),
            ),
            foreign_keys=(_TP,),
            known_on=KnownOn("period", period_end=True),
        ),
        TableSchema(
            "audits",
            key=("case_id",),
            columns=(
                _c("case_id"),
                _c("taxpayer_id"),
                _c("selected_on", "date"),
                _c("selection_reason", allowed=("rule", "random", "tip", "model", "campaign")),
                _c("selection_probability", "float", nullable=True),
                _c("unit_id"),
                _c("measure", allowed=("notice", "assessment", "audit")),
                _c("closed_on", "date", nullable=True),
                _c("outcome", nullable=True, allowed=("no_change", "adjusted")),
                _money("tax_recovered", nullable=True),
                _money("late_fees", nullable=True),
                _money("penalties", nullable=True),
                _c("covers_from", "month", nullable=True),
                _c("covers_to", "month", nullable=True),
            ),
            foreign_keys=(_TP, ForeignKey(("unit_id",), "units", ("unit_id",))),
            # The audit is known to exist from selected_on; its outcome only from closed_on.
            known_on=KnownOn("selected_on"),
        ),
    )
}


def load_order() -> list[str]:
    """Tables in an order where every foreign key's target comes first."""
    done: list[str] = []
    pending = list(SCHEMAS)
    while pending:
        for name in pending:
            refs = {fk.ref_table for fk in SCHEMAS[name].foreign_keys} - {name}
            if refs <= set(done):
                done.append(name)
                pending.remove(name)
                break
        else:  # pragma: no cover - the schema above has no cycles
            raise RuntimeError(f"foreign-key cycle among {pending}")
    return done
