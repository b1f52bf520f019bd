"""Rate limits on checking passes (page, /v/<token>, API): per user and per address.

One budget is shared by every check route (scope "check"), so guessing numbers or tokens cannot be
spread over the page, the QR URL and the API. The limit string is CHECK_RATE_LIMIT, read per request.
"""

from __future__ import annotations

from flask import current_app, g
from flask_login import current_user

from kyffikus.extensions import limiter, remote_address


def _limit() -> str:
    return str(current_app.config["CHECK_RATE_LIMIT"])


def user_key() -> str:
    """The API token's user, else the logged-in user, else the address."""
    token = g.get("api_token")
    if token is not None:
        return f"user:{token.user_id}"
    if current_user and current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"anon:{remote_address()}"


def address_key() -> str:
    """The client's address (behind the proxy fix)."""
    return f"addr:{remote_address()}"


# A breach raises 429; kyffikus.web answers it with a localised message (JSON under /api/).
check_limit_user = limiter.shared_limit(_limit, scope="check-user", key_func=user_key)
check_limit_address = limiter.shared_limit(_limit, scope="check-address", key_func=address_key)
