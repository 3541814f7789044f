"""Kept so that imports written before the move keep working: the progress callback lives in
the leaf module :mod:`taxrisk.progress`. New code imports it from there."""

from __future__ import annotations

from taxrisk.progress import ProgressFn, report

__all__ = ["ProgressFn", "report"]
