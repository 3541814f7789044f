"""Point-in-time training sets: one example per audit, featured as of its selection.

Audit outcomes come from an :class:`AuditOutcomeSource`: the contract's ``audits`` table
(:class:`AuditTableSource`) and the case store's closed cases
(``taxrisk.serving.feedback.StoreOutcomes``), joined by :class:`CombinedSource`. The builder
only needs the source's frame of outcomes known at the as-of date.

Point in time (DESIGN "Point in time"):

* an audit is an example only if it closed on or before the as-of date (its label is known);
  audits still open at the as-of date, or closed after it, are known but unlabeled;
* its features are those of the feature matrix as of its *snapshot*, a date on or before its
  ``selected_on``: with ``snapshot="exact"`` (the default) the selection date itself, so the
  example sees exactly what a scoring run on that date sees (the matrix builder reads every
  table at the as-of date's *information date*, the last day of the previous month, and
  builds once per information date, so exact snapshots cost little); ``"month_end"`` the
  last day of the month before the selection (or ``selected_on`` itself when it is a month
  end), whose information date is one month earlier still (one month more lag than scoring);
  ``"quarter_end"`` likewise with quarters. Nothing dated after the snapshot reaches an
  example.
* registry attributes that change over time and that no table dates (``taxpayer_type``,
  ``collection_method``: the ``taxpayers`` table holds their value at extraction, possibly
  set after the audit) are kept out of the examples' features (:data:`UNDATED_ATTRIBUTES`);
  registered capital is taken as of the date by the matrix (``log_registered_capital``, from
  ``registrations`` capital changes).
* ``selection_reason`` and ``selection_probability`` are kept beside the features, never in
  them.

Targets: ``adjusted`` (1 if the outcome is ``adjusted``), ``tax_recovered`` (yuan; 0 unless
adjusted) **on the metric's scale**: with ``metric_months`` set, the recovered amount times
``metric_months / covered months`` (``covers_from``..``covers_to`` inclusive, the scale capped
at ``max_scale``, by default 1: a cover longer than the metric's months is scaled down, a
shorter one is kept as recovered, since nothing says the months it did not cover held gap;
audits without covers keep their amount). ``recovered_raw`` keeps the
amount as recovered. ``late_fees`` and ``penalties`` are carried separately and are not
targets. ``measure`` (notice / assessment / audit) is carried beside the features.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from taxrisk.errors import TaxriskError
from taxrisk.progress import ProgressFn, report

if TYPE_CHECKING:
    from taxrisk.features.tables import Tables

__all__ = [
    "OUTCOME_COLUMNS",
    "AuditOutcomeSource",
    "AuditTableSource",
    "CombinedSource",
    "NotEnoughExamples",
    "TrainingSet",
    "build_training_set",
    "mask_future",
    "snapshot_dates",
]

log = logging.getLogger(__name__)

OUTCOME_COLUMNS = (
    "case_id",
    "taxpayer_id",
    "selected_on",
    "selection_reason",
    "selection_probability",
    "closed_on",
    "outcome",
    "tax_recovered",
    "late_fees",
    "penalties",
)
#: outcome columns a source may lack (null when absent)
OPTIONAL_OUTCOME_COLUMNS = ("measure", "covers_from", "covers_to")
#: taxpayer attributes that change over time with no dated record in the contract: their
#: value in ``taxpayers`` is the one at extraction, so they are kept out of training
UNDATED_ATTRIBUTES = ("taxpayer_type", "collection_method")


#: the training set's row order (a total order: case ids are unique)
EXAMPLE_ORDER = ("selected_on", "taxpayer_id", "case_id")


class NotEnoughExamples(TaxriskError):
    """Too few labelled audits at the as-of date to train."""


@runtime_checkable
class AuditOutcomeSource(Protocol):
    """Where audit outcomes come from (the audits table, the case store's feedback, ...)."""

    def outcomes(self, as_of: dt.date) -> pd.DataFrame:
        """Every audit known at ``as_of``: columns :data:`OUTCOME_COLUMNS`.

        selected_on <= as_of. closed_on, outcome and the amounts are null unless the audit
        closed on or before ``as_of`` (an open audit is known to exist, without a label).
        Dates as ``datetime64``; amounts in yuan.
        """
        ...


class AuditTableSource:
    """Audit outcomes from the contract's ``audits`` table (clean, typed)."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def outcomes(self, as_of: dt.date) -> pd.DataFrame:
        t = self.tables.known("audits", as_of)
        cols = [*OUTCOME_COLUMNS, *(c for c in OPTIONAL_OUTCOME_COLUMNS if c in t.columns)]
        df = t.select(*cols).to_pandas()
        return mask_future(df, as_of)


class CombinedSource:
    """The outcomes of several sources, in order; a case id seen twice keeps its first row.

    The case store's case ids (``C<as-of>-<taxpayer>-v<version>``) cannot collide with a
    bureau's audit case ids unless the bureau exports them into ``audits``: then the table's
    row, listed first, wins.
    """

    def __init__(self, *sources: AuditOutcomeSource) -> None:
        self.sources = sources

    def outcomes(self, as_of: dt.date) -> pd.DataFrame:
        frames = [s.outcomes(as_of) for s in self.sources]
        frames = [_with_optional(f) for f in frames if len(f)]
        if not frames:
            return self.sources[0].outcomes(as_of)
        out = pd.concat(frames, ignore_index=True)
        return out.drop_duplicates("case_id", keep="first").reset_index(drop=True)


def _with_optional(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in OPTIONAL_OUTCOME_COLUMNS:
        if c not in out.columns:
            out[c] = pd.NA
    return out[[*OUTCOME_COLUMNS, *OPTIONAL_OUTCOME_COLUMNS]]


def covered_months(covers_from: pd.Series, covers_to: pd.Series) -> pd.Series:
    """Months an audit covers, ``covers_from``..``covers_to`` inclusive (float; NaN when
    either is missing or the span is not positive). Accepts ``YYYY-MM`` text or dates."""
    f = pd.to_datetime(covers_from.astype("object"), errors="coerce")
    t = pd.to_datetime(covers_to.astype("object"), errors="coerce")
    n = (t.dt.year - f.dt.year) * 12 + (t.dt.month - f.dt.month) + 1
    return n.where(n > 0).astype("float64")


def metric_scale(
    covers_from: pd.Series, covers_to: pd.Series, metric_months: int, max_scale: float
) -> pd.Series:
    """The factor that puts a recovered amount on the metric's scale:
    ``metric_months / covered months``, clipped to ``[0, max_scale]``; 1 where the cover is
    unknown (the amount is then taken as it is)."""
    n = covered_months(covers_from, covers_to)
    return (metric_months / n).clip(upper=max_scale).fillna(1.0)


def mask_future(df: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Outcomes as known at ``as_of``: selected on or before it; the label, closing date and
    amounts blanked unless the audit closed on or before it. Types: dates datetime64, ids str."""
    df = df.copy()
    for c in ("selected_on", "closed_on"):
        df[c] = pd.to_datetime(df[c])
    df["taxpayer_id"] = df["taxpayer_id"].astype("str")
    df["case_id"] = df["case_id"].astype("str")
    late = df["closed_on"].isna() | (df["closed_on"] > pd.Timestamp(as_of))
    for c in ("closed_on", "tax_recovered", "late_fees", "penalties"):
        df[c] = df[c].mask(late)
    df["outcome"] = df["outcome"].mask(late)
    return df[df["selected_on"] <= pd.Timestamp(as_of)].reset_index(drop=True)


Snapshot = Literal["month_end", "quarter_end", "exact"]


def snapshot_dates(selected_on: pd.Series, how: Snapshot) -> pd.Series:
    """The feature date of each selection date (datetime64, never after ``selected_on``).

    ``month_end`` / ``quarter_end``: the last month / quarter end on or before the selection
    date; ``exact``: the selection date itself.
    """
    s = pd.to_datetime(selected_on).dt.normalize()
    if how == "exact":
        return s
    freq = "M" if how == "month_end" else "Q"
    is_end = s == s.dt.to_period(freq).dt.end_time.dt.normalize()
    prev_end = s.dt.to_period(freq).dt.start_time - pd.Timedelta(days=1)
    return prev_end.where(~is_end, s)


@dataclass
class TrainingSet:
    """Labelled audits with their point-in-time features.

    ``X``: features, index case_id (no selection columns), rows in :data:`EXAMPLE_ORDER`
    (the same as ``examples``, whatever order the engine returned). ``examples``: index case_id,
    columns taxpayer_id, selected_on, snapshot, closed_on, selection_reason,
    selection_probability, adjusted (0/1), tax_recovered (yuan, 0 unless adjusted),
    late_fees, penalties. ``open_audits``: audits known at the as-of date without a label.
    ``population``: features of the active population at each snapshot (index
    (snapshot, taxpayer_id)) with column ``selected`` (the taxpayer's audit was selected from
    that snapshot) and ``weight`` (how many taxpayers a sampled row stands for); None unless
    requested.
    """

    X: pd.DataFrame
    examples: pd.DataFrame
    open_audits: pd.DataFrame
    as_of: dt.date
    population: pd.DataFrame | None = None
    dropped: int = 0

    def label_counts(self) -> pd.DataFrame:
        """Examples and adjusted per selection reason (for the run record)."""
        g = self.examples.groupby("selection_reason", observed=True)
        return pd.DataFrame({"examples": g.size(), "adjusted": g["adjusted"].sum()})


def _level_dates(values: pd.Index) -> pd.Index:
    return pd.DatetimeIndex(pd.to_datetime(values)).normalize()


def build_training_set(
    tables: Tables,
    as_of: dt.date,
    source: AuditOutcomeSource | None = None,
    *,
    snapshot: Snapshot = "exact",
    metric_months: int | None = None,
    max_scale: float = 1.0,
    population_sample: int = 0,
    seed: int = 42,
    min_examples: int = 1,
    progress: ProgressFn | None = None,
) -> TrainingSet:
    """Examples from the audits whose outcome is known at ``as_of``.

    ``metric_months``: when set, ``tax_recovered`` is put on the metric's scale (see the
    module docstring); None keeps the amounts as recovered.
    ``population_sample``: when > 0, also keep up to this many unselected taxpayers per
    snapshot (seeded sample) plus every selected one, for the selection model of
    :mod:`taxrisk.training.bias`.
    """
    from taxrisk.features.matrix import build_matrices, feature_columns

    source = source or AuditTableSource(tables)
    # one total order, whatever order the engine returned the rows in (DuckDB runs with
    # preserve_insertion_order = false): examples, folds and LightGBM's bagging follow it
    out = (
        source.outcomes(as_of)
        .sort_values(list(EXAMPLE_ORDER), kind="stable")
        .reset_index(drop=True)
    )
    labelled = out[out["closed_on"].notna() & out["outcome"].notna()].copy()
    open_audits = out[out["closed_on"].isna()].copy()
    if len(labelled) < min_examples:
        raise NotEnoughExamples(
            f"{len(labelled)} audit(s) closed on or before {as_of}; at least {min_examples} needed"
        )
    labelled["snapshot"] = snapshot_dates(labelled["selected_on"], snapshot)
    labelled["adjusted"] = (labelled["outcome"] == "adjusted").astype(int)
    labelled["recovered_raw"] = (
        labelled["tax_recovered"].fillna(0.0).where(labelled["adjusted"] > 0, 0.0)
    )
    for c in OPTIONAL_OUTCOME_COLUMNS:
        if c not in labelled.columns:
            labelled[c] = pd.NA
    labelled["covered_months"] = covered_months(labelled["covers_from"], labelled["covers_to"])
    scale = (
        metric_scale(labelled["covers_from"], labelled["covers_to"], metric_months, max_scale)
        if metric_months is not None
        else 1.0
    )
    labelled["tax_recovered"] = labelled["recovered_raw"] * scale
    labelled["measure"] = (
        labelled["measure"].astype("object").where(labelled["measure"].notna(), None)
    )
    pairs = labelled[["snapshot", "taxpayer_id"]]
    sample = None
    if population_sample > 0:
        selections = out.assign(snapshot=snapshot_dates(out["selected_on"], snapshot))
        sample = _population_sample(tables, selections, population_sample, seed)
        pairs = pd.concat([pairs, sample.reset_index()[["snapshot", "taxpayer_id"]]])
    pairs = pairs.drop_duplicates().rename(columns={"snapshot": "as_of"})
    snaps = sorted({d.date() for d in pairs["as_of"]})
    report(progress, "feature matrices as of each selection", 0, len(snaps))
    matrices = build_matrices(tables, snaps, pairs=pairs, progress=progress)
    report(progress, "feature matrices as of each selection", len(snaps), len(snaps))
    matrices.index = pd.MultiIndex.from_arrays(
        [
            _level_dates(matrices.index.get_level_values(0)),
            matrices.index.get_level_values(1).astype("str"),
        ],
        names=["snapshot", "taxpayer_id"],
    )
    feats = [c for c in feature_columns(matrices) if c not in UNDATED_ATTRIBUTES]
    key = pd.MultiIndex.from_arrays([labelled["snapshot"], labelled["taxpayer_id"]])
    found = key.isin(matrices.index)
    dropped = int((~found).sum())
    if dropped:
        log.warning(
            "%d audit(s) have no feature row at their snapshot (taxpayer not active): dropped",
            dropped,
        )
    labelled = labelled[found]
    X = matrices.loc[key[found], feats]
    X.index = pd.Index(labelled["case_id"], name="case_id")
    examples = labelled.set_index("case_id")[
        [
            "taxpayer_id",
            "selected_on",
            "snapshot",
            "closed_on",
            "selection_reason",
            "selection_probability",
            "adjusted",
            "tax_recovered",
            "recovered_raw",
            "covered_months",
            "measure",
            "late_fees",
            "penalties",
        ]
    ]
    population = None
    if sample is not None:
        keep = sample.index.intersection(matrices.index)
        population = matrices.loc[keep, feats].join(sample)
    return TrainingSet(
        X=X,
        examples=examples,
        open_audits=open_audits,
        as_of=as_of,
        population=population,
        dropped=dropped,
    )


def _population_sample(
    tables: Tables, selections: pd.DataFrame, per_snapshot: int, seed: int
) -> pd.DataFrame:
    """Rows (snapshot, taxpayer_id) for the selection model, with ``selected`` and ``weight``.

    Every selection (taxpayer selected from that snapshot) plus a seeded sample of active,
    unselected taxpayers: at most ``per_snapshot`` per month of snapshots, shared among the
    month's snapshots (exact snapshots give one per selection date); a sampled row's weight
    is the number of unselected taxpayers it stands for.
    """
    tp = tables["taxpayers"].select("taxpayer_id", "registered_on", "deregistered_on").to_pandas()
    tp["taxpayer_id"] = tp["taxpayer_id"].astype("str")
    # the engine's row order is arbitrary: sort before the seeded draw picks positions
    tp = tp.sort_values("taxpayer_id", kind="stable").reset_index(drop=True)
    reg = pd.to_datetime(tp["registered_on"]).to_numpy()
    dereg = pd.to_datetime(tp["deregistered_on"]).to_numpy()
    chosen = selections[["snapshot", "taxpayer_id"]].drop_duplicates()
    rng = np.random.default_rng(seed)
    parts = []
    snaps = sorted(chosen["snapshot"].unique())
    # about per_snapshot rows per month of snapshots, however many selection dates it holds
    # (exact snapshots: one per selection date)
    month = pd.DatetimeIndex(snaps).to_period("M")
    per_month = pd.Series(month).value_counts()
    for snap, m in zip(snaps, month, strict=True):
        n_take = max(1, -(-per_snapshot // int(per_month[m])))
        s = np.datetime64(pd.Timestamp(snap))
        active = (reg <= s) & (np.isnat(dereg) | (dereg > s))
        ids = tp["taxpayer_id"].to_numpy()[active]
        sel = np.unique(
            chosen.loc[chosen["snapshot"] == snap, "taxpayer_id"].to_numpy(dtype=object)
        )
        unsel = ids[~np.isin(ids, sel)]
        take = unsel[rng.permutation(len(unsel))[:n_take]] if len(unsel) else unsel
        weight = len(unsel) / max(len(take), 1)
        parts.append(
            pd.DataFrame(
                {"snapshot": pd.Timestamp(snap), "taxpayer_id": sel, "selected": 1, "weight": 1.0}
            )
        )
        parts.append(
            pd.DataFrame(
                {
                    "snapshot": pd.Timestamp(snap),
                    "taxpayer_id": take,
                    "selected": 0,
                    "weight": weight,
                }
            )
        )
    return pd.concat(parts).set_index(["snapshot", "taxpayer_id"])


def apply_measure(ts: TrainingSet, how: str) -> TrainingSet:
    """The training set with the response measure used as configured (``labels.measure``).

    ``ignore``: unchanged (the measure is carried, not used). ``filter``: only audits and
    assessments (and examples without a measure) are kept: a notice asks the taxpayer to
    correct itself, and what it recovers says little about the gap a full review would find.
    """
    if how == "ignore":
        return ts
    if how == "filter":
        keep = (ts.examples["measure"].astype("object") != "notice").to_numpy()
        return TrainingSet(
            X=ts.X[keep],
            examples=ts.examples[keep],
            open_audits=ts.open_audits,
            as_of=ts.as_of,
            population=ts.population,
            dropped=ts.dropped,
        )
    raise ValueError(f"labels.measure: {how!r} is not implemented (ignore, filter)")
