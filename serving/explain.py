"""Exact explanations of a :class:`~taxrisk.training.models.YieldModel`, per indicator, in yuan.

Both LightGBM models are explained by LightGBM's own TreeSHAP
(``booster_.predict(X, pred_contrib=True)``): exact Shapley values of the trees, in each
model's raw space, that add up to the raw score with the bias (the expected raw score).

* classifier: log-odds of P(adjusted). ``f = phi0_c + sum_k c_k`` and ``p = sigmoid(f)``.
* regressor: log1p(amount). ``z = phi0_r + sum_k r_k`` and ``a = expm1(z) x s`` (yuan, with
  Duan's smearing factor ``s``). Without a regressor (too few adjusted audits) the amount is
  the constant ``fallback_amount_``: ``z = z0`` and every ``r_k`` is 0.

**Items.** The feature columns of one catalog indicator (``<id>``, ``<id>__pct``,
``<id>__fired`` and any ``<id>__*``) are summed into one item named by the indicator id,
kind ``"indicator"``; every other column is its own item, kind ``"feature"``. For item ``j``,
``c_j`` (column ``logodds``) and ``r_j`` (column ``logamount``) are the sums of its columns'
TreeSHAP values.

**Yuan.** Expected yield ``EY = p x a`` (yuan). Base values (the model's expectation):
``p0 = sigmoid(phi0_c)``, ``a0 = expm1(phi0_r) x s``, ``EY0 = p0 x a0``. Each item's share of
the log change of expected yield is

    l_j = c_j x (log p - log p0) / (f - f0)  +  r_j x (log a - log a0) / (z - z0)

(a secant rescaling of each model's raw contributions onto log p and log a: the first factor
maps log-odds to log-probability, the second log1p-amount to log-amount). When ``f - f0`` or
``z - z0`` is below 1e-12 in absolute value the secant is replaced by its limit, the
derivative ``d log p / df = 1 - p`` and ``d log a / dz = e^z / (e^z - 1)``. Summed over items,
``sum_j l_j = log EY - log EY0`` exactly. The yuan contribution is then

    yuan_j = l_j x L(EY, EY0),  L(x, y) = (x - y) / (log x - log y)   (L(x, x) = x)

with ``L`` the logarithmic mean: the LMDI decomposition (log mean Divisia index). Hence
``EY0 + sum_j yuan_j = EY`` exactly (to rounding), every item's yuan has the sign of its
effect on log EY, and an item that moves neither model contributes 0 yuan.

**Tail prior.** A model blended with the tail prior (``training/anomaly.py``) predicts
the logarithmic pool ``p' = p ** (1 - w) * p_tail ** w``. The prior is one more item,
``indicator_tail`` (kind ``"prior"``), with ``l = log p' - log p = w (log p_tail - log p)``:
the log change the prior makes to the model's own probability. The sum over items is then ``log EY' - log EY0`` and the LMDI step above gives
``EY0 + sum yuan = EY'`` exactly; its yuan is positive when the taxpayer's indicators sit
further in their industries' tails than the model alone credits.

**Zero guard.** Logarithms need ``p > 0`` and ``a > 0``: the probability is floored at
``1e-15`` (:data:`PROBABILITY_FLOOR`) and the amount at ``1e-9`` yuan
(:data:`AMOUNT_FLOOR`) before taking logs. Only a degenerate model reaches the floors (an
amount regressor predicting ``log1p(amount) <= 0``, or a zero fallback amount); the
decomposition then explains the floored expected yield, which differs from the model's by
less than ``1e-9`` yuan + ``1e-15 x amount``.

Cost: TreeSHAP is exact and in bulk (see ``experiments/bench_allocation.py`` for measured
times); compute it for the rows that need it, e.g. one taxpayer on demand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from taxrisk.features.catalog import CATALOG
from taxrisk.training.models import YieldModel

__all__ = [
    "AMOUNT_FLOOR",
    "PROBABILITY_FLOOR",
    "TAIL_ITEM",
    "Explanation",
    "contributions",
    "indicator_of",
    "indicator_table",
]

#: the item of the tail prior's share of a blended model's expected yield
TAIL_ITEM = "indicator_tail"
#: floor of P(adjusted) before taking its log (see the module docstring)
PROBABILITY_FLOOR = 1e-15
#: floor of the amount (yuan) before taking its log
AMOUNT_FLOOR = 1e-9
#: below this |f - f0| or |z - z0| the secant is replaced by the derivative
_SECANT_TOL = 1e-12

ITEM_COLUMNS = ["taxpayer_id", "item", "kind", "logodds", "logamount", "yuan"]
BASE_COLUMNS = [
    "base_probability",
    "base_amount",
    "base_yield",
    "probability",
    "amount",
    "expected_yield",
    "base_logodds",
    "logodds",
    "base_logamount",
    "logamount",
]


@dataclass(frozen=True)
class Explanation:
    """Contributions of every item to every explained taxpayer's expected yield.

    ``items``: long frame, one row per taxpayer and item: taxpayer_id (str), item (indicator id
    or feature column), kind (``"indicator"``/``"feature"``), logodds (TreeSHAP, classifier
    log-odds), logamount (TreeSHAP, regressor log1p yuan), yuan (share of expected yield, yuan).
    Rows are in the input's taxpayer order, items in feature order.

    ``base``: index taxpayer_id; base_probability (p0, in [0, 1]), base_amount (a0, yuan),
    base_yield (EY0, yuan), probability (p), amount (a, yuan), expected_yield (EY, yuan, as
    ``YieldModel.predict``), base_logodds (phi0_c), logodds (f), base_logamount (phi0_r),
    logamount (z). ``base_yield + sum of yuan = expected_yield``.
    """

    items: pd.DataFrame
    base: pd.DataFrame

    def of(self, taxpayer_id: str) -> pd.DataFrame:
        """The items of one taxpayer, by descending |yuan| (KeyError if not explained)."""
        rows = self.items[self.items["taxpayer_id"] == str(taxpayer_id)]
        if rows.empty:
            raise KeyError(f"taxpayer {taxpayer_id!r} is not in this explanation")
        order = np.argsort(-rows["yuan"].abs().to_numpy(), kind="stable")
        return rows.iloc[order].reset_index(drop=True)


def indicator_of(column: str) -> str | None:
    """The catalog indicator id a feature column belongs to (``<id>`` or ``<id>__*``), else
    None."""
    if column in CATALOG:
        return column
    head, sep, _ = column.partition("__")
    return head if sep and head in CATALOG else None


def _items(features: Sequence[str]) -> tuple[list[str], list[str], np.ndarray]:
    """Item names, kinds, and the item index of each feature column."""
    names: list[str] = []
    kinds: list[str] = []
    where: dict[str, int] = {}
    index = np.empty(len(features), dtype=np.int64)
    for k, col in enumerate(features):
        ind = indicator_of(col)
        name, kind = (ind, "indicator") if ind is not None else (col, "feature")
        if name not in where:
            where[name] = len(names)
            names.append(name)
            kinds.append(kind)
        index[k] = where[name]
    return names, kinds, index


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log(sigmoid(x)), stable for large |x|."""
    return -np.logaddexp(0.0, -x)


