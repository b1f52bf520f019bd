"""Refuse input that no database column can hold: NUL characters in query, form or JSON values.

PostgreSQL's text columns cannot store U+0000 (SQLite can), so without this check a NUL typed or
pasted into any field reached the database and ended in a 500 on PostgreSQL only. One check at
the door answers 400 with a clear message instead, on both backends, before anything is written.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, request
from flask_babel import gettext as _

NUL = "\x00"
# Deep enough for every JSON body the API accepts; deeper nesting is not looked into.
MAX_DEPTH = 8


def _has_nul(value: Any, depth: int = 0) -> bool:
    """Whether a string, or any key or string inside a JSON value, holds a NUL character."""
    if isinstance(value, str):
        return NUL in value
    if depth >= MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v, depth + 1) for v in value)
    return False


def request_has_nul() -> bool:
    """Whether the current request's query, form or JSON values hold a NUL character."""
    for source in (request.args, request.form):
        for key, values in source.lists():
            if NUL in key or any(NUL in v for v in values):
                return True
    # The API reads its bodies with force=True (any content type), so the check does the same.
    if request.is_json or (request.path.startswith("/api/") and request.method != "GET"):
        return _has_nul(request.get_json(force=True, silent=True))
    return False


def init_app(app: Flask) -> None:
    """Answer 400 with a clear message to any request carrying a NUL character."""

    @app.before_request
    def _refuse_nul() -> None:
        if request_has_nul():
            abort(
                400,
                _(
                    "Ihre Eingabe enthält ein unsichtbares Steuerzeichen (Nullbyte), das wir nicht "
                    "speichern können. Bitte geben Sie den Text noch einmal ein."
                ),
            )
