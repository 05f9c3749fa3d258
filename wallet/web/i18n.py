"""The language of a page: German by default, English on request.

Catalogs are the committed ``.po`` files under ``wallet/translations``, compiled in
memory when the app starts, so there is no build step and no ``.mo`` file to forget.
The language of a request is, in this order: ``?lang=`` (then remembered in a
cookie), the cookie, the browser's Accept-Language, German.
"""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from flask import Flask, Response, current_app, g, request

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
LANGUAGE_NAMES = {"de": "Deutsch", "en": "English"}
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 86400
CATALOGS = Path(__file__).resolve().parent.parent / "translations"
DOMAIN = "messages"
# The city's wall clock: validity dates are printed as people there read them.
DISPLAY_TIMEZONE = "Europe/Berlin"
_EXTENSION = "wallet_i18n"


def load_catalogs(folder: Path = CATALOGS) -> dict[str, Translations]:
    """Compile each language's ``messages.po`` in memory (fuzzy entries are left out)."""
    catalogs: dict[str, Translations] = {}
    for lang in LANGUAGES:
        path = folder / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        with path.open("rb") as po:
            catalog = read_po(po, locale=lang, domain=DOMAIN)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        catalogs[lang] = Translations(fp=compiled, domain=DOMAIN)
    return catalogs


def init_app(app: Flask) -> None:
    """Load the catalogs once and teach Jinja ``_()``, date filters and the language."""
    if _EXTENSION in app.extensions:
        return
    app.extensions[_EXTENSION] = load_catalogs()
    app.jinja_env.add_extension("jinja2.ext.i18n")
    # Jinja's newstyle gettext fills the %(name)s placeholders itself (escaping them).
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda message: _translations().gettext(message),
        ngettext=lambda singular, plural, n: _translations().ngettext(singular, plural, n),
        newstyle=True,
    )
    app.jinja_env.filters["day"] = format_day
    app.jinja_env.filters["moment"] = format_moment


def language() -> str:
    """The language of the current request (decided once per request)."""
    chosen: str | None = g.get("language")
    if chosen is None:
        chosen = _negotiate()
        g.language = chosen
    return chosen


def _negotiate() -> str:
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return str(asked)
    remembered = request.cookies.get(COOKIE)
    if remembered in LANGUAGES:
        return str(remembered)
    # Werkzeug's best_match prefers an exact "en" over "de-AT" listed first; we go
    # by the browser's order and compare primary subtags only.
    for value, _quality in request.accept_languages:
        primary = value.split("-")[0].lower()
        if primary in LANGUAGES:
            return primary
    return DEFAULT_LANGUAGE


def remember_language(response: Response) -> Response:
    """After-request hook: keep an explicit choice in a cookie; caches must vary."""
    asked = request.args.get("lang")
    if asked in LANGUAGES and request.cookies.get(COOKIE) != asked:
        response.set_cookie(
            COOKIE,
            str(asked),
            max_age=COOKIE_MAX_AGE,
            secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
            httponly=True,
            samesite="Lax",
        )
    response.vary.update(("Cookie", "Accept-Language"))
    return response


def switch_url(target: str) -> str:
    """A link to ``target`` (a path) in the other language, keeping the query."""
    other = "en" if language() == "de" else "de"
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "lang"]
    return f"{target}?{urlencode([*args, ('lang', other)])}"


def template_context() -> dict[str, Any]:
    """Context processor for the HTML blueprints."""
    lang = language()
    other = "en" if lang == "de" else "de"
    return {"lang": lang, "other_lang": other, "other_lang_name": LANGUAGE_NAMES[other]}


def _translations() -> Translations:
    catalogs: dict[str, Translations] = current_app.extensions[_EXTENSION]
    return catalogs[language()]


def gettext(message: str, **variables: Any) -> str:
    """Translate into the request's language; ``%(name)s`` placeholders are filled."""
    text = _translations().gettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, num: int, **variables: Any) -> str:
    text = _translations().ngettext(singular, plural, num)
    variables.setdefault("num", num)
    return text % variables


_ = gettext


def _local(moment: datetime) -> datetime:
    return moment.astimezone(ZoneInfo(DISPLAY_TIMEZONE))


def format_day(moment: datetime) -> str:
    """A date as people write it in the request's language: "24. November 2026"."""
    return format_date(_local(moment).date(), format="long", locale=language())


def format_moment(moment: datetime) -> str:
    """Date and time to the second, in the city's time zone."""
    return format_datetime(_local(moment), format="medium", locale=language())