def _group(contrib: np.ndarray, index: np.ndarray, n_items: int) -> np.ndarray:
    """Sum the columns of ``contrib`` (rows x features) into items (rows x n_items)."""
    out = np.zeros((contrib.shape[0], n_items))
    for k in range(contrib.shape[1]):  # features are few (hundreds): column adds are fast
        out[:, index[k]] += contrib[:, k]
    return out


def _secant(delta_log: np.ndarray, delta_raw: np.ndarray, derivative: np.ndarray) -> np.ndarray:
    """delta_log / delta_raw, or the derivative where |delta_raw| < tol."""
    small = np.abs(delta_raw) < _SECANT_TOL
    safe = np.where(small, 1.0, delta_raw)
    return np.where(small, derivative, delta_log / safe)


def contributions(model: YieldModel, X: pd.DataFrame, *, n_jobs: int | None = None) -> Explanation:
    """Per-item contributions (log-odds, log1p-amount, yuan) for every row of ``X``.

    ``X``: index taxpayer_id; the model's feature columns (extra columns are ignored).
    See the module docstring for the decomposition; ``base_yield + sum(yuan)`` reproduces
    ``model.predict(X)["expected_yield"]`` (yuan). ``n_jobs``: LightGBM threads for TreeSHAP
    (default: the model's own setting); the cost is about 1 ms per row and model of 300
    trees on one thread, so bulk runs may want more.
    """
    threads = {} if n_jobs is None else {"num_threads": int(n_jobs)}
    Xp = model.prepare(X, allow_extra=True)
    features = list(model.feature_names_in_)
    n = len(Xp)
    names, kinds, index = _items(features)
    J = len(names)

    cc = np.asarray(
        model.classifier_.booster_.predict(Xp, pred_contrib=True, **threads), dtype=float
    )
    cc = cc.reshape(n, len(features) + 1)
    f0 = cc[:, -1]
    c_items = _group(cc[:, :-1], index, J)
    f = f0 + cc[:, :-1].sum(axis=1)

    smearing = float(model.smearing_)
    if model.regressor_ is not None:
        rc = np.asarray(
            model.regressor_.booster_.predict(Xp, pred_contrib=True, **threads), dtype=float
        )
        rc = rc.reshape(n, len(features) + 1)
        z0 = rc[:, -1]
        r_items = _group(rc[:, :-1], index, J)
        z = z0 + rc[:, :-1].sum(axis=1)
        a0 = np.expm1(z0) * smearing
        a = np.expm1(z) * smearing
    else:
        z0 = np.full(n, np.log1p(float(model.fallback_amount_)))
        z = z0.copy()
        r_items = np.zeros((n, J))
        a0 = np.full(n, float(model.fallback_amount_))
        a = a0.copy()

    p0 = np.exp(_log_sigmoid(f0))
    p = np.exp(_log_sigmoid(f))
    log_floor_p = np.log(PROBABILITY_FLOOR)
    log_p0 = np.maximum(_log_sigmoid(f0), log_floor_p)
    log_p = np.maximum(_log_sigmoid(f), log_floor_p)
    a0_f = np.maximum(a0, AMOUNT_FLOOR)
    a_f = np.maximum(a, AMOUNT_FLOOR)
    log_a0, log_a = np.log(a0_f), np.log(a_f)

    # derivative limits (used where the raw score did not move)
    d_p = np.where(log_p > log_floor_p, 1.0 - p, 0.0)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        d_a = np.where(a > AMOUNT_FLOOR, 1.0 / -np.expm1(-z), 0.0)
    g_c = _secant(log_p - log_p0, f - f0, d_p)
    g_r = _secant(log_a - log_a0, z - z0, d_a)
    logs = c_items * g_c[:, None] + r_items * g_r[:, None]

    prior = getattr(model, "tail_prior_", None)
    weight = float(getattr(model, "tail_weight_", 0.0))
    if prior is not None and weight > 0:
        log_pb = np.maximum(
            (1.0 - weight) * log_p + weight * np.log(prior.predict_proba(X)), log_floor_p
        )
        p_b = np.exp(log_pb)
        logs = np.column_stack([logs, log_pb - log_p])
        c_items = np.column_stack([c_items, np.zeros(n)])
        r_items = np.column_stack([r_items, np.zeros(n)])
        names, kinds = [*names, TAIL_ITEM], [*kinds, "prior"]
        J += 1
        p, log_p = p_b, log_pb

    ey_f = np.exp(log_p) * a_f
    ey0_f = np.exp(log_p0) * a0_f
    d_log = logs.sum(axis=1)
    small = np.abs(d_log) < _SECANT_TOL
    lmean = np.where(small, ey_f, (ey_f - ey0_f) / np.where(small, 1.0, d_log))
    yuan = logs * lmean[:, None]

    ids = Xp.index.astype("str").to_numpy()
    items = pd.DataFrame(
        {
            "taxpayer_id": pd.array(np.repeat(ids, J), dtype="str"),
            "item": pd.array(np.tile(np.asarray(names, dtype=object), n), dtype="str"),
            "kind": pd.array(np.tile(np.asarray(kinds, dtype=object), n), dtype="str"),
            "logodds": c_items.ravel(),
            "logamount": r_items.ravel(),
            "yuan": yuan.ravel(),
        }
    )
    base = pd.DataFrame(
        {
            "base_probability": p0,
            "base_amount": a0,
            "base_yield": p0 * a0,
            "probability": p,
            "amount": a,
            "expected_yield": p * a,
            "base_logodds": f0,
            "logodds": f,
            "base_logamount": z0,
            "logamount": z,
        },
        index=pd.Index(ids, name="taxpayer_id", dtype="str"),
    )
    return Explanation(items=items, base=base)


