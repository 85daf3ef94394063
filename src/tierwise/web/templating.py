"""The Jinja2 environments of the pages and the report: autoescaped, one per language, with
gettext from the language's catalog and locale-aware number filters."""

from __future__ import annotations

from datetime import date, datetime
from functools import cache

from jinja2 import Environment, PackageLoader

from tierwise.web.i18n import HTML_LANG, Formatter, Lang, translations


@cache
def environment(lang: Lang) -> Environment:
    """The templates in `lang`, built on first use and kept (one per language)."""
    env = Environment(
        loader=PackageLoader("tierwise.web", "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    fmt = Formatter(lang)
    env.filters |= {
        "number": fmt.number,
        "compact": fmt.compact,
        "percent": fmt.percent,
        "signed_percent": fmt.signed_percent,
        "when": _when,
    }
    env.globals |= {"label": fmt.label, "fmt": fmt, "lang": lang, "html_lang": HTML_LANG[lang]}
    return env


def _when(value: datetime | date | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
