"""Registration: password policy, argon2id, no account enumeration, confirmation by mailed link."""

from __future__ import annotations

import argon2
import pytest
from sqlalchemy import func, select

from kyffikus.extensions import db
from kyffikus.models import User, UserToken
from kyffikus.services.accounts import is_confirmed
from tests.auth.conftest import (
    assert_refused_as_expired,
    let_link_expire,
    mailed_link,
    without_csrf,
)
from tests.conftest import TEST_PASSWORD, Outbox, post_form

REGISTER = "/konto/registrieren"


def register(client, email: str, password: str = TEST_PASSWORD, repeat: str | None = None, **kw):
    data = {
        "email": email,
        "password": password,
        "password_repeat": password if repeat is None else repeat,
    }
    return post_form(client, REGISTER, data, **kw)


def user_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def test_register_stores_an_argon2id_hash_with_strong_parameters(client, outbox: Outbox) -> None:
    response = register(client, "anna@example.de")
    assert response.status_code == 302
    user = db.session.scalars(select(User).where(User.email == "anna@example.de")).one()
    params = argon2.extract_parameters(user.password_hash)
    assert params.type is argon2.Type.ID
    assert params.memory_cost >= 19456
    assert params.time_cost >= 2
    assert TEST_PASSWORD not in user.password_hash
    assert user.role == "family"
    assert not is_confirmed(user)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("neun-zei9", "mindestens 10 Zeichen"),
        ("passwort123", "zu verbreitet"),
        ("1234567890", "zu verbreitet"),
        ("x" * 257, "höchstens 256 Zeichen"),
    ],
)
def test_weak_passwords_are_refused_and_nothing_is_written(
    client, outbox: Outbox, password, message
) -> None:
    before = user_count()
    response = register(client, "weak@example.de", password)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert user_count() == before
    assert outbox.to("weak@example.de") == []


def test_ten_characters_without_any_composition_rule_are_enough(client, outbox: Outbox) -> None:
    response = register(client, "zehn@example.de", "kyffhaeuse")
    assert response.status_code == 302
    assert db.session.scalars(select(User).where(User.email == "zehn@example.de")).one()


def test_different_repeated_password_is_refused(client, outbox: Outbox) -> None:
    response = register(client, "tippfehler@example.de", TEST_PASSWORD, repeat=TEST_PASSWORD + "x")
    assert response.status_code == 422
    assert "stimmen nicht überein" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("  Anna.Müller-Lüdenscheidt@Example.DE ", "anna.müller-lüdenscheidt@example.de"),
        (
            "mueller-luedenscheidt+pass@bad-frankenhausen.de",
            "mueller-luedenscheidt+pass@bad-frankenhausen.de",
        ),
        ("Ŝimon@Kyffhäuser.de", "ŝimon@kyffhäuser.de"),
    ],
)
def test_real_world_addresses_are_accepted_normalised_and_mailed(
    client, outbox: Outbox, typed, stored
) -> None:
    response = register(client, typed)
    assert response.status_code == 302
    assert db.session.scalars(select(User).where(User.email == stored)).one()
    outbox.wait_for(stored)


@pytest.mark.parametrize(
    "typed",
    [
        "anna",
        "anna@",
        "@example.de",
        "anna@@example.de",
        "anna@example",
        "anna\x00@example.de",
        "a" * 300 + "@x.de",
    ],
)
def test_invalid_addresses_are_refused(client, outbox: Outbox, typed) -> None:
    before = user_count()
    response = register(client, typed)
    assert response.status_code == 422
    assert "E-Mail-Adresse" in response.get_data(as_text=True)
    assert user_count() == before


def test_registered_and_unregistered_addresses_get_the_same_answer(
    client, app, make_user, outbox: Outbox
) -> None:
    make_user("family", email="bekannt@example.de")
    known = register(client, "Bekannt@Example.de")
    other = app.test_client()
    unknown = register(other, "unbekannt@example.de")
    assert known.status_code == unknown.status_code == 302
    assert known.headers["Location"] == unknown.headers["Location"]
    known_page = client.get(known.headers["Location"]).get_data(as_text=True)
    unknown_page = other.get(unknown.headers["Location"]).get_data(as_text=True)
    assert "Bitte bestätigen Sie Ihre E-Mail-Adresse" in known_page
    assert without_csrf(known_page) == without_csrf(unknown_page)
    # The difference is only in the mail the address receives.
    already = outbox.wait_for("bekannt@example.de")[0]
    assert "schon ein Konto" in Outbox.body(already)
    confirm = outbox.wait_for("unbekannt@example.de")[0]
    assert "/konto/bestaetigen/" in Outbox.body(confirm)
    # Nothing was written for the known address.
    assert (
        db.session.scalar(
            select(func.count()).select_from(User).where(User.email == "bekannt@example.de")
        )
        == 1
    )