def indicator_table(
    matrix: pd.DataFrame | pd.Series,
    explanation: Explanation,
    taxpayer_id: str,
    lang: Literal["zh", "en"] = "zh",
    *,
    top: int | None = 10,
) -> pd.DataFrame:
    """The indicators of one taxpayer, for the officer's case sheet.

    ``matrix``: the feature matrix (index taxpayer_id) or one row of it (a Series).
    Columns: indicator (id), name_zh, name_en, name (in ``lang``), value, percentile (the
    industry percentile ``<id>__pct`` in [0, 1], null where the indicator has none), fired
    (bool), yuan (contribution to expected yield, yuan; 0 for an indicator the model does not
    use), logodds, logamount, measure (the catalog's recommended measure), guide (the response
    guide in ``lang``). Rows: every fired indicator, plus the ``top`` largest by |yuan| (all
    when ``top`` is None), ordered by descending |yuan| (ties: fired first, catalog order).
    """
    tid = str(taxpayer_id)
    if isinstance(matrix, pd.Series):
        row = matrix
    else:
        keys = matrix.index.astype("str")
        hit = np.flatnonzero(keys == tid)
        if len(hit) == 0:
            raise KeyError(f"taxpayer {tid!r} is not in the matrix")
        row = matrix.iloc[int(hit[0])]
    items = explanation.items
    mine = items[(items["taxpayer_id"] == tid) & (items["kind"] == "indicator")]
    if mine.empty and tid not in explanation.base.index:
        raise KeyError(f"taxpayer {tid!r} is not in this explanation")
    contrib = mine.set_index("item")[["yuan", "logodds", "logamount"]]

    records = []
    for order, (iid, ind) in enumerate(CATALOG.items()):
        in_matrix = iid in row.index or f"{iid}__fired" in row.index
        if not in_matrix and iid not in contrib.index:
            continue
        value = row.get(iid, np.nan)
        pct = row.get(f"{iid}__pct", np.nan)
        fired = row.get(f"{iid}__fired", 0)
        c = contrib.loc[iid] if iid in contrib.index else None
        records.append(
            {
                "indicator": iid,
                "name_zh": ind.name_zh,
                "name_en": ind.name_en,
                "name": ind.name_zh if lang == "zh" else ind.name_en,
                "value": float(value) if pd.notna(value) else np.nan,
                "percentile": float(pct) if pd.notna(pct) else np.nan,
                "fired": bool(pd.notna(fired) and int(fired) == 1),
                "yuan": float(c["yuan"]) if c is not None else 0.0,
                "logodds": float(c["logodds"]) if c is not None else 0.0,
                "logamount": float(c["logamount"]) if c is not None else 0.0,
                "measure": ind.measure,
                "guide": ind.guide_zh if lang == "zh" else ind.guide_en,
                "_order": order,
            }
        )
    table = pd.DataFrame.from_records(records)
    if table.empty:
        return table
    table["_abs"] = table["yuan"].abs()
    table = table.sort_values(
        ["_abs", "fired", "_order"], ascending=[False, False, True], kind="stable"
    )
    if top is not None:
        rank = np.arange(len(table))
        table = table[(rank < top) | table["fired"].to_numpy()]
    for col in ("indicator", "name_zh", "name_en", "name", "measure", "guide"):
        table[col] = table[col].astype("str")
    return table.drop(columns=["_abs", "_order"]).reset_index(drop=True)
