"""Languages of the dashboard: gettext catalogs read from the .po files with Babel at startup,
the choice between them (cookie, else Accept-Language) and locale-aware number formatting.

The .po files are the source; they are compiled in memory when the app starts, so no binary
catalog is committed. Segment, class and stage names come from `core.vocab.label`, which the
CLI and exports share.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Literal

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_compact_decimal, format_decimal, format_percent
from babel.support import Translations

from tierwise.core.vocab import label

Lang = Literal["en", "zh_CN"]
LANGS: tuple[Lang, ...] = ("en", "zh_CN")
DEFAULT_LANG: Lang = "en"
LANG_COOKIE = "tierwise_lang"
HTML_LANG = {"en": "en", "zh_CN": "zh-CN"}


def N_(message: str) -> str:  # noqa: N802 - the name gettext tools look for
    """Mark a message for extraction where it is translated later (menus, role names)."""
    return message


@cache
def translations(lang: Lang) -> Translations:
    """The catalog of `lang`, compiled from its .po file once per process."""
    po = files("tierwise.web").joinpath("locale", lang, "LC_MESSAGES", "messages.po")
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def negotiate(cookie: str | None, accept_language: str | None) -> Lang:
    """The cookie's language if it names one we have; else zh_CN when the browser ranks a
    Chinese language above English (by q-value, then order), else English."""
    if cookie in LANGS:
        return cookie
    best: tuple[float, int, Lang] | None = None
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        lang: Lang | None = "zh_CN" if tag.startswith("zh") else "en" if tag[:2] == "en" else None
        if lang and q > 0 and (best is None or (q, -position) > (best[0], best[1])):
            best = (q, -position, lang)
    return best[2] if best else DEFAULT_LANG


@dataclass(frozen=True)
class Formatter:
    """Numbers, shares and vocabulary labels as one language writes them."""

    lang: Lang

    def label(self, column: str, code: str | None) -> str:
        return label(column, code, self.lang)

    def number(self, value: float | None, digits: int = 0) -> str:
        if value is None:
            return "—"
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(value, format=pattern, locale=self.lang)

    def compact(self, value: float | None) -> str:
        """1.2M / 120万: KPI cards show magnitudes, tables show exact numbers."""
        if value is None:
            return "—"
        if abs(value) < 10_000:
            return self.number(value, 0 if abs(value) >= 100 or value == int(value) else 1)
        return format_compact_decimal(value, locale=self.lang, fraction_digits=1)

    def percent(self, value: float | None, digits: int = 1) -> str:
        if value is None:
            return "—"
        pattern = "0" + ("." + "0" * digits if digits else "") + "%"
        return format_percent(value, format=pattern, locale=self.lang)

    def signed_percent(self, value: float | None) -> str:
        if value is None:
            return "—"
        return ("+" if value > 0 else "") + self.percent(value)
