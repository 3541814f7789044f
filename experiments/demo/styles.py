"""World styles: the knobs that make one synthetic city differ from another.

The product is judged on cities built independently from the same contract and domain
notes, with other scheme mixes, noise and audit policies. A :class:`Style` gathers every
parameter of the generator that such a team would have chosen differently; the modules read
them from ``chunk.style`` instead of constants. :data:`STANDARD` reproduces the original world
exactly (same seed, same bytes); the others are named in :data:`STYLES`:

- ``standard``: the world described in ``experiments/README.md``.
- ``shifted``: as if built by another team: more evaders with another scheme mix and other
  magnitudes, noisier activity and meters, an office that audits fewer taxpayers by rule
  (with other old rules and more by size), more at random, for longer; ``industry_norms``
  with only the contract's metric names, and no ``property`` nor ``social_insurance`` table.
- ``drift``: the standard history, but in the last 12 months evasion moves: 40% of the
  evaders stop their schemes and most of them, with new evaders, take up others, mostly
  ``personal_account_sales`` (sales collected into the owner's personal accounts, no invoice,
  kept off the books: seen only as electricity, output and wages against declared sales, and
  as a fall from the taxpayer's own history), which no earlier audit has seen.

Random draws a style adds use their own streams (stages 20+), so a style that leaves a knob at
its standard value draws exactly what the standard world draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CONTRACT_NORMS", "DRIFT", "SHIFTED", "STANDARD", "STYLES", "Style", "get_style"]

#: The metric names CONTRACT section 1 gives for ``industry_norms``.
CONTRACT_NORMS = frozenset(
    {"kwh_per_unit", "input_output_ratio", "loss_rate", "avg_price", "density_t_per_m3",
     "tax_burden_warning"}
)  # fmt: skip


@dataclass(frozen=True)
class Style:
    """Parameters of one world style (defaults: the standard world).

    Evasion: ``evasion_rate`` share of taxpayers evading; ``scheme_weight`` multiplies a
    scheme's eligibility weight (name -> factor, absent = 1); ``intensity_scale`` multiplies a
    scheme's drawn intensity (absent = 1); ``second_scheme`` share of evaders running a second
    scheme. Noise (lognormal sigmas): ``sales_noise`` of monthly sales, ``purchase_noise`` of
    purchases, ``meter_noise`` of electricity readings, ``officer_noise`` of officer counts.
    Coverage: ``meter_coverage`` share of firms matched to a meter, ``operations_coverage`` of
    modelled firms with an archive, ``officer_share`` of them whose output an officer counts.
    Audits: ``rule_share`` of the active taken by the old rules a round, ``old_rules`` which
    of the six old rules the office counts (0 burden, 1 zero/negative returns, 2 low payments,
    3 invoices above sales, 4 input jump, 5 loss quarters), ``size_priority`` weight of
    log10(size) in the rule priority, ``random_share`` the random stratum a round (its
    ``selection_probability``), ``campaign_share`` of the key industry in June,
    ``duration_scale`` multiplies case durations. Tables: ``norm_names`` ``"demo"`` (every
    metric the generator knows) or ``"contract"`` (only :data:`CONTRACT_NORMS`); ``drop``
    optional tables left out. Drift: over the last ``drift_months`` months a share
    ``drift_stop`` of the evaders stop their schemes, a share ``drift_switch`` of those take a
    new one, and ``drift_rate`` of the other eligible taxpayers start one, drawn with
    ``drift_weight`` (name -> weight; only schemes that need no registry or property event).
    """

    name: str = "standard"
    evasion_rate: float = 0.10
    scheme_weight: dict[str, float] = field(default_factory=dict)
    intensity_scale: dict[str, float] = field(default_factory=dict)
    second_scheme: float = 0.2
    sales_noise: float = 0.12
    purchase_noise: float = 0.10
    meter_noise: float = 0.05
    officer_noise: float = 0.04
    meter_coverage: float = 0.88
    operations_coverage: float = 0.6
    officer_share: float = 0.4
    rule_share: float = 0.014
    old_rules: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    size_priority: float = 0.25
    random_share: float = 0.002
    campaign_share: float = 0.08
    duration_scale: float = 1.0
    norm_names: str = "demo"
    drop: tuple[str, ...] = ()
    drift_months: int = 0
    drift_stop: float = 0.0
    drift_switch: float = 0.0
    drift_rate: float = 0.0
    drift_weight: dict[str, float] = field(default_factory=dict)


STANDARD = Style()

SHIFTED = Style(
    name="shifted",
    evasion_rate=0.13,
    scheme_weight={
        "cash_sales": 0.6, "fake_invoices": 1.8, "unrecorded_purchases": 1.5,
        "inflated_inputs": 0.6, "advance_receipts": 1.6, "surcharges_unpaid": 0.5,
        "equity_transfer": 1.5, "property_undeclared": 0.6, "quota_exceed": 0.7,
    },
    intensity_scale={
        "cash_sales": 0.8, "fake_invoices": 1.3, "unrecorded_purchases": 0.8,
        "inflated_inputs": 0.7, "advance_receipts": 1.3, "surcharges_unpaid": 0.8,
        "equity_transfer": 1.4,
    },
    second_scheme=0.3,
    sales_noise=0.18,
    purchase_noise=0.15,
    meter_noise=0.10,
    officer_noise=0.08,
    meter_coverage=0.75,
    operations_coverage=0.45,
    officer_share=0.25,
    rule_share=0.010,
    old_rules=(0, 1, 3, 4),
    size_priority=0.8,
    random_share=0.005,
    campaign_share=0.05,
    duration_scale=1.4,
    norm_names="contract",
    drop=("property", "social_insurance"),
)  # fmt: skip

DRIFT = Style(
    name="drift",
    drift_months=12,
    drift_stop=0.4,
    drift_switch=0.7,
    drift_rate=0.04,
    drift_weight={
        "personal_account_sales": 4.0, "fake_invoices": 1.0, "unrecorded_purchases": 1.0,
        "advance_receipts": 0.5,
    },
)  # fmt: skip

#: Every named style.
STYLES: dict[str, Style] = {s.name: s for s in (STANDARD, SHIFTED, DRIFT)}


def get_style(name: str) -> Style:
    """The style called ``name`` (KeyError naming the known styles otherwise)."""
    try:
        return STYLES[name]
    except KeyError:
        raise KeyError(f"unknown style {name!r}; known: {', '.join(STYLES)}") from None
