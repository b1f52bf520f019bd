"""Refuse input that no database column can hold: NUL characters in query or form values.

PostgreSQL's text columns cannot store U+0000 (SQLite can), so a NUL typed or pasted into a staff,
family or provider form reached the database and ended in a 500 on PostgreSQL only. One check at
the door of those areas answers 400 with a clear message instead, on both backends, before
anything is written. The public pages, the sign-in forms, the pass check and the API validate
their fields themselves (a NUL there is a malformed address, code or search word, with the
field's own message), so they are left to do that.
"""

from __future__ import annotations

from flask import Flask, abort, request
from flask_babel import gettext as _

NUL = "\x00"
# The areas whose forms and searches go to the database as typed.
GUARDED_BLUEPRINTS = frozenset(
    {"family", "provider", "staff", "review", "staff_passes", "staff_stats", "staff_audit"}
)
# A typed or scanned pass code with a NUL is simply not a pass: the check says "not found".
UNGUARDED_ENDPOINTS = frozenset({"provider.check_result", "provider.redeem"})


def guarded() -> bool:
    """Whether the current request belongs to an area this check protects."""
    return request.blueprint in GUARDED_BLUEPRINTS and request.endpoint not in UNGUARDED_ENDPOINTS


def request_has_nul() -> bool:
    """Whether the current request's query or form values hold a NUL character."""
    for source in (request.args, request.form):
        for key, values in source.lists():
            if NUL in key or any(NUL in v for v in values):
                return True
    return False


def init_app(app: Flask) -> None:
    """Answer 400 with a clear message to a guarded request carrying a NUL character."""

    @app.before_request
    def _refuse_nul() -> None:
        if guarded() and request_has_nul():
            abort(
                400,
                _(
                    "Ihre Eingabe enthält ein unsichtbares Steuerzeichen (Nullbyte), das wir nicht "
                    "speichern können. Bitte geben Sie den Text noch einmal ein."
                ),
            )
