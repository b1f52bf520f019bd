"""Session cookies verified once per worker (kyffikus.cookie_session) stay exactly as strict."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kyffikus import cookie_session
from tests.conftest import login_as

ACCOUNT = "/konto/"


@pytest.fixture
def family_client(app: Flask, client: FlaskClient, make_user: Callable[..., Any]) -> FlaskClient:
    login_as(client, make_user("family"))
    assert client.get(ACCOUNT).status_code == 200  # may move the session's last-seen time on
    value = _cookie(app, client)
    # This request verifies the cookie and the worker remembers it.
    assert client.get(ACCOUNT).status_code == 200
    assert _cookie(app, client) == value
    return client


def _cookie(app: Flask, client: FlaskClient) -> str:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    return cookie.value


def test_a_remembered_cookie_is_used_again(app: Flask, family_client: FlaskClient) -> None:
    for _ in range(3):
        assert family_client.get(ACCOUNT).status_code == 200


def test_a_remembered_cookie_expires_with_the_session_lifetime(
    app: Flask, family_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = time.time() + app.permanent_session_lifetime.total_seconds() + 5
    monkeypatch.setattr(cookie_session, "time", SimpleNamespace(time=lambda: later))
    response = family_client.get(ACCOUNT)
    assert response.status_code == 302
    assert "/konto/anmelden" in response.headers["Location"]


def test_a_cookie_dated_in_the_future_is_no_session(
    app: Flask, family_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = time.time() - 3600
    monkeypatch.setattr(cookie_session, "time", SimpleNamespace(time=lambda: earlier))
    assert family_client.get(ACCOUNT).status_code == 302


def test_a_tampered_cookie_is_no_session_after_the_real_one_was_remembered(
    app: Flask, family_client: FlaskClient
) -> None:
    value = _cookie(app, family_client)
    payload, stamp, signature = value.rsplit(".", 2)
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    family_client.set_cookie(app.config["SESSION_COOKIE_NAME"], f"{payload}.{stamp}.{flipped}")
    assert family_client.get(ACCOUNT).status_code == 302
    family_client.set_cookie(app.config["SESSION_COOKIE_NAME"], value)
    assert family_client.get(ACCOUNT).status_code == 200


def test_a_new_secret_key_ends_remembered_sessions_unless_kept_as_fallback(
    app: Flask, family_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, value = app.secret_key, _cookie(app, family_client)
    monkeypatch.setattr(app, "secret_key", "another-secret-" + "1" * 48)
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [])
    assert family_client.get(ACCOUNT).status_code == 302
    family_client.set_cookie(app.config["SESSION_COOKIE_NAME"], value)
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [old])
    assert family_client.get(ACCOUNT).status_code == 200


def test_each_request_gets_a_session_of_its_own(app: Flask, family_client: FlaskClient) -> None:
    name = app.config["SESSION_COOKIE_NAME"]
    headers = {"Cookie": f"{name}={_cookie(app, family_client)}"}
    interface = app.session_interface
    with app.test_request_context(ACCOUNT, headers=headers) as first:
        session = interface.open_session(app, first.request)
        assert session is not None
        assert session["_user_id"]
        session["_user_id"] = "somebody else"
        session["extra"] = "x"
    with app.test_request_context(ACCOUNT, headers=headers) as second:
        again = interface.open_session(app, second.request)
        assert again is not None
        assert again["_user_id"] != "somebody else"
        assert "extra" not in again
        assert not again.modified
