"""Language selection: a visible switch kept in a cookie, then Accept-Language, then German."""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace
from typing import Any, NamedTuple

from babel import Locale
from babel.support import Translations
from flask import Flask, current_app, g, has_request_context, request
from flask_babel import get_babel, get_translations
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


class _Language(NamedTuple):
    """The request's language as the texts need it: Flask-Babel's Locale, its code, its catalogue."""

    locale: Locale
    code: str
    translations: Any


# The catalogues by Flask-Babel domain and language code: Flask-Babel keeps them for the process
# too, but finds them again for every request through the locale, the domain and the context.
_CATALOGUES: dict[tuple[Any, str], Any] = {}


@lru_cache(maxsize=16)
def _code(locale: Locale) -> str:
    return str(locale)


def _language() -> _Language | None:
    """The request's language, worked out once per request (None outside an app context).

    The first text of a request costs Flask-Babel about ten context lookups for the locale and as
    many for the catalogue; here they are done once, and the result is kept beside Flask-Babel's
    own state (g._flask_babel), keyed by its Locale object: force_locale() and refresh() swap that
    object, so the kept language no longer fits and is worked out again.
    """
    try:
        app_globals = g._get_current_object()  # type: ignore[attr-defined]
    except RuntimeError:
        return None  # no app context: the default language, Flask-Babel's null translations
    state = app_globals.__dict__.get("_flask_babel")
    if state is None:
        state = app_globals._flask_babel = SimpleNamespace()  # as Flask-Babel makes it
    known = getattr(state, "kyffikus_language", None)
    locale = getattr(state, "babel_locale", None)
    if known is not None and known.locale is locale:
        return known  # type: ignore[no-any-return]
    babel = get_babel()
    if locale is None:
        # Flask-Babel's get_locale(), without its context lookups: the selector's answer, kept
        # on its state where get_locale() finds it.
        chosen = babel.locale_selector() if babel.locale_selector is not None else None
        locale = babel.instance.default_locale if chosen is None else Locale.parse(chosen)
        state.babel_locale = locale
    domain = state.__dict__.get("babel_domain")
    if domain is None:
        domain = state.babel_domain = babel.instance.domain_instance
    code = _code(locale)
    key = (domain, code)
    translations = _CATALOGUES.get(key)
    if translations is None:
        translations = get_translations()
        if isinstance(translations, Translations):  # not the null translations of no context
            _CATALOGUES[key] = translations
    language = state.kyffikus_language = _Language(locale, code, translations)
    return language


def _translations() -> Any:
    """The request's translations, looked up once per request and locale (not once per string)."""
    language = _language()
    return get_translations() if language is None else language.translations


def locale_code() -> str:
    """The request's language code ("de", "en"), worked out once per request (str of get_locale)."""
    language = _language()
    return language.code if language is not None else "de"  # None: no app context


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
