"""The QR code's address /v/<token>: a provider sees the full check, anyone else only valid or not."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, render_template, request
from flask_login import current_user

from kyffikus import auth_session
from kyffikus.extensions import not_limited
from kyffikus.models.base import berlin_today
from kyffikus.provider.ratelimit import check_limits
from kyffikus.provider.views import render_check
from kyffikus.readonly import hot_sql, read_only
from kyffikus.services import checks
from kyffikus.web import no_store

bp = Blueprint("verify", __name__)

_PREFETCHED = "kyffikus_prefetched_check"


def _user_with_check(user_id: int) -> Any | None:
    """The session's user and the check of this address's token in one statement (a row of it).

    Called by the user loader before the view; the view takes the check's rows from g once the
    check budgets allowed the request. Nothing is queried for a token of the wrong shape.
    """
    token = (request.view_args or {}).get("token")
    parsed = checks.parse_code(token, token_only=True)
    if parsed.kind != "token":
        return None
    today = berlin_today()
    rows = checks.rows_with_session_user(parsed, user_id, today)
    if not rows:
        return None
    setattr(g, _PREFETCHED, (token, user_id, today, rows))
    return rows[0]


auth_session.USER_WITH["verify.verify"] = _user_with_check


def _checked(token: str, provider_id: int | None, today: Any) -> checks.CheckResult:
    prefetched = g.pop(_PREFETCHED, None)
    if prefetched is not None:
        token_, user_id, day, rows = prefetched
        # Only for the user it was made for (a session the loader refused, or one that expired
        # since, is anonymous now: the check runs again without a provider).
        if token_ == token and user_id == getattr(current_user, "id", None):
            return checks.result_from_rows(rows, provider_id, day)
    return checks.check_pass(token, provider_id, today, token_only=True)


@bp.get("/v/<token>")
@not_limited  # its budgets are counted by count_check, not by Flask-Limiter
@hot_sql
@check_limits
@read_only
def verify(token: str) -> Any:
    """Check the pass a QR code names; names and offers only for a logged-in provider."""
    no_store()
    today = berlin_today()
    if (
        current_user.is_authenticated
        and current_user.role == "provider"
        and current_user.provider_id is not None
    ):
        # The provider's id is enough for the check (no query for the provider itself).
        return render_check(_checked(token, current_user.provider_id, today), token)
    result = _checked(token, None, today)
    return render_template("provider/verify_public.html", result=result, token=token)
