"""Language selection: a visible switch kept in a cookie, then Accept-Language, then German."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from babel import Locale
from flask import Flask, current_app, g, has_app_context, has_request_context, request
from flask_babel import get_locale, get_translations
from flask_login import current_user
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from kyffikus.auth_session import NO_USER_ENDPOINTS

LANG_COOKIE = "kyffikus_lang"


def select_locale() -> str:
    """The cookie set by the language switch wins; then the user's setting; then the browser."""
    languages: list[str] = current_app.config["LANGUAGES"]
    if not has_request_context():
        # CLI commands and services called outside a request speak the default language.
        return str(current_app.config["BABEL_DEFAULT_LOCALE"])
    cookies = request.cookies
    # `in` first: a missing key costs werkzeug's get() an exception object (KeyError as a 400).
    chosen = cookies.get(LANG_COOKIE) if LANG_COOKIE in cookies else None
    if chosen in languages:
        return chosen
    if request.endpoint not in NO_USER_ENDPOINTS:  # the API: no session, Accept-Language only
        user_locale = getattr(current_user, "locale", None) if current_user else None
        if user_locale in languages:
            return user_locale
    # From the environ: a missing header costs werkzeug's headers.get() an exception object.
    header = request.environ.get("HTTP_ACCEPT_LANGUAGE", "")
    return _best_match(header, tuple(languages)) or current_app.config["BABEL_DEFAULT_LOCALE"]


def locale_selector() -> Locale:
    """select_locale as Flask-Babel's selector: a Babel Locale, parsed once per language."""
    return _parsed_locale(select_locale())


@lru_cache(maxsize=16)
def _parsed_locale(code: str) -> Locale:
    # Flask-Babel parses the selector's string on every request; a Locale it takes as it is.
    return Locale.parse(code)


@lru_cache(maxsize=256)
def _best_match(header: str, languages: tuple[str, ...]) -> str | None:
    # Browsers send a handful of different headers; each is parsed once per process.
    return parse_accept_header(header, LanguageAccept).best_match(languages)


def select_timezone() -> str:
    """Dates are shown in Europe/Berlin."""
    return "Europe/Berlin"


def _translations() -> Any:
    """The request's translations, looked up once per request and locale (not once per string)."""
    try:
        state = g._flask_babel  # Flask-Babel's per-request state (locale, domain)
        locale, translations = state.kyffikus_translations
        if locale is state.babel_locale:
            return translations
    except AttributeError:
        pass
    except RuntimeError:  # no app context: Flask-Babel answers with its null translations
        return get_translations()
    translations = get_translations()
    state = getattr(g, "_flask_babel", None)
    locale = getattr(state, "babel_locale", None)
    if locale is not None:
        # Keyed by the locale object: force_locale() or refresh() swap it, and the key no longer fits.
        state.kyffikus_translations = (locale, translations)
    return translations


def locale_code() -> str:
    """The request's language code ("de", "en"), worked out once per request (str of get_locale)."""
    if not has_app_context():
        return "de"
    state = g.get("_flask_babel")
    locale = getattr(state, "babel_locale", None)
    cached = getattr(state, "kyffikus_locale_code", None)
    if locale is not None and cached is not None and cached[0] is locale:
        return str(cached[1])
    locale = get_locale()
    code = str(locale) if locale is not None else str(current_app.config["BABEL_DEFAULT_LOCALE"])
    state = g.get("_flask_babel")
    if state is not None and locale is not None:
        # Keyed by the locale object: force_locale() or refresh() swap it, and the key no longer fits.
        state.kyffikus_locale_code = (locale, code)
    return code


def gettext(string: str, **variables: Any) -> str:
    """Flask-Babel's gettext, on the request's translations looked up once (see _translations)."""
    text: str = _translations().ugettext(string)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, num: int, **variables: Any) -> str:
    """Flask-Babel's ngettext (``%(num)s`` is the number), on the request's translations."""
    variables.setdefault("num", num)
    text: str = _translations().ungettext(singular, plural, num)
    return text % variables


def install_template_gettext(app: Flask) -> None:
    """Give templates the same gettext as Flask-Babel's, minus its per-string lookups.

    A page calls _() fifty times and more; Flask-Babel resolves the locale, the domain and the
    catalogue anew for every string (ten context-local lookups each). The texts are the same.
    """
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: _translations().ugettext(s),
        ngettext=lambda s, p, n: _translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: _translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: _translations().unpgettext(c, s, p, n),
    )
