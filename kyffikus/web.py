"""Request plumbing: security headers, CSP nonces, error pages, template helpers, safe redirects."""

from __future__ import annotations

import contextlib
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    make_response,
    render_template,
    request,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

log = logging.getLogger("kyffikus.web")


def csp_nonce() -> str:
    """A per-request nonce for the few script tags a page has."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return str(g.csp_nonce)


def safe_next(target: str | None, default: str | None = None) -> str | None:
    """Return target if it is a path on this site, else default (refuses other hosts)."""
    if not target:
        return default
    target = target.strip()
    if "\\" in target or any(ord(c) < 32 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if target.endswith("?"):
        target = target[:-1]
    return target


def json_error(status: int, code: str, message: str, **extra: Any) -> Response:
    """The API's error shape: {"error": {"code": ..., "message": ...}}."""
    body: dict[str, Any] = {"code": code, "message": message}
    body.update(extra)
    response = jsonify({"error": body})
    response.status_code = status
    return response


def no_store() -> None:
    """Mark the current response as holding personal data: never cached."""
    g.no_store = True


def private_cache() -> None:
    """Let the view's own `Cache-Control: private, ...` stand (e.g. the owner's QR image)."""
    g.private_cache = True


ERROR_MESSAGES = {
    400: ("bad_request", _l("Die Anfrage ist ungültig.")),
    401: ("unauthorized", _l("Anmeldung erforderlich.")),
    403: ("forbidden", _l("Sie haben keinen Zugriff auf diese Seite.")),
    404: ("not_found", _l("Diese Seite gibt es nicht.")),
    405: ("method_not_allowed", _l("Diese Aktion ist hier nicht möglich.")),
    409: ("conflict", _l("Die Aktion widerspricht dem aktuellen Stand.")),
    413: ("too_large", _l("Die Anfrage ist zu groß.")),
    422: ("unprocessable", _l("Die Angaben können nicht verarbeitet werden.")),
    429: (
        "rate_limited",
        _l("Zu viele Anfragen. Bitte warten Sie einen Moment und versuchen Sie es erneut."),
    ),
    500: (
        "server_error",
        _l("Ein interner Fehler ist aufgetreten. Bitte versuchen Sie es später erneut."),
    ),
    503: (
        "unavailable",
        _l("Der Dienst ist gerade nicht erreichbar. Bitte versuchen Sie es gleich noch einmal."),
    ),
}


def _error_response(status: int, description: str | None = None) -> Any:
    code, lazy_message = ERROR_MESSAGES.get(status, ("error", _l("Fehler")))
    message = str(lazy_message)
    if request.path.startswith("/api/"):
        return json_error(status, code, description or message)
    template = f"errors/{status}.html" if status in (403, 404, 500) else "errors/generic.html"
    return render_template(template, status=status, message=message, detail=description), status


def _database_down() -> Any:
    """503 with a clear message, shown to an anonymous visitor whatever the session holds.

    The rest of the request is anonymous: the locale, the page and the headers would otherwise
    load the user from the database that is down, and the 503 would become a 500.
    """
    g._login_user = current_app.login_manager.anonymous_user()  # type: ignore[attr-defined]
    no_store()
    return _error_response(
        503,
        _("Die Datenbank ist gerade nicht erreichbar. Bitte versuchen Sie es gleich noch einmal."),
    )


def _logged_in_or_unknown() -> bool:
    """Whether the response is for a logged-in user; True when the user cannot be loaded."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    try:
        return bool(current_user and getattr(current_user, "is_authenticated", False))
    except (OperationalError, InterfaceError):
        return True  # the database is down: never let such a response be cached


def init_app(app: Flask) -> None:
    """Install headers, error handlers and template helpers."""
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    from kyffikus.pagecache import lang_switch_url

    app.jinja_env.globals["lang_switch_url"] = lang_switch_url
    # `is message`: a plain or lazily translated string (a form error that can be shown as it is).
    app.jinja_env.tests["message"] = lambda value: isinstance(value, str | LazyString)
    app.jinja_env.add_extension("jinja2.ext.do")

    @app.context_processor
    def _inject() -> dict[str, Any]:
        from flask_babel import get_locale

        return {"current_locale": str(get_locale() or "de")}

    @app.after_request
    def _security_headers(response: Response) -> Response:
        nonce = g.get("csp_nonce")
        script_src = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; "
            f"script-src {script_src}; "
            "style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
            "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Permissions-Policy"] = "camera=(self), geolocation=(), microphone=()"
        if request.is_secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        personal = g.get("no_store") or (
            not g.get("private_cache")
            and not request.path.startswith("/static/")
            and _logged_in_or_unknown()
        )
        if personal:
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        response.vary.add("Cookie") if not request.path.startswith("/static/") else None
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        from sqlalchemy.exc import InterfaceError, OperationalError

        try:
            return _http_error_page(exc)
        except (OperationalError, InterfaceError) as db_exc:
            # Showing the error needed the user (locale, navigation) from a database that is down.
            log.error("database unavailable: %s", type(db_exc).__name__)
            return _database_down()

    def _http_error_page(exc: HTTPException) -> Any:
        status = exc.code or 500
        if status in (401, 403):
            log.info("refused %s %s: %s", request.method, request.path, status)
        description = None
        if isinstance(exc, CSRFError):
            # A refusal worth logging (a forged cross-site POST looks like this); the reason is
            # Flask-WTF's fixed text, never form content.
            log.info("CSRF refused %s %s: %s", request.method, request.path, exc.description)
            description = _(
                "Das Formular ist abgelaufen oder wurde nicht von dieser Seite gesendet. "
                "Bitte laden Sie die Seite neu und versuchen Sie es noch einmal."
            )
        elif status == 429:
            description = str(ERROR_MESSAGES[429][1])
        elif (
            status in (400, 409, 422) and exc.description and not exc.description.startswith("The ")
        ):
            description = exc.description
        response = _error_response(status, description)
        if status == 405 and getattr(exc, "valid_methods", None):
            if isinstance(response, tuple):
                response = make_response(*response)
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[union-attr]
        return response

    @app.errorhandler(Exception)
    def _server_error(exc: Exception) -> Any:
        from sqlalchemy.exc import InterfaceError, OperationalError

        from kyffikus.extensions import db

        # The database may be the thing that is down: a failed rollback must not hide the answer.
        with contextlib.suppress(Exception):
            db.session.rollback()
        if isinstance(exc, OperationalError | InterfaceError):
            log.error("database unavailable: %s", type(exc).__name__)
            return _database_down()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error_response(500)
