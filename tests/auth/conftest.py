"""Helpers for the account tests: log in through the real form, read the session cookie, follow
and expire mailed links."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models import UserToken
from tests.conftest import TEST_PASSWORD, Outbox, csrf_token, post_form

LOGIN_URL = "/konto/anmelden"


def form_login(
    client: FlaskClient,
    email: str,
    password: str = TEST_PASSWORD,
    *,
    next_url: str | None = None,
    addr: str | None = None,
) -> Any:
    """POST the login form (with a CSRF token from the page), optionally from another address."""
    url = LOGIN_URL + (f"?next={next_url}" if next_url else "")
    extra: dict[str, Any] = {"environ_base": {"REMOTE_ADDR": addr}} if addr else {}
    token = csrf_token(client, LOGIN_URL)
    return client.post(
        url, data={"email": email, "password": password, "csrf_token": token}, **extra
    )


def mailed_link(outbox: Outbox, email: str, path: str, n: int = 1) -> str:
    """The path of the link to `path` (e.g. "/konto/passwort-neu/") in the n-th mail to `email`."""
    mail = outbox.wait_for(email, count=n)[n - 1]
    return next(x for x in Outbox.links(mail) if path in x).removeprefix("http://localhost")


def let_link_expire(purpose: str) -> timedelta:
    """Move the unused link of this purpose past its end; answers the lifetime it was given."""
    token = db.session.scalars(
        select(UserToken).where(UserToken.purpose == purpose, UserToken.used_at.is_(None))
    ).one()
    lifetime = token.expires_at - token.created_at
    token.expires_at = token.created_at - timedelta(seconds=1)
    db.session.commit()
    return lifetime


def assert_refused_as_expired(client: FlaskClient, path: str, data: dict[str, str]) -> None:
    """An expired link: opening it and sending its form both answer 400 and say why."""
    for response in (client.get(path), post_form(client, path, data, token_from=LOGIN_URL)):
        assert response.status_code == 400
        assert "abgelaufen" in response.get_data(as_text=True)


def session_cookie(client: FlaskClient) -> str | None:
    """The value of the client's session cookie."""
    cookie = client.get_cookie("session")
    return cookie.value if cookie is not None else None


def without_csrf(html: str) -> str:
    """A page's text with CSRF tokens and CSP nonces blanked (they differ per session and request)."""
    html = re.sub(r'(name="csrf_token"[^>]*value=")[^"]+"', r'\1"', html)
    return re.sub(r'nonce="[^"]+"', 'nonce=""', html)


def is_logged_in(client: FlaskClient) -> bool:
    """Whether the client still holds a valid session (the account page answers 200)."""
    response = client.get("/konto/")
    return response.status_code == 200


@pytest.fixture
def new_client(app: Flask) -> Callable[[], FlaskClient]:
    """Another browser: a second, independent test client."""
    return app.test_client
