"""Flask's signed cookie sessions, with each verified cookie remembered by the worker for a while.

A till sends the same session cookie with every check (it changes once a minute, when the
session's last-seen time moves on). Flask verifies it anew on every request: it builds the
serializer, decodes base64, checks the HMAC, inflates and parses JSON, about 40 µs of a check's
CPU. The same cookie text verified with the same keys always gives the same session, so a worker
keeps what it verified, by the cookie's exact text and the keys, and only checks the age again on
each request, as itsdangerous does (a cookie older than PERMANENT_SESSION_LIFETIME, or dated in
the future, is no session).

Only sessions whose values are all plain scalars are kept (a flashed message is a list: such a
session is decoded each time), so each request gets a session of its own that shares nothing
mutable with the one kept. At most MAX_KEPT cookies are kept per worker (a few hundred KB).
Nothing here is needed by another worker: it is a cache of a verification, never the only copy.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature

MAX_KEPT = 2048
_SCALARS = (str, int, float, bool, type(None))


class RememberingSessionInterface(SecureCookieSessionInterface):
    """SecureCookieSessionInterface that verifies a given cookie text only once per worker."""

    def __init__(self) -> None:
        self._kept: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """The request's session: from the cookie, verified here once and then remembered."""
        name = self.get_cookie_name(app)
        if not app.secret_key:
            return None  # as Flask: no secret key, no session (its error page says why)
        # `in` first: a missing key costs werkzeug's get() an exception object (KeyError as a 400).
        value = request.cookies.get(name) if name in request.cookies else None
        if not value:
            return self.session_class()
        max_age = int(app.permanent_session_lifetime.total_seconds())
        key = (value, app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        kept = self._kept.get(key)
        if kept is not None:
            signed_at, data = kept
            if 0 <= int(time.time()) - signed_at <= max_age:
                return self.session_class(data)
            self._kept.pop(key, None)
            return self.session_class()
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        try:
            data, signed = serializer.loads(value, max_age=max_age, return_timestamp=True)
        except BadSignature:
            return self.session_class()
        if isinstance(data, dict) and all(isinstance(v, _SCALARS) for v in data.values()):
            if len(self._kept) >= MAX_KEPT:
                self._kept.clear()
            self._kept[key] = (signed.timestamp(), dict(data))
        return self.session_class(data)
