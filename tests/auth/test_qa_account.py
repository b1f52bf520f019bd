"""QA: every signed-in user finds the account page; invitations expire; error pages look like the site."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kyffikus.extensions import db
from kyffikus.services.accounts import invite_user
from tests.auth.conftest import assert_refused_as_expired, let_link_expire, mailed_link
from tests.conftest import Outbox

NEW_PASSWORD = "Neues-Passwort-fuer-die-Kasse"


@pytest.mark.parametrize("role", ["family", "provider", "staff", "admin"])
def test_every_role_finds_its_account_page_in_the_menu(
    client: FlaskClient, make_user: Any, make_provider: Any, login: Any, role: str
) -> None:
    login(make_user(role, provider=make_provider() if role == "provider" else None))
    landing = client.get("/", follow_redirects=True).get_data(as_text=True)

    assert '<a href="/konto/">Mein Konto</a>' in landing
    account = client.get("/konto/").get_data(as_text=True)
    assert 'href="/konto/" aria-current="page"' in account
    assert "Passwort ändern" in account


def test_providers_find_their_provider_account_in_the_menu(
    client: FlaskClient, make_user: Any, make_provider: Any, login: Any
) -> None:
    login(make_user("provider", provider=make_provider(name="Kyffhäuser-Therme")))
    check = client.get("/anbieter/pruefen").get_data(as_text=True)

    assert '<a href="/anbieter/konto">Anbieterkonto</a>' in check
    account = client.get("/anbieter/konto").get_data(as_text=True)
    assert 'href="/anbieter/konto" aria-current="page"' in account
    assert "Kyffhäuser-Therme" in account


def test_anonymous_visitors_see_no_account_link(client: FlaskClient) -> None:
    assert 'href="/konto/"' not in client.get("/").get_data(as_text=True)


def test_an_expired_invitation_is_refused_and_sets_no_password(
    client: FlaskClient, make_user: Any, make_provider: Any, outbox: Outbox
) -> None:
    user = invite_user("kasse@therme.example", "provider", make_provider(), by=make_user("staff"))
    db.session.commit()
    path = mailed_link(outbox, "kasse@therme.example", "/konto/einladung/")
    assert let_link_expire("invite") == timedelta(days=7)

    assert_refused_as_expired(
        client, path, {"password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD}
    )
    db.session.refresh(user)
    assert user.password_hash is None


def test_403_page_is_german_in_the_site_layout(
    client: FlaskClient, make_user: Any, login: Any
) -> None:
    login(make_user("family"))
    response = client.get("/verwaltung/")
    html = response.get_data(as_text=True)

    assert response.status_code == 403
    assert '<html lang="de">' in html
    assert "Sie haben keinen Zugriff auf diese Seite." in html
    assert 'class="site-header"' in html
    assert 'href="/datenschutz"' in html


@pytest.fixture
def broken_imprint(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """The imprint page and the offer API raise an unexpected error."""

    def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("geheimes Detail aus dem Stacktrace")

    monkeypatch.setitem(app.view_functions, "public.imprint", boom)
    monkeypatch.setitem(app.view_functions, "api.list_offers", boom)


def test_500_page_is_german_in_the_site_layout_without_details(
    client: FlaskClient, broken_imprint: None
) -> None:
    response = client.get("/impressum")
    html = response.get_data(as_text=True)

    assert response.status_code == 500
    assert '<html lang="de">' in html
    assert "Ein interner Fehler ist aufgetreten." in html
    assert 'class="site-header"' in html
    assert "geheimes Detail" not in html
    assert "Traceback" not in html


def test_500_in_english_for_english_visitors(client: FlaskClient, broken_imprint: None) -> None:
    response = client.get("/impressum", headers={"Accept-Language": "en"})

    assert response.status_code == 500
    assert '<html lang="en">' in response.get_data(as_text=True)


def test_500_under_the_api_is_json(client: FlaskClient, broken_imprint: None) -> None:
    response = client.get("/api/v1/offers")

    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "server_error"
    assert "geheimes Detail" not in response.get_data(as_text=True)
