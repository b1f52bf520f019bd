"""Language selection: a visible switch kept in a cookie, then Accept-Language, then German."""

from __future__ import annotations

from flask import current_app, has_request_context, request
from flask_login import current_user

LANG_COOKIE = "kyffikus_lang"


def select_locale() -> str:
    """The cookie set by the language switch wins; then the user's setting; then the browser."""
    languages: list[str] = current_app.config["LANGUAGES"]
    if not has_request_context():
        # CLI commands and services called outside a request speak the default language.
        return str(current_app.config["BABEL_DEFAULT_LOCALE"])
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in languages:
        return chosen
    user_locale = getattr(current_user, "locale", None) if current_user else None
    if user_locale in languages:
        return user_locale
    return request.accept_languages.best_match(languages) or current_app.config["BABEL_DEFAULT_LOCALE"]


def select_timezone() -> str:
    """Dates are shown in Europe/Berlin."""
    return "Europe/Berlin"