def test_confirmation_link_from_the_mail_confirms_once(client, outbox: Outbox) -> None:
    register(client, "bestaetigen@example.de")
    mail = outbox.wait_for("bestaetigen@example.de")[0]
    (link,) = [x for x in Outbox.links(mail) if "/konto/bestaetigen/" in x]
    path = link.removeprefix("http://localhost")
    # Opening the link changes nothing (mail scanners open links too); the button does.
    page = client.get(path)
    assert page.status_code == 200
    user = db.session.scalars(select(User).where(User.email == "bestaetigen@example.de")).one()
    assert not is_confirmed(user)
    response = post_form(client, path, {})
    assert response.status_code == 302
    assert is_confirmed(user)
    token = db.session.scalars(select(UserToken).where(UserToken.user_id == user.id)).one()
    assert token.used_at is not None
    assert len(token.token_hash) == 64
    assert path.rsplit("/", 1)[1] != token.token_hash
    again = client.get(path)
    assert again.status_code == 400
    assert "bereits verwendet" in again.get_data(as_text=True)


def test_expired_confirmation_link_is_refused(client, outbox: Outbox) -> None:
    register(client, "spaet@example.de")
    path = mailed_link(outbox, "spaet@example.de", "/konto/bestaetigen/")
    let_link_expire("confirm")
    assert_refused_as_expired(client, path, {})
    user = db.session.scalars(select(User).where(User.email == "spaet@example.de")).one()
    assert not is_confirmed(user)


@pytest.mark.parametrize("token", ["nicht-echt", "A" * 43, "x" * 5000])
def test_unknown_confirmation_links_are_refused(client, token) -> None:
    response = client.get(f"/konto/bestaetigen/{token}")
    assert response.status_code == 400
    assert "ungültig" in response.get_data(as_text=True)


def test_resend_confirmation_sends_a_new_link_and_the_old_one_dies(client, outbox: Outbox) -> None:
    register(client, "nochmal@example.de")
    first = outbox.wait_for("nochmal@example.de")[0]
    old_path = next(x for x in Outbox.links(first) if "/bestaetigen/" in x).removeprefix(
        "http://localhost"
    )
    response = post_form(client, "/konto/bestaetigung-anfordern", {"email": "nochmal@example.de"})
    assert response.status_code == 302
    second = outbox.wait_for("nochmal@example.de", count=2)[1]
    new_path = next(x for x in Outbox.links(second) if "/bestaetigen/" in x).removeprefix(
        "http://localhost"
    )
    assert new_path != old_path
    assert client.get(old_path).status_code == 400
    assert client.get(new_path).status_code == 200


def test_resend_confirmation_answers_the_same_for_unknown_addresses(
    client, app, outbox: Outbox
) -> None:
    a = post_form(
        client,
        "/konto/bestaetigung-anfordern",
        {"email": "gibtsnicht@example.de"},
        follow_redirects=True,
    )
    other = app.test_client()
    register(other, "gibtes@example.de")
    b = post_form(
        other,
        "/konto/bestaetigung-anfordern",
        {"email": "gibtes@example.de"},
        follow_redirects=True,
    )
    assert a.status_code == b.status_code == 200
    assert without_csrf(a.get_data(as_text=True)) == without_csrf(b.get_data(as_text=True))
    assert outbox.to("gibtsnicht@example.de") == []


def test_logged_in_family_can_ask_for_a_new_link_from_the_account_page(
    client, login, make_user, outbox
) -> None:
    user = make_user("family", confirmed=False)
    login(user)
    page = client.get("/konto/")
    assert "noch nicht bestätigt" in page.get_data(as_text=True)
    response = post_form(client, "/konto/bestaetigung-senden", {}, token_from="/konto/")
    assert response.status_code == 302
    assert "/konto/bestaetigen/" in Outbox.body(outbox.wait_for(user.email)[0])


def test_mail_server_down_gives_a_clear_message_and_writes_nothing(
    client, app, monkeypatch, caplog
) -> None:
    from tests.conftest import free_port

    monkeypatch.setitem(app.config, "MAIL_PORT", free_port())
    before = user_count()
    response = register(client, "offline@example.de")
    assert response.status_code == 503
    assert "konnte gerade nicht versendet werden" in response.get_data(as_text=True)
    assert user_count() == before
    assert "offline@example.de" not in caplog.text


def test_registration_is_throttled_per_address(client, app, monkeypatch, outbox: Outbox) -> None:
    monkeypatch.setitem(app.config, "MAIL_RATE_LIMIT", "2 per minute")
    assert register(client, "eins@example.de").status_code == 302
    assert register(client, "zwei@example.de").status_code == 302
    response = register(client, "drei@example.de")
    assert response.status_code == 429
    assert "Zu viele Anfragen" in response.get_data(as_text=True)
