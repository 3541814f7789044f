"""What the case page and the explanation report show of one case, computed once.

:func:`case_view` turns a :class:`~taxrisk.serving.store.models.Case` (already fetched through
the case service, so visibility is checked) into plain data: the items behind it named from
the indicator catalog in the reader's language, the reasons in plain words, the industry-model
estimates, the response guides, and the contributions waterfall's geometry (an inline SVG
drawn by ``templates/_waterfall.html``). Nothing here writes to the store.

Waterfall: the run's base value (``Case.base_yield``, the expected yield of an average
taxpayer), then each stored item's contribution (yuan of expected yield, largest first), then
"other" for what the stored items do not cover, ending at ``Case.expected_yield``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session
from taxrisk.features.catalog import CATALOG

from ..store.models import Action, Case, CaseIndicator, Feedback, ScoringRun, Unit
from ..web.i18n import Translator
from .formatting import fmt_money, fmt_pct, fmt_signed, fmt_value
from .peers import PeerStats, peer_stats

if TYPE_CHECKING:
    from taxrisk.settings import Settings

__all__ = [
    "MODEL_ITEMS",
    "Bar",
    "CaseView",
    "ItemView",
    "Waterfall",
    "case_view",
    "item_name",
    "waterfall",
]

#: indicators of the industry evaluation models (行业纳税评估模型) and their feature columns
MODEL_ITEMS = frozenset(
    {
        "power_model_gap",
        "input_output_gap",
        "kiln_model_gap",
        "volume_density_gap",
        "chain_gap",
        "input_output_overclaim",
        "stock_mismatch",
    }
)
_MODEL_FEATURE_PREFIXES = ("model_", "chain_implied", "io_overclaim", "stock_gap")
#: peer comparisons (同行业、同规模、同地区)
PEER_ITEMS = frozenset({"peer_burden", "peer_sales", "fixed_quota_vs_peers", "vat_burden_ratio"})
#: how many reasons the report's "why chosen" lists
TOP_REASONS = 5
#: how many items the waterfall draws before lumping the rest into "other"
WATERFALL_ITEMS = 12


def item_name(item: str, t: Translator) -> str:
    """The reader's name of an item: the catalog's for an indicator (and its ``__pct``),
    ``feature.<id>`` from the translations for a known feature, else the id itself."""
    base, _, suffix = item.partition("__")
    ind = CATALOG.get(base)
    if ind is not None:
        name = ind.name_zh if t.lang == "zh" else ind.name_en
        return f"{name}{t('item.pct_suffix')}" if suffix == "pct" else name
    key = f"feature.{item}"
    return t(key) if t.has(key) else item


@dataclass(frozen=True)
class ItemView:
    item: str
    kind: str
    fired: bool
    value: float | None
    percentile: float | None
    contribution: float | None
    position: int
    name: str
    direction: str | None  # "high"/"low" for catalog indicators
    measure: str | None  # the catalog's recommended measure
    guide: str | None
    threshold: str | None  # the firing rule, in words
    standing: str  # value against the industry, in plain words
    industry_model: bool
    peer: bool
    median: float | None = None  # the industry's median (from the run's matrix)


@dataclass(frozen=True)
class Bar:
    label: str  # possibly shortened to fit
    title: str  # full label
    start: float
    end: float
    kind: Literal["base", "up", "down", "total"]
    y: float
    x: float
    width: float
    value_text: str
    text_x: float


@dataclass(frozen=True)
class Waterfall:
    bars: list[Bar]
    width: int
    height: int
    label_width: int
    plot_left: float
    plot_right: float
    row_height: int
    bar_height: int
    axis_y: float
    zero_x: float
    ticks: list[tuple[float, str]]
    summary: str  # the chart in one sentence (the SVG's description)
    connectors: list[tuple[float, float, float]] = field(default_factory=list)  # x, y1, y2


@dataclass(frozen=True)
class CaseView:
    case: Case
    unit_name: str
    managing_unit_name: str
    items: list[ItemView]
    fired: list[ItemView]
    reasons: list[ItemView]
    model_items: list[ItemView]
    peer_items: list[ItemView]
    waterfall: Waterfall
    feedback: Feedback | None
    history: list[Action]
    run: ScoringRun | None
    peers: PeerStats | None = None
    #: the taxpayer's industry-model estimates from the run's matrix: (label, formatted value)
    model_values: list[tuple[str, str]] = field(default_factory=list)


def _standing(
    value: float | None,
    pct: float | None,
    direction: str | None,
    t: Translator,
    median: float | None = None,
) -> str:
    if value is None:
        return t("item.no_value")
    med = "" if median is None else t("item.median", median=fmt_value(median))
    if pct is None or not math.isfinite(pct):
        return t("item.no_percentile", value=fmt_value(value)) + med
    share = min(max(pct, 0.0), 1.0)
    if direction == "low":
        text = t("item.lower_than", value=fmt_value(value), share=fmt_pct(1.0 - share))
    else:
        text = t("item.higher_than", value=fmt_value(value), share=fmt_pct(share))
    return text + med


def _item_view(ci: CaseIndicator, t: Translator, median: float | None = None) -> ItemView:
    base = ci.item.partition("__")[0]
    ind = CATALOG.get(base)
    direction = ind.direction if ind is not None else None
    threshold = None
    if ind is not None:
        if ind.fires is not None:
            threshold = t("item.rule_custom")
        else:
            key = "item.rule_above" if ind.direction == "high" else "item.rule_below"
            threshold = t(key, threshold=fmt_value(ind.threshold))
    model = base in MODEL_ITEMS or ci.item.startswith(_MODEL_FEATURE_PREFIXES)
    return ItemView(
        item=ci.item,
        kind=ci.kind,
        fired=bool(ci.fired),
        value=ci.value,
        percentile=ci.percentile,
        contribution=ci.contribution,
        position=ci.position,
        name=item_name(ci.item, t),
        direction=direction,
        measure=ind.measure if ind is not None else None,
        guide=(ind.guide_zh if t.lang == "zh" else ind.guide_en) if ind is not None else None,
        threshold=threshold,
        standing=_standing(ci.value, ci.percentile, direction, t, median),
        industry_model=model,
        peer=base in PEER_ITEMS,
        median=median,
    )


def _display_width(text: str) -> float:
    return sum(2.0 if ord(ch) > 0x2E80 else 0.92 for ch in text)


def _shorten(text: str, width: float) -> str:
    if _display_width(text) <= width:
        return text
    out = ""
    for ch in text:
        if _display_width(out + ch) > width - 2:
            break
        out += ch
    return out + "…"


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    return ticks


def waterfall(
    base: float | None,
    steps: list[tuple[str, float]],
    total: float,
    t: Translator,
    *,
    width: int = 800,
    label_width: int = 290,
    value_room: int = 110,
    max_items: int = WATERFALL_ITEMS,
) -> Waterfall:
    """The geometry of a horizontal waterfall: base -> each (label, yuan) step -> total.

    Steps beyond ``max_items`` and whatever ``total`` is not covered by ``base`` + the steps
    become one "other" step, so the bars always end exactly at ``total``.
    """
    start = 0.0 if base is None or not math.isfinite(base) else float(base)
    shown = [(label, float(v)) for label, v in steps if v is not None and math.isfinite(v)]
    shown, rest = shown[:max_items], shown[max_items:]
    other = total - start - sum(v for _, v in shown)
    scale = max([abs(total), abs(start), *(abs(v) for _, v in shown), 1.0])
    if rest or abs(other) > max(0.5, 1e-3 * scale):
        shown.append((t("waterfall.other"), other))

    row_h, bar_h, top = 26, 16, 6
    rows = len(shown) + 2
    axis_y = top + rows * row_h + 4
    height = int(axis_y + 26)
    left, right = float(label_width), float(width - value_room)

    points = [start]
    acc = start
    for _, v in shown:
        acc += v
        points.append(acc)
    lo, hi = min(0.0, *points, total), max(0.0, *points, total)
    if hi - lo <= 0:
        hi = lo + 1.0

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (right - left)

    def bar(label: str, a: float, b: float, kind: Literal["base", "up", "down", "total"], i: int):
        x0, x1 = sorted((x(a), x(b)))
        value = fmt_money(b, t.lang) if kind in ("base", "total") else fmt_signed(b - a)
        return Bar(
            label=_shorten(label, (label_width - 14) / 6.2),
            title=label,
            start=a,
            end=b,
            kind=kind,
            y=top + i * row_h + (row_h - bar_h) / 2,
            x=x0,
            width=max(x1 - x0, 1.0),
            value_text=value,
            text_x=x1 + 4,
        )

    bars = [bar(t("waterfall.base"), 0.0, start, "base", 0)]
    acc = start
    connectors: list[tuple[float, float, float]] = []
    for i, (label, v) in enumerate(shown, start=1):
        connectors.append((x(acc), top + (i - 1) * row_h + (row_h - bar_h) / 2, top + i * row_h))
        bars.append(bar(label, acc, acc + v, "up" if v >= 0 else "down", i))
        acc += v
    connectors.append((x(acc), top + len(shown) * row_h + (row_h - bar_h) / 2, top + rows * row_h))
    bars.append(bar(t("waterfall.total"), 0.0, total, "total", rows - 1))
    ticks = [(x(v), fmt_signed(v).lstrip("+")) for v in _nice_ticks(lo, hi)]
    summary = t(
        "waterfall.summary",
        base=fmt_money(start, t.lang),
        n=len(shown),
        total=fmt_money(total, t.lang),
    )
    return Waterfall(
        bars=bars,
        width=width,
        height=height,
        label_width=label_width,
        plot_left=left,
        plot_right=right,
        row_height=row_h,
        bar_height=bar_h,
        axis_y=axis_y,
        zero_x=x(0.0),
        ticks=ticks,
        summary=summary,
        connectors=connectors,
    )


def _unit_names(session: Session, ids: set[str]) -> dict[str, str]:
    rows = session.execute(select(Unit.unit_id, Unit.name).where(Unit.unit_id.in_(ids)))
    return {uid: name for uid, name in rows}


_SHARE_COLUMNS = ("model_gap", "chain_gap", "io_overclaim_share", "stock_gap_share")
_YUAN_COLUMNS = (
    "sales_month_avg",
    "model_implied_sales",
    "model_gap_tax_12",
    "chain_implied_sales",
)


def _model_values(peers: PeerStats | None, t: Translator) -> list[tuple[str, str]]:
    if peers is None:
        return []
    out = []
    for col, value in peers.own.items():
        if value is None:
            continue
        if col in _SHARE_COLUMNS:
            text = fmt_pct(value, 1)
        elif col in _YUAN_COLUMNS:
            text = fmt_money(value, t.lang)
        else:
            text = fmt_value(value)
        out.append((item_name(col, t), text))
    return out


def case_view(
    session: Session, case: Case, t: Translator, settings: Settings | None = None
) -> CaseView:
    """Everything the page and the report show of ``case`` (visibility already checked).

    With ``settings``, the industry medians and the taxpayer's model estimates come from the
    run's feature matrix when the workspace still has it (:mod:`.peers`)."""
    run = session.get(ScoringRun, case.run_id)
    ordered = sorted(case.indicators, key=lambda c: c.position)
    peers = (
        peer_stats(settings, run, case.taxpayer_id, case.industry, [c.item for c in ordered])
        if settings is not None
        else None
    )
    medians = peers.medians if peers is not None else {}
    items = [_item_view(ci, t, medians.get(ci.item)) for ci in ordered]
    fired = [i for i in items if i.fired]
    by_push = sorted(
        fired or [i for i in items if (i.contribution or 0) > 0],
        key=lambda i: -(i.contribution if i.contribution is not None else -math.inf),
    )
    steps = [(i.name, i.contribution) for i in items if i.contribution is not None]
    names = _unit_names(session, {case.unit_id, case.managing_unit_id})
    history = list(
        session.scalars(select(Action).where(Action.case_id == case.case_id).order_by(Action.seq))
    )
    results = [f for f in case.feedback if f.status in ("accepted", "approved")]
    feedback = max(results, key=lambda f: (f.submitted_at, f.feedback_id), default=None)
    return CaseView(
        case=case,
        unit_name=names.get(case.unit_id, case.unit_id),
        managing_unit_name=names.get(case.managing_unit_id, case.managing_unit_id),
        items=items,
        fired=fired,
        reasons=by_push[:TOP_REASONS],
        model_items=[i for i in items if i.industry_model],
        peer_items=[i for i in items if i.peer or i.percentile is not None],
        waterfall=waterfall(case.base_yield, steps, case.expected_yield, t),  # type: ignore[arg-type]
        feedback=feedback,
        history=history,
        run=run,
        peers=peers,
        model_values=_model_values(peers, t),
    )
