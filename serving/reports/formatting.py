"""Number formatting shared by the pages and the reports (Jinja filters).

Money is yuan; percentiles are shares in (0, 1]; indicator values are whatever the catalog
computes (ratios, months, yuan), shown with four significant digits below 1,000 and with
thousands separators above.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

__all__ = ["FILTERS", "fmt_date", "fmt_money", "fmt_num", "fmt_pct", "fmt_signed", "fmt_value"]


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def fmt_num(v: Any, digits: int = 0) -> str:
    """``1234567.8`` -> ``1,234,568``; ``None``/NaN -> ``–``."""
    if not _finite(v):
        return "–"
    return f"{v:,.{digits}f}"


def fmt_money(v: Any, lang: str = "zh") -> str:
    """Yuan with thousands separators: ``1,234,568 元`` (zh) or ``¥1,234,568`` (en)."""
    if not _finite(v):
        return "–"
    text = f"{abs(v):,.0f}"
    sign = "-" if v < 0 and round(abs(v)) > 0 else ""
    return f"{sign}{text} 元" if lang == "zh" else f"{sign}¥{text}"


def fmt_signed(v: Any) -> str:
    """``+12,345`` / ``-678`` (yuan, no unit): the steps of a waterfall."""
    if not _finite(v):
        return "–"
    return f"{v:+,.0f}"


def fmt_pct(v: Any, digits: int = 0) -> str:
    """A share as a percentage: ``0.934`` -> ``93%``."""
    if not _finite(v):
        return "–"
    return f"{v * 100:.{digits}f}%"


def fmt_value(v: Any) -> str:
    """An indicator value: ``0.01234`` -> ``0.01234``, ``12.5`` -> ``12.5``, ``123456`` -> ``123,456``."""
    if not _finite(v):
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if v == int(v):
        return str(int(v))
    return f"{v:.4g}"


def fmt_date(v: Any) -> str:
    """A date or an instant (UTC, minutes) in ISO form; ``None`` -> ``–``."""
    if v is None:
        return "–"
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.UTC)
        return v.strftime("%Y-%m-%d %H:%M") + (" UTC" if v.tzinfo else "")
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


FILTERS = {
    "num": fmt_num,
    "money": fmt_money,
    "signed": fmt_signed,
    "pct": fmt_pct,
    "value": fmt_value,
    "when": fmt_date,
}
