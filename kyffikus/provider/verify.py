"""The QR code's address /v/<token>: a provider sees the full check, anyone else only valid or not."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template
from flask_login import current_user

from kyffikus.models.base import berlin_today
from kyffikus.provider.ratelimit import check_limits
from kyffikus.provider.views import render_check
from kyffikus.readonly import read_only
from kyffikus.services import checks
from kyffikus.web import no_store

bp = Blueprint("verify", __name__)


@bp.get("/v/<token>")
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
        result = checks.check_pass(token, current_user.provider_id, today, token_only=True)
        return render_check(result, token)
    result = checks.check_pass(token, None, today, token_only=True)
    return render_template("provider/verify_public.html", result=result, token=token)
