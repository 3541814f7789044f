"""Translations of the pages and reports: Chinese by default, English on request.

Messages live in ``translations/<lang>.toml`` (nested tables flattened to dotted keys:
``[nav] queue = "..."`` is ``nav.queue``). Both files carry the same keys (a test checks);
a key missing from a language falls back to Chinese, then to the key itself, so a page
never fails over a missing label. ``{name}`` placeholders are filled by :meth:`Translator.__call__`.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any, Literal

__all__ = ["DEFAULT_LANG", "LANGS", "Lang", "Translator", "messages", "translator"]

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
DEFAULT_LANG: Lang = "zh"
_DIR = Path(__file__).with_name("translations")


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, full + "."))
        else:
            out[full] = str(value)
    return out


@cache
def messages(lang: str) -> dict[str, str]:
    """The flattened messages of ``lang`` (one of :data:`LANGS`)."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; expected one of {LANGS}")
    with (_DIR / f"{lang}.toml").open("rb") as f:
        return _flatten(tomllib.load(f))


class Translator:
    """``t("nav.queue")`` -> the label in this language; ``t("x", n=3)`` fills ``{n}``."""

    def __init__(self, lang: str) -> None:
        self.lang: Lang = lang if lang in LANGS else DEFAULT_LANG  # type: ignore[assignment]
        self._msgs = messages(self.lang)
        self._fallback = messages(DEFAULT_LANG)

    def __call__(self, key: str, /, **values: Any) -> str:
        text = self._msgs.get(key) or self._fallback.get(key) or key
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in self._msgs

    def term(self, group: str, value: str | None) -> str:
        """A controlled term (status, measure, level...): ``group.value`` or the raw value."""
        if value is None:
            return "–"
        key = f"{group}.{value}"
        return self(key) if key in self._msgs or key in self._fallback else value


@cache
def translator(lang: str) -> Translator:
    return Translator(lang)
