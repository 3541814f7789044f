"""Progress reporting for long library work, without a UI dependency (a leaf module).

Library functions take ``progress: ProgressFn | None`` and call it as
``progress(step, done, total)``; the CLI adapts it to a rich progress bar.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ProgressFn", "report"]

ProgressFn = Callable[[str, int, int], None]


def report(progress: ProgressFn | None, step: str, done: int, total: int) -> None:
    """Call ``progress(step, done, total)`` when a callback was given."""
    if progress is not None:
        progress(step, done, total)
