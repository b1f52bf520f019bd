"""Flask extensions: created here, bound to the app in create_app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from kyffikus.models.base import Base

db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate(compare_type=True, render_as_batch=True)
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)

F = TypeVar("F", bound=Callable[..., Any])
_UNLIMITED = "_kyffikus_not_limited"


def not_limited(view: F) -> F:
    """Flask-Limiter leaves this view alone: exempt, and its per-request hook not even run.

    For views with no Flask-Limiter limit of their own: the check routes (their budgets are counted
    in one round trip by kyffikus.provider.ratelimit.count_check) and the health probes. Exempt
    alone, Flask-Limiter still works out on every request that nothing applies.
    """
    limiter.exempt(view)
    setattr(view, _UNLIMITED, True)
    return view


def skip_limiter_for_unlimited_views(app: Flask) -> None:
    """Wrap Flask-Limiter's before_request hook so that it returns at once for not_limited views."""
    funcs = app.before_request_funcs.setdefault(None, [])
    for index, func in enumerate(funcs):
        if getattr(func, "__self__", None) is limiter:
            funcs[index] = _unless_not_limited(func)


def _unless_not_limited(check: Callable[[], Any]) -> Callable[[], Any]:
    def check_unless_not_limited() -> Any:
        view = current_app.view_functions.get(request.endpoint or "")
        if view is not None and getattr(view, _UNLIMITED, False):
            return None
        return check()

    return check_unless_not_limited


def remote_address() -> str:
    """The client address as the proxy-fixed request sees it."""
    return request.remote_addr or "unknown"
