"""Helpers for the account tests: log in through the real form, read the session cookie."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import TEST_PASSWORD, csrf_token

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
