"""Public pages: home, offer directory, providers, privacy, imprint, language switch."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from kyffikus.i18n import LANG_COOKIE
from kyffikus.web import safe_next

bp = Blueprint("public", __name__)


@bp.get("/")
def home() -> str:
    """What Kyffikus is, who may apply, how to get the pass, how providers take part."""
    return render_template("public/home.html")


@bp.get("/angebote")
def offers() -> str:
    """The offer directory."""
    return render_template("public/home.html")


@bp.get("/datenschutz")
def privacy() -> str:
    """The privacy notice."""
    return render_template("public/home.html")


@bp.get("/impressum")
def imprint() -> str:
    """The imprint."""
    return render_template("public/home.html")


@bp.get("/sprache/<lang>")
def set_language(lang: str) -> Response:
    """Switch the language and keep the choice in a cookie."""
    if lang not in current_app.config["LANGUAGES"]:
        lang = current_app.config["BABEL_DEFAULT_LOCALE"]
    response = redirect(safe_next(request.args.get("next"), url_for("public.home")) or "/")
    response.set_cookie(
        LANG_COOKIE, lang, max_age=365 * 24 * 3600, httponly=True, samesite="Lax",
        secure=current_app.config.get("SESSION_COOKIE_SECURE", False),
    )
    return response
