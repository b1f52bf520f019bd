"""Sessions: the user loader, session versions, and idle/absolute limits for staff and providers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app, request, session
from flask_login import LoginManager, logout_user
from sqlalchemy import Boolean, Integer, String, column, text

from kyffikus.extensions import db
from kyffikus.hotsql import HotStatement
from kyffikus.models.people import User

log = logging.getLogger("kyffikus.auth")


def init_app(app: Flask, login_manager: LoginManager) -> None:
    """Wire Flask-Login to our user model and session rules."""
    login_manager.login_view = "auth.login"
    login_manager.login_message = None  # a localised message is flashed by the unauthorized handler
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(_unauthorized)
    app.before_request(enforce_session_limits)


# The till's pages: every scan at every till loads the session's user, and these pages need only
# a few of its columns (role, provider, language). They get a SessionUser from one plain statement.
HOT_ENDPOINTS = frozenset({"verify.verify", "provider.check", "provider.check_result"})

SESSION_USER_SQL = (
    "SELECT id AS user_id, role AS user_role, provider_id AS user_provider_id, "
    "active AS user_active, session_version AS user_session_version, locale AS user_locale "
    "FROM user_account WHERE id = :user_id"
)
SESSION_USER_RESULT: list[tuple[str, Any]] = [
    ("user_id", Integer),
    ("user_role", String),
    ("user_provider_id", Integer),
    ("user_active", Boolean),
    ("user_session_version", Integer),
    ("user_locale", String),
]
_SESSION_USER = HotStatement(
    text(SESSION_USER_SQL).columns(*(column(n, t) for n, t in SESSION_USER_RESULT))
)
# A hot endpoint may load the session's user together with what its view needs next (one
# statement instead of two): endpoint -> function(user id) -> a row with SESSION_USER_RESULT's
# columns first, or None for no such user. The QR address registers the check (verify.py).
USER_WITH: dict[str, Callable[[int], Any | None]] = {}


class SessionUser:
    """The session's user as the till's pages see it: a few columns read without the ORM.

    Flask-Login's interface and the columns the check needs answer at once. Anything else (another
    column, a relationship) loads the ORM User on first use and answers from it, so code written
    for a User keeps working; `orm_user` is that User (e.g. to record who did something).
    """

    is_authenticated = True
    is_anonymous = False

    def __init__(self, row: Any) -> None:
        # A row with SESSION_USER_RESULT's columns (maybe followed by others).
        self.id: int = row.user_id
        self.role: str = row.user_role
        self.provider_id: int | None = row.user_provider_id
        self.active: bool = bool(row.user_active)
        self.session_version: int = row.user_session_version
        self.locale: str | None = row.user_locale
        self._user: User | None = None

    @property
    def is_active(self) -> bool:
        """Deactivated users' sessions end (as User.is_active)."""
        return self.active

    @property
    def is_staff(self) -> bool:
        """Staff or admin (as User.is_staff)."""
        return self.role in ("staff", "admin")

    def get_id(self) -> str:
        """The session's user id with the session version (as User.get_id)."""
        return f"{self.id}:{self.session_version}"

    @property
    def orm_user(self) -> User:
        """The ORM User, loaded by primary key on first use."""
        if self._user is None:
            user = db.session.get(User, self.id)
            if user is None:  # deleted since this request began
                raise LookupError("the session's user no longer exists")
            self._user = user
        return self._user

    def __getattr__(self, name: str) -> Any:
        # Only for names not set above: columns and relationships of the full User.
        if name.startswith("__") or name == "_user":
            raise AttributeError(name)
        return getattr(self.orm_user, name)


def load_user(user_id: str) -> User | SessionUser | None:
    """Load the user of a session id "<id>:<version>"; a stale version ends the session."""
    try:
        raw_id, raw_version = user_id.split(":", 1)
        uid, version = int(raw_id), int(raw_version)
    except ValueError:
        return None
    if not 0 < uid <= 2**31 - 1:
        return None
    user: User | SessionUser | None
    if request.endpoint in HOT_ENDPOINTS:
        with_next = USER_WITH.get(request.endpoint or "")
        row = with_next(uid) if with_next is not None else None
        if row is None:
            rows = _SESSION_USER.rows({"user_id": uid})
            row = rows[0] if rows else None
        user = SessionUser(row) if row is not None and row.user_id is not None else None
    else:
        user = db.session.get(User, uid)
    if user is None or not user.active or user.session_version != version:
        return None
    return user


def _unauthorized():  # type: ignore[no-untyped-def]
    """Anonymous users are sent to the login page (HTML) or get 401 (API)."""
    from flask import flash, redirect, request, url_for
    from flask_babel import gettext as _

    from kyffikus.web import json_error, safe_next

    if request.path.startswith("/api/"):
        return json_error(401, "unauthorized", _("Anmeldung erforderlich."))
    log.info("anonymous request refused: %s %s", request.method, request.path)
    flash(_("Bitte melden Sie sich an, um diese Seite zu sehen."), "info")
    return redirect(url_for("auth.login", next=safe_next(request.full_path)))


def _now() -> datetime:
    return datetime.now(UTC)


def start_session(user: User) -> None:
    """Record the login time; called right after login_user (which renews the session)."""
    now = _now().timestamp()
    session["login_at"] = now
    session["seen_at"] = now
    session.permanent = True


# Requests that never need the user: static files (the 503 page needs its stylesheet while the
# database is down), the balancer's health checks (the process answers without the database) and
# the till API, which a Bearer token authenticates and a session cookie never does.
NO_USER_ENDPOINTS = frozenset(
    {
        "static",
        "health.healthz",
        "health.readyz",
        "api_checks.check",
        "api_checks.redeem",
        "api_checks.undo",
    }
)


def enforce_session_limits() -> None:
    """Staff and providers: 2 h idle and 12 h absolute; families: a long absolute limit."""
    from flask import request
    from flask_login import current_user

    if request.endpoint in NO_USER_ENDPOINTS:
        return
    if not current_user or not current_user.is_authenticated:
        return
    now = _now().timestamp()
    login_at = session.get("login_at")
    seen_at = session.get("seen_at", login_at)
    if login_at is None:
        # A session without a recorded login (older cookie): treat it as just started.
        start_session(current_user)
        return
    if current_user.role in ("staff", "admin", "provider"):
        idle: timedelta = current_app.config["STAFF_SESSION_IDLE"]
        absolute: timedelta = current_app.config["STAFF_SESSION_ABSOLUTE"]
    else:
        idle = current_app.config["FAMILY_SESSION_ABSOLUTE"]
        absolute = current_app.config["FAMILY_SESSION_ABSOLUTE"]
    if now - login_at > absolute.total_seconds() or now - (seen_at or now) > idle.total_seconds():
        log.info("session expired for user %s", current_user.id)
        logout_user()
        session.clear()
        return
    # Touch at most once a minute so a page view does not rewrite the cookie every time.
    if now - (seen_at or 0) > 60:
        session["seen_at"] = now


def end_all_sessions(user: User) -> None:
    """Raise the session version: every session of this user ends on its next request."""
    user.session_version = (user.session_version or 1) + 1
