"""Shell-company signals from the invoice network (issues much, pays little, new, vanishes).

Month-granular (see :mod:`.invoices`): computed as of the day before the as-of month, so a
seller's VAT returns and deregistration count only if known by then.

Per registered seller, four signals (each 0/1):

1. *issues much, pays little*: invoice tax issued in k=1..12 over 1,000 yuan, and its ratio
   to the positive VAT payable at least ``issue_pay_ratio`` times the median ratio of the
   seller's industry (a thin-margin trade issues much per yuan paid by nature: the industry
   is the yardstick);
2. *new*: registered fewer than ``young_months`` months before the as-of month;
3. *no staff*: social-insurance headcount at most ``max_headcount`` in its last 3 months
   (never counted when the ``social_insurance`` table is absent);
4. *surge*: monthly invoicing in k=1..3 over ``surge_ratio`` times that of k=4..12, for a
   firm registered at least 12 months (a new firm's first invoices are not a surge: it has no
   earlier level; the dormant firm that wakes up, 睡眠户, has).

``shell_score`` (0..4) is the taxpayer's own count, 0 unless signal 1 is present (the
signals of a new, small or growing firm are not a shell's without it). A supplier is
*risky* when it has deregistered (a vanished seller, 走逃) or shows at least the
``shell_company`` threshold of the four signals, judged on its own (signal 1 against its own
VAT paid, invoice tax at least ``issue_pay_ratio`` times it; signal 4 whatever its age): a
buyer's exposure is to the supplier's risk, whatever the supplier's industry.
``risky_in_amount_12``: purchases in k=1..12 from risky suppliers; derived ``shell_exposure``:
their share of all purchases ``inv_in_amount_12`` (suppliers outside the registry count in
the denominator only). ``issue_pay_log``: ln(tax issued + 1) - ln(VAT paid + 1) (negative amounts as 0).

In the matrix pipeline the sellers' sums come from the sources already built
(``invoices``, ``vat``, ``social_insurance``: the same sums over the same rows, see
:attr:`Context.built`), so only the risky sellers' invoices are read again, and the sellers'
signals are a stage of their own (the ``sellers`` source, not joined onto the base); built
alone, the source reads the tables itself.
"""

from __future__ import annotations

import math

import ibis
import ibis.expr.types as ir

from ._base import Context, Derived, Family, Indicator, Source, month_diff

__all__ = ["FAMILY"]


def _issued(ctx: Context) -> ir.Table:
    """Per seller: invoice tax in k=1..12, amount in k=1..3 and k=4..12. Taken from the
    ``invoices`` source when the pipeline has built it (the same sums over the same
    rows), else from the invoices."""
    out = ctx.built.get("invoices")
    if out is not None:
        return out.select(
            "as_of",
            "taxpayer_id",
            _tax=out.inv_out_tax_12,
            _recent=out._out_amount_1_3,
            _before=out._out_amount_4_12,
        )
    w = ctx.window("invoices", 12)
    return w.group_by([w.as_of, w.seller_id.name("taxpayer_id")]).aggregate(
        _tax=w.tax.sum(),
        _recent=w.amount.sum(where=w.k <= 3),
        _before=w.amount.sum(where=w.k > 3),
    )


def _paid(ctx: Context) -> ir.Table:
    """Per taxpayer: positive VAT payable in k=1..12 (the ``vat`` source's
    ``vat_paid_pos_12`` when built, else from the returns)."""
    vat = ctx.built.get("vat")
    if vat is not None:
        return vat.select("as_of", "taxpayer_id", _paid=vat.vat_paid_pos_12)
    v = ctx.window("vat_returns", 12)
    return v.group_by(["as_of", "taxpayer_id"]).aggregate(
        _paid=ibis.greatest(v.tax_payable, 0.0).sum()
    )


