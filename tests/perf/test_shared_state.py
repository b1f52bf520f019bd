"""Several gunicorn hosts behind one balancer: no worker keeps state another one needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from kyffikus import create_app
from kyffikus.extensions import db
from tests.conftest import login_as
from tests.conftest import test_config as base_config


def test_rate_limit_storage_url_selects_the_shared_store() -> None:
    app = create_app(
        {**base_config("sqlite://", 25), "RATELIMIT_STORAGE_URL": "redis://127.0.0.1:6379/3"}
    )
    assert app.config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/3"


def test_rate_limits_stay_in_memory_without_a_storage_url() -> None:
    app = create_app(base_config("sqlite://", 25))
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"


def test_a_session_from_one_host_works_on_another(
    app: Flask, make_user: Callable[..., Any]
) -> None:
    # Two app instances with the same secret key stand for two hosts behind the balancer.
    user = make_user("staff")
    first = login_as(app.test_client(), user)
    assert first.get("/verwaltung/").status_code == 200
    cookie = first.get_cookie("session")
    assert cookie is not None

    other_host = create_app(
        {**base_config("sqlite://", 25), "SECRET_KEY": app.config["SECRET_KEY"]}
    )
    second = other_host.test_client()
    second.set_cookie("session", cookie.value)
    try:
        with other_host.app_context():
            response = second.get("/verwaltung/")
    finally:
        with other_host.app_context():
            db.engine.dispose()
    # The other host knows the user from the signed cookie alone (and the shared database).
    assert response.status_code == 200
    anonymous = other_host.test_client().get("/verwaltung/")
    assert anonymous.status_code in (302, 303)
