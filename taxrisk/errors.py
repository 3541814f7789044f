"""The one error base of the product: a leaf module that imports nothing of taxrisk.

:class:`TaxriskError` is what the edges translate: the CLI prints ``str(error)`` on one line
and exits 1, the API answers JSON with a ``detail``. Each layer derives its own narrow errors
from it (``taxrisk.features.errors.DataError``, ``taxrisk.serving.errors.ServingError``, ...).
"""

from __future__ import annotations

__all__ = ["TaxriskError"]


class TaxriskError(Exception):
    """Base class: an expected failure with a message fit for a user."""