def _heads(ctx: Context) -> ir.Table:
    """Per taxpayer: mean social-insurance headcount in k=1..3 (the ``social_insurance``
    source's when built, else from the table)."""
    soc = ctx.built.get("social_insurance")
    if soc is not None:
        return soc.select("as_of", "taxpayer_id", _heads=soc._headcount_avg_3)
    so = ctx.window("social_insurance", 3)
    return so.group_by(["as_of", "taxpayer_id"]).aggregate(_heads=so.headcount.mean())


def _sellers(ctx: Context) -> ir.Table:
    """Signals of every registered taxpayer known at each (monthly) as-of date."""
    cfg = ctx.config.shell
    issued, paid = _issued(ctx), _paid(ctx)
    tp = ctx.known_all("taxpayers")
    tp = tp.select(
        "as_of",
        "taxpayer_id",
        "industry",
        _age=month_diff(tp.m0, tp.registered_on),
        _gone=tp.deregistered_on.notnull() & (tp.deregistered_on <= tp.as_of),
    )
    s = tp.left_join(issued, ["as_of", "taxpayer_id"]).drop("as_of_right", "taxpayer_id_right")
    s = s.left_join(paid, ["as_of", "taxpayer_id"]).drop("as_of_right", "taxpayer_id_right")
    if ctx.has("social_insurance"):
        heads = _heads(ctx)
        s = s.left_join(heads, ["as_of", "taxpayer_id"]).drop("as_of_right", "taxpayer_id_right")
        heads_col = s._heads.fill_null(0.0)
    else:
        heads_col = ibis.literal(1e9)
    tax = s._tax.fill_null(0.0)
    paid_col = s._paid.fill_null(0.0)
    s = s.mutate(
        _ipl=(ibis.greatest(tax, 0.0) + 1.0).ln() - (ibis.greatest(paid_col, 0.0) + 1.0).ln()
    )
    # the industry's median ratio among its invoicing sellers (as_of, industry)
    med = (
        s.filter(s._tax > 1000.0)
        .group_by(["as_of", "industry"])
        .aggregate(_ipl_med=ibis._._ipl.median())
    )
    s = s.left_join(med, ["as_of", "industry"]).drop("as_of_right", "industry_right")
    tax = s._tax.fill_null(0.0)
    s1 = (tax > 1000.0) & (s._ipl >= s._ipl_med.fill_null(0.0) + math.log(cfg.issue_pay_ratio))
    s2 = s._age < cfg.young_months
    s3 = (tax > 0) & (heads_col <= cfg.max_headcount)
    # a surge is against the firm's own earlier level: a firm without 12 months of history has
    # none (its first invoices are not a surge)
    jump = (s._recent.fill_null(0.0) / 3.0) > cfg.surge_ratio * (
        s._before.fill_null(0.0) / 9.0
    ) + 1000.0
    s4 = (s._age >= 12) & jump
    others = sum(ibis.ifelse(x, 1, 0) for x in (s2, s3, s4))
    score = ibis.ifelse(s1, 1 + others, 0)
    # a supplier's own "issues much, pays little": ``issue_pay_ratio`` times its VAT paid
    s1_own = (tax > 1000.0) & (s._ipl >= math.log(cfg.issue_pay_ratio))
    # (and its invoicing jump whatever its age: a new supplier invoicing much is a risk to
    # its buyers)
    signals = sum(ibis.ifelse(x, 1, 0) for x in (s1_own, s2, s3, jump))
    return s.select(
        "as_of",
        "taxpayer_id",
        "_gone",
        shell_score=score.cast("float64"),
        _signals=signals.cast("float64"),
        issue_pay_log=s._ipl,
        _has_tax=tax > 0,
    )


