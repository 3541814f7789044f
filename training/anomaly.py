"""The indicator tail prior: an unsupervised estimate of risk that does not learn the schemes.

Audits teach last year's schemes. A model fitted on them ranks what past audits found, and
can miss a scheme no audit has seen yet even when the indicators flag it. The tail prior is
the answer of the documents' own practice (风险识别: a taxpayer far out in its industry's tail
on some indicator is worth a look, whatever the scheme): for each taxpayer,

1. every catalog indicator's industry percentile ``<id>__pct`` (share of the industry at or
   below the value), oriented so that 1 is the risky end (``1 - pct`` for "low" indicators);
2. its *surprise* ``-log(1 - q)`` (clipped at :data:`MAX_SURPRISE`): 0.69 at the median,
   2.3 at the 90th percentile, 4.6 at the 99th; missing values are not surprising (0);
3. the *tail score*: the mean surprise of the taxpayer's :data:`TOP` most surprising
   indicators (several independent tails weigh more than one).

The score is industry-relative by construction (the percentiles are) and fixed (nothing is
fitted to schemes). One monotone map is fitted: P(adjusted | tail score), isotonic, on the
random stratum of the training audits when it has at least :data:`MIN_RANDOM` audits (the
one sample of the population that old rules did not select; a fit on rule-selected audits
comes out nearly flat, since the rules already picked tail taxpayers), else on every audit;
floored at :data:`PROBABILITY_FLOOR`. The ranking pools the two probabilities
logarithmically (a logarithmic opinion pool)::

    P = P_model ** (1 - w) * P_tail ** w,   expected_yield = P * amount

with the weight ``w`` chosen on validation audits by :func:`choose_weight`: the largest
candidate whose validation capture is not below the unblended model's by more than the
noise of the difference (a paired bootstrap's lower bound). A blend that measurably costs
yield on the audits is not taken; one that costs nothing measurable is, because it is the
ranking's insurance against moved evasion (docs/training.md has the figures).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

__all__ = [
    "MAX_SURPRISE",
    "MIN_RANDOM",
    "PROBABILITY_FLOOR",
    "TOP",
    "TailPrior",
    "WeightChoice",
    "choose_weight",
    "directions_of",
    "fit_blend",
    "pool",
    "surprise",
    "tail_score",
]

#: random-stratum audits needed to calibrate on them alone
MIN_RANDOM = 50
#: floor of the prior's probability (the pool takes its log)
PROBABILITY_FLOOR = 0.005
#: most surprising indicators averaged into the tail score
TOP = 3
#: surprise cap, -log(1 - 0.999): the top 0.1% of an industry are equally surprising
MAX_SURPRISE = float(-np.log(1e-3))


def surprise(matrix: pd.DataFrame, directions: dict[str, str]) -> pd.DataFrame:
    """Per-indicator surprise ``-log(1 - q)`` of each row (columns: indicator ids present).

    ``directions``: ``{indicator_id: "high" | "low"}`` (the catalog's risk direction); an
    indicator without a ``<id>__pct`` column in ``matrix`` is left out.
    """
    cols: dict[str, np.ndarray] = {}
    for ind, direction in directions.items():
        c = f"{ind}__pct"
        if c not in matrix.columns:
            continue
        pct = pd.to_numeric(matrix[c], errors="coerce").to_numpy(dtype=float)
        q = pct if direction == "high" else 1.0 - pct
        s = -np.log(np.clip(1.0 - q, np.exp(-MAX_SURPRISE), 1.0))
        cols[ind] = np.nan_to_num(s, nan=0.0)
    return pd.DataFrame(cols, index=matrix.index)


def tail_score(surprises: pd.DataFrame, top: int = TOP) -> pd.Series:
    """Mean of each row's ``top`` largest surprises (0 when there is no indicator)."""
    a = surprises.to_numpy(dtype=float)
    if a.shape[1] == 0:
        return pd.Series(0.0, index=surprises.index)
    k = min(top, a.shape[1])
    part = np.partition(a, a.shape[1] - k, axis=1)[:, -k:]
    return pd.Series(part.mean(axis=1), index=surprises.index, name="tail_score")


class TailPrior:
    """P(adjusted | tail score): an isotonic (non-decreasing) map fitted on audits."""

    def __init__(self, directions: dict[str, str], top: int = TOP) -> None:
        self.directions = dict(directions)
        self.top = top

    def score(self, matrix: pd.DataFrame) -> pd.Series:
        """Tail score of each row of a feature matrix."""
        return tail_score(surprise(matrix, self.directions), self.top)

    def fit(
        self,
        matrix: pd.DataFrame,
        adjusted: np.ndarray | pd.Series,
        random_stratum: np.ndarray | pd.Series | None = None,
    ) -> TailPrior:
        """Fit P(adjusted | tail score) on audits (``random_stratum``: mask of the random
        audits; used alone when it has :data:`MIN_RANDOM` of them)."""
        s = self.score(matrix).to_numpy()
        y = np.asarray(adjusted, dtype=float)
        use = np.ones(len(y), dtype=bool)
        self.calibrated_on_ = "all audits"
        if random_stratum is not None:
            r = np.asarray(random_stratum, dtype=bool)
            if r.sum() >= MIN_RANDOM:
                use, self.calibrated_on_ = r, "random stratum"
        self.iso_ = IsotonicRegression(
            y_min=PROBABILITY_FLOOR, y_max=1.0, increasing=True, out_of_bounds="clip"
        )
        self.iso_.fit(s[use], y[use])
        self.n_calibration_ = int(use.sum())
        self.indicators_ = [i for i in self.directions if f"{i}__pct" in matrix.columns]
        return self

    def predict_proba(self, matrix: pd.DataFrame) -> np.ndarray:
        """P(adjusted) from the tail score alone, per row (at least the floor)."""
        p = np.asarray(self.iso_.predict(self.score(matrix).to_numpy()), dtype=float)
        return np.maximum(p, PROBABILITY_FLOOR)


def pool(p_model: np.ndarray, p_tail: np.ndarray, weight: float) -> np.ndarray:
    """The logarithmic pool ``p_model ** (1 - w) * p_tail ** w`` (in [0, 1])."""
    pm = np.maximum(np.asarray(p_model, dtype=float), 1e-15)
    return np.exp((1.0 - weight) * np.log(pm) + weight * np.log(np.asarray(p_tail, dtype=float)))


@dataclass(frozen=True)
class WeightChoice:
    weight: float
    #: candidate weight -> (validation metric, bootstrap lower bound of metric - unblended)
    candidates: dict[float, tuple[float, float]]
    reason: str
    #: weight -> the validation ranking's scores at that weight
    scores: dict[float, np.ndarray] = field(default_factory=dict)


def choose_weight(
    metric: Callable[[np.ndarray, np.ndarray], float],
    score_of: dict[float, np.ndarray],
    resamples: Sequence[np.ndarray],
    max_cost: float = 0.01,
) -> WeightChoice:
    """The largest weight whose metric is not measurably below the unblended ranking's.

    ``metric(scores, rows) -> float`` reads a ranking on a subset of validation rows (the
    indices ``rows``); ``score_of[w]`` is the validation ranking with weight ``w`` (``0.0``
    must be present); ``resamples``: bootstrap index arrays over the validation rows (the
    same for every candidate: paired). A candidate is kept when the 5th percentile of its
    paired difference to ``w = 0`` is at least ``-max_cost`` (default one point of
    capture): a cost within the noise, and never a clear loss.
    """
    if 0.0 not in score_of:
        raise ValueError("score_of needs the unblended ranking (weight 0.0)")
    n = len(next(iter(score_of.values())))
    everything = np.arange(n)
    base_all = metric(score_of[0.0], everything)
    base = np.array([metric(score_of[0.0], r) for r in resamples])
    out: dict[float, tuple[float, float]] = {0.0: (float(base_all), 0.0)}
    chosen = 0.0
    for w in sorted(k for k in score_of if k > 0):
        m = float(metric(score_of[w], everything))
        d = np.array([metric(score_of[w], r) for r in resamples]) - base
        lo = float(np.nanpercentile(d, 5)) if np.isfinite(d).any() else float("-inf")
        out[w] = (m, lo)
        if lo >= -max_cost:
            chosen = w
    tried = "; ".join(
        f"w {w:g}: {m:.3f} (p05 of the difference {lo:+.3f})" for w, (m, lo) in out.items()
    )
    reason = (
        f"weight {chosen:g}, the largest whose validation metric is within {max_cost:g} of the "
        f"model alone's at the 5th percentile of the paired bootstrap. Tried: {tried}."
    )
    return WeightChoice(chosen, out, reason, dict(score_of))


def directions_of(catalog: Iterable[object]) -> dict[str, str]:
    """``{id: direction}`` of catalog entries (anything with ``id`` and ``direction``)."""
    return {str(i.id): str(i.direction) for i in catalog}  # type: ignore[attr-defined]


def fit_blend(
    X_train: pd.DataFrame,
    examples_train: pd.DataFrame,
    X_val: pd.DataFrame,
    p_model: np.ndarray,
    amount: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], float],
    directions: dict[str, str],
    *,
    weights: Sequence[float],
    resamples: int,
    top: int,
    max_cost: float,
    seed: int,
) -> tuple[TailPrior, WeightChoice]:
    """The tail prior fitted on the training audits and its weight chosen on validation.

    ``p_model``, ``amount``: the validated model's P(adjusted) and amount on ``X_val`` (the
    model fitted on the training audits only); ``metric(scores, rows)``: the primary
    validation metric. The settings are the training config's ``[tail_prior]``.
    """
    prior = TailPrior(directions, top).fit(
        X_train,
        examples_train["adjusted"].to_numpy(),
        random_stratum=(examples_train["selection_reason"].astype("str") == "random").to_numpy(),
    )
    p_tail = prior.predict_proba(X_val)
    score_of = {float(w): pool(p_model, p_tail, float(w)) * amount for w in {0.0, *weights}}
    rng = np.random.default_rng(seed)
    n = len(X_val)
    draws = [rng.integers(0, n, n) for _ in range(resamples)]
    return prior, choose_weight(metric, score_of, draws, max_cost)
