"""Authorization on the server: role checks for routes; object checks live in the services."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, current_app, redirect, request, session, url_for
from flask_login import current_user

log = logging.getLogger("kyffikus.authz")

F = TypeVar("F", bound=Callable[..., Any])


def staff_needs_second_factor() -> bool:
    """Whether staff and admins must pass TOTP before using staff pages (config or setting)."""
    if current_app.config.get("REQUIRE_STAFF_2FA"):
        return True
    from kyffikus.services.settings import get_setting

    return bool(get_setting("require_staff_2fa"))


def role_required(*roles: str) -> Callable[[F], F]:
    """Only users with one of the roles; anonymous users go to the login page, others get 403."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if current_user.role not in roles:
                log.info(
                    "refused role %s on %s %s", current_user.role, request.method, request.endpoint
                )
                abort(403)
            if (
                current_user.role in ("staff", "admin")
                and not session.get("mfa_ok")
                and (current_user.totp_enabled_at is not None or staff_needs_second_factor())
            ):
                return redirect(url_for("auth.second_factor", next=request.full_path))
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


family_required = role_required("family")
provider_required = role_required("provider")
staff_required = role_required("staff", "admin")
admin_required = role_required("admin")
