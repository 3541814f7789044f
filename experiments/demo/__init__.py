"""The synthetic city: ``taxrisk demo-data``.

:func:`generate` writes every contract table (CONTRACT section 1) plus ``truth/gaps`` for a
city of ``taxpayers`` over ``months`` months; :data:`PLANTED` names the taxpayers that carry
the source documents' worked examples and the figures they must reproduce. The world is
described in ``experiments/README.md``.
"""

from .generate import CHUNK_SIZE, DEFAULT_END, DemoDataError, generate
from .planted import PLANTED

__all__ = ["CHUNK_SIZE", "DEFAULT_END", "PLANTED", "DemoDataError", "generate"]
