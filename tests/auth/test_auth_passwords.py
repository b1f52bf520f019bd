"""Password change and reset by mailed link: single use, one hour, same answer, sessions end."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models import UserToken
from kyffikus.services import accounts
from kyffikus.services.passwords import verify_password
from kyffikus.services.tokens import TokenError, consume_token, issue_token
from tests.auth.conftest import (
    assert_refused_as_expired,
    form_login,
    is_logged_in,
    let_link_expire,
    mailed_link,
    without_csrf,
)
from tests.conftest import TEST_PASSWORD, Outbox, post_form

NEW_PASSWORD = "Kyffhäuser-Wald-und-Wiese-7"


def change(client, current: str, new: str, repeat: str | None = None):
    data = {
        "current_password": current,
        "password": new,
        "password_repeat": new if repeat is None else repeat,
    }
    return post_form(client, "/konto/passwort", data, token_from="/konto/")


def reset_link(outbox: Outbox, email: str, n: int = 1) -> str:
    return mailed_link(outbox, email, "/konto/passwort-neu/", n)


# ---- change ---------------------------------------------------------------------------------------


def test_password_change_ends_other_sessions_and_keeps_this_one(
    client, new_client, make_user, outbox
) -> None:
    user = make_user("family")
    laptop = new_client()
    assert form_login(client, user.email).status_code == 302
    assert form_login(laptop, user.email).status_code == 302
    before = user.session_version
    response = change(client, TEST_PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302
    assert user.session_version == before + 1
    assert verify_password(user.password_hash, NEW_PASSWORD)
    assert is_logged_in(client)
    assert not is_logged_in(laptop)
    notice = outbox.wait_for(user.email)[0]
    assert notice["Subject"] == "Ihr Passwort wurde geändert"
    # The new password works, the old one does not.
    assert form_login(new_client(), user.email, NEW_PASSWORD).status_code == 302
    assert form_login(new_client(), user.email, TEST_PASSWORD).status_code == 401


@pytest.mark.parametrize(
    ("current", "new", "repeat", "message"),
    [
        ("Falsches-Passwort-1", NEW_PASSWORD, None, "Das aktuelle Passwort ist falsch."),
        (TEST_PASSWORD, "kurz", None, "mindestens 10 Zeichen"),
        (TEST_PASSWORD, "qwertzuiop", None, "zu verbreitet"),
        (TEST_PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", "stimmen nicht überein"),
        (TEST_PASSWORD, TEST_PASSWORD, None, "muss sich vom bisherigen unterscheiden"),
    ],
)
def test_password_change_refusals(
    client, login, make_user, outbox, current, new, repeat, message
) -> None:
    user = make_user("family")
    db.session.commit()
    login(user)
    old_hash, version = user.password_hash, user.session_version
    response = change(client, current, new, repeat)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    db.session.refresh(user)
    assert user.password_hash == old_hash
    assert user.session_version == version
    assert is_logged_in(client)
    assert outbox.to(user.email) == []


# ---- reset -----------------------------------------------------------------------------------------


def test_forgot_password_answers_the_same_for_known_and_unknown_addresses(
    client, app, make_user, outbox
) -> None:
    user = make_user("family")
    known = post_form(
        client, "/konto/passwort-vergessen", {"email": user.email.upper()}, follow_redirects=True
    )
    other = app.test_client()
    unknown = post_form(
        other, "/konto/passwort-vergessen", {"email": "fremd@example.de"}, follow_redirects=True
    )
    assert known.status_code == unknown.status_code == 200
    assert without_csrf(known.get_data(as_text=True)) == without_csrf(
        unknown.get_data(as_text=True)
    )
    assert "Falls zu dieser Adresse ein Konto gehört" in known.get_data(as_text=True)
    assert reset_link(outbox, user.email)
    assert outbox.to("fremd@example.de") == []


def test_reset_link_sets_the_password_once_and_ends_every_session(
    client, new_client, make_user, outbox
) -> None:
    user = make_user("family")
    phone = new_client()
    assert form_login(phone, user.email).status_code == 302
    post_form(client, "/konto/passwort-vergessen", {"email": user.email})
    path = reset_link(outbox, user.email)
    assert client.get(path).status_code == 200
    response = post_form(client, path, {"password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/konto/anmelden"
    assert verify_password(user.password_hash, NEW_PASSWORD)
    assert not is_logged_in(phone)
    token = db.session.scalars(select(UserToken).where(UserToken.purpose == "reset")).one()
    assert token.used_at is not None
    # Used twice: refused, with its own message, and the password stays.
    again = post_form(
        client,
        path,
        {"password": "Noch-ein-neues-Passwort", "password_repeat": "Noch-ein-neues-Passwort"},
        token_from="/konto/anmelden",
    )
    assert again.status_code == 400
    assert "bereits verwendet" in again.get_data(as_text=True)
    assert verify_password(user.password_hash, NEW_PASSWORD)
    assert client.get(path).status_code == 400


def test_expired_reset_link_is_refused(client, make_user, outbox) -> None:
    user = make_user("family")
    post_form(client, "/konto/passwort-vergessen", {"email": user.email})
    path = reset_link(outbox, user.email)
    assert let_link_expire("reset") == timedelta(hours=1)
    assert_refused_as_expired(
        client, path, {"password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD}
    )
    db.session.refresh(user)
    assert verify_password(user.password_hash, TEST_PASSWORD)


def test_only_the_newest_reset_link_works(client, make_user, outbox) -> None:
    user = make_user("family")
    post_form(client, "/konto/passwort-vergessen", {"email": user.email})
    post_form(client, "/konto/passwort-vergessen", {"email": user.email})
    first, second = reset_link(outbox, user.email, 1), reset_link(outbox, user.email, 2)
    assert client.get(first).status_code == 400
    assert client.get(second).status_code == 200


def test_reset_refuses_a_weak_password_and_keeps_the_link(client, make_user, outbox) -> None:
    user = make_user("family")
    post_form(client, "/konto/passwort-vergessen", {"email": user.email})
    path = reset_link(outbox, user.email)
    db.session.commit()
    response = post_form(client, path, {"password": "123456789", "password_repeat": "123456789"})
    assert response.status_code == 422
    assert client.get(path).status_code == 200


def test_reset_link_text_and_validity_in_the_mail(client, make_user, outbox) -> None:
    user = make_user("family")
    post_form(client, "/konto/passwort-vergessen", {"email": user.email})
    body = Outbox.body(outbox.wait_for(user.email)[0])
    assert "60 Minuten" in body
    assert "http://localhost/konto/passwort-neu/" in body


def test_tokens_service_distinguishes_unknown_used_and_expired(app, make_user) -> None:
    user = make_user("family")
    raw = issue_token(user, "reset")
    with pytest.raises(TokenError) as wrong_purpose:
        consume_token(raw, "confirm")
    assert wrong_purpose.value.code == "token_unknown"
    assert consume_token(raw, "reset") is user
    with pytest.raises(TokenError) as used:
        consume_token(raw, "reset")
    assert used.value.code == "token_used"
    raw2 = issue_token(user, "reset")
    token = db.session.scalars(select(UserToken).where(UserToken.used_at.is_(None))).one()
    token.expires_at = token.created_at
    with pytest.raises(TokenError) as expired:
        consume_token(raw2, "reset")
    assert expired.value.code == "token_expired"
    stored = {t.token_hash for t in db.session.scalars(select(UserToken))}
    assert raw not in stored
    assert raw2 not in stored


def test_reset_for_a_deactivated_account_sends_nothing(client, make_user, outbox) -> None:
    user = make_user("family", active=False)
    response = post_form(client, "/konto/passwort-vergessen", {"email": user.email})
    assert response.status_code == 302
    assert outbox.to(user.email) == []


def test_reset_confirms_an_unconfirmed_address(app, make_user) -> None:
    user = make_user("family", confirmed=False)
    raw = issue_token(user, "reset")
    accounts.reset_password(raw, NEW_PASSWORD)
    assert accounts.is_confirmed(user)
