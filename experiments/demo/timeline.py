"""The calendar of a synthetic city: months ``0..M-1`` ending with ``end``.

Month index ``m`` is the position of a calendar month in the modelled window; negative
indexes are months before the window (registrations of old firms) and indexes ``>= M`` are
months after it (late filings). Dates are numpy ``datetime64[D]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Timeline"]


@dataclass(frozen=True)
class Timeline:
    """``months`` calendar months ending with ``end`` (``'YYYY-MM'``)."""

    end: str
    months: int
    start_year: int = field(init=False)
    start_month: int = field(init=False)

    def __post_init__(self) -> None:
        year, month = (int(x) for x in self.end.split("-"))
        if not 1 <= month <= 12:
            raise ValueError(f"end must be YYYY-MM, got {self.end!r}")
        if self.months < 1:
            raise ValueError(f"months must be >= 1, got {self.months}")
        absolute = year * 12 + (month - 1) - (self.months - 1)
        object.__setattr__(self, "start_year", absolute // 12)
        object.__setattr__(self, "start_month", absolute % 12 + 1)

    # -- month arithmetic -------------------------------------------------------------
    def _absolute(self, m: np.ndarray | int) -> np.ndarray:
        return np.asarray(m) + self.start_year * 12 + (self.start_month - 1)

    def year_of(self, m: np.ndarray | int) -> np.ndarray:
        """Calendar year of month index ``m``."""
        return self._absolute(m) // 12

    def calmonth_of(self, m: np.ndarray | int) -> np.ndarray:
        """Calendar month (1..12) of month index ``m``."""
        return self._absolute(m) % 12 + 1

    def month_start(self, m: np.ndarray | int) -> np.ndarray:
        """First day of month index ``m`` (datetime64[D])."""
        a = self._absolute(m)
        return (a - 1970 * 12).astype("datetime64[M]").astype("datetime64[D]")

    def month_end(self, m: np.ndarray | int) -> np.ndarray:
        """Last day of month index ``m`` (datetime64[D])."""
        return self.month_start(np.asarray(m) + 1) - np.timedelta64(1, "D")

    def month_of_date(self, d: np.ndarray) -> np.ndarray:
        """Month index of dates ``d`` (datetime64[D])."""
        a = d.astype("datetime64[M]").astype(np.int64) + 1970 * 12
        return a - (self.start_year * 12 + (self.start_month - 1))

    @property
    def last_day(self) -> np.datetime64:
        """The natural as-of date of the world: the last day of ``end``."""
        day: np.datetime64 = self.month_end(self.months - 1)[()]  # type: ignore[assignment]
        return day

    # -- labels ----------------------------------------------------------------------
    def period_labels(self) -> np.ndarray:
        """``'YYYY-MM'`` for every month of the window (str array, length ``months``)."""
        m = np.arange(self.months)
        return np.array(
            [f"{y:04d}-{c:02d}" for y, c in zip(self.year_of(m), self.calmonth_of(m), strict=True)]
        )

    def quarter_labels(self) -> np.ndarray:
        """``'YYYY-Qn'`` of every month of the window (str array, length ``months``)."""
        m = np.arange(self.months)
        q = (self.calmonth_of(m) - 1) // 3 + 1
        return np.array([f"{y:04d}-Q{k}" for y, k in zip(self.year_of(m), q, strict=True)])

    def is_quarter_end(self) -> np.ndarray:
        """True for months that close a calendar quarter (bool, length ``months``)."""
        return self.calmonth_of(np.arange(self.months)) % 3 == 0