def network_source(ctx: Context) -> ir.Table:
    built = ctx.built.get("sellers")
    sellers = built if built is not None else _sellers(ctx)
    risky_line = ctx.config.threshold("shell_company")
    w = ctx.window("invoices", 12)
    # the risky suppliers are few: an inner join on them reads invoices as a filter
    risky = sellers.filter((sellers._signals >= risky_line) | sellers._gone).select(
        r_as_of="as_of", r_id="taxpayer_id"
    )
    j = w.join(risky, [w.as_of == risky.r_as_of, w.seller_id == risky.r_id])
    exp = j.group_by([j.as_of, j.buyer_id.name("taxpayer_id")]).aggregate(
        risky_in_amount_12=j.amount.sum()
    )
    own = sellers.filter(~sellers._gone).select(
        "as_of",
        "taxpayer_id",
        shell_score=ibis.ifelse(sellers._has_tax, sellers.shell_score, ibis.null("float64")),
        issue_pay_log=ibis.ifelse(sellers._has_tax, sellers.issue_pay_log, ibis.null("float64")),
    )
    out = own.left_join(exp, ["as_of", "taxpayer_id"])
    return out.drop("as_of_right", "taxpayer_id_right")


DERIVED = [
    Derived(
        "shell_exposure",
        ("risky_in_amount_12", "inv_in_amount_12"),
        lambda b, c: ibis.ifelse(
            b.inv_in_amount_12 > 0,
            ibis.greatest(b.risky_in_amount_12.fill_null(0.0), 0.0) / b.inv_in_amount_12,
            ibis.null("float64"),
        ),
    ),
]


SOURCES = [
    # the sellers' signals, which ``network`` reads twice (the risky suppliers, each
    # taxpayer's own score): a stage of their own, as one query the engine planned the join
    # chain behind them three times (1.1-1.3 s of the 1M build)
    Source("sellers", ("invoices", "vat_returns"), _sellers, granularity="month", joined=False),
    Source(
        "network",
        ("invoices", "vat_returns"),
        network_source,
        granularity="month",
        zero_fill=("risky_in_amount_12",),
    ),
]

_G = "network"

INDICATORS = [
    Indicator(
        id="shell_company",
        name_zh="空壳企业特征(多开票少缴税、新办、无员工、开票激增)",
        name_en="Shell-company signals (issues much, pays little, new, no staff, surge)",
        tables=("invoices", "vat_returns"),
        compute=lambda b, c: b.shell_score,
        direction="high",
        basis=(
            "DOMAIN: invoice chain cross-checks; a shell issues much and pays little (invoice "
            "tax / VAT paid 10x its industry's median ratio) and shows 2 more of: new "
            "(registered within 12 months), no insured staff (headcount 0), invoicing surge "
            "(3x its own earlier level, for a firm a year old)."
        ),
        measure="audit",
        pct=False,
        unit="signals (0-4)",
        group=_G,
        guide_zh="新办企业短期大量开票而缴税很少、无社保人员:立即实地核查经营地址和法定代表人,"
        "核对资金流、货物流与发票流是否一致,必要时暂停发票领用并移交稽查(虚开发票风险)。",
        guide_en="A new firm issuing many invoices, paying little tax, with no insured staff: visit "
        "the address and the legal representative at once, match money, goods and invoice "
        "flows; if they diverge, suspend invoice supply and refer to inspection (fictitious "
        "invoicing).",
    ),
    Indicator(
        id="shell_supplier_exposure",
        name_zh="接受空壳或走逃企业发票",
        name_en="Purchases from shell-like or vanished suppliers",
        tables=("invoices", "vat_returns"),
        compute=lambda b, c: b.shell_exposure,
        direction="high",
        basis=(
            "DOMAIN: industry chain, cross-check buyers against sellers; fires when a fifth of "
            "purchases come from shell-like or vanished (deregistered) suppliers."
        ),
        measure="assessment",
        unit="share",
        group=_G,
        guide_zh="购进发票中较大比例来自空壳特征或已注销(走逃)企业:核实交易真实性,调取合同、"
        "付款记录和运输单据;不能证明真实交易的,进项税额转出。",
        guide_en="A large share of purchases comes from shell-like or vanished suppliers: verify "
        "the transactions (contracts, payments, transport documents); input tax that cannot be "
        "backed by real trade is reversed.",
    ),
]

FAMILY = Family(
    name="network",
    order=50,
    sources=tuple(SOURCES),
    derived=tuple(DERIVED),
    indicators=tuple(INDICATORS),
)
