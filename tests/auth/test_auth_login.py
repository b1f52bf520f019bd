"""Login and logout: landing pages, generic failures, throttling, session renewal, ending sessions."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from kyffikus.extensions import db
from tests.auth.conftest import (
    form_login,
    is_logged_in,
    mailed_link,
    session_cookie,
    without_csrf,
)
from tests.conftest import TEST_PASSWORD, post_form

# Documentation addresses (RFC 5737): a guesser's and the owner's.
ADDR_A = "192.0.2.10"
ADDR_B = "198.51.100.20"
LOCKED = "Zu viele fehlgeschlagene Anmeldeversuche"
NEW_PASSWORD = "Neues-Passwort-nach-dem-Angriff"


@pytest.mark.parametrize(
    ("role", "landing"),
    [
        ("family", "/familie/"),
        ("provider", "/anbieter/pruefen"),
        ("staff", "/verwaltung/"),
        ("admin", "/verwaltung/"),
    ],
)
def test_login_lands_on_the_roles_home(client, make_user, make_provider, role, landing) -> None:
    user = make_user(role, provider=make_provider() if role == "provider" else None)
    response = form_login(client, user.email.upper())
    assert response.status_code == 302
    assert response.headers["Location"] == landing
    assert user.last_login_at is not None


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/konto/", "/konto/"),
        ("https://evil.example/", "/familie/"),
        ("//evil.example/x", "/familie/"),
        ("/\\evil.example", "/familie/"),
    ],
)
def test_next_is_followed_only_on_this_site(client, make_user, next_url, expected) -> None:
    user = make_user("family")
    response = form_login(client, user.email, next_url=next_url)
    assert response.status_code == 302
    assert response.headers["Location"] == expected


@pytest.mark.parametrize("case", ["wrong password", "unknown address", "no password yet"])
def test_failures_get_one_generic_message_and_are_logged_without_the_address(
    client, make_user, caplog, case
) -> None:
    user = make_user("family", email="familie.schmidt@example.de")
    email, password = user.email, "Falsches-Passwort-123"
    if case == "unknown address":
        email = "niemand.hier@example.de"
    elif case == "no password yet":
        user.password_hash = None
        db.session.flush()
        password = TEST_PASSWORD
    caplog.set_level(logging.INFO, logger="kyffikus")
    response = form_login(client, email, password)
    assert response.status_code == 401
    assert "E-Mail-Adresse oder Passwort ist falsch." in response.get_data(as_text=True)
    assert "login failed" in caplog.text
    assert "schmidt" not in caplog.text
    assert "niemand" not in caplog.text
    assert not is_logged_in(client)


def test_deactivated_user_is_refused(client, make_user) -> None:
    user = make_user("family")
    user.active = False
    db.session.flush()
    response = form_login(client, user.email)
    assert response.status_code == 403
    assert "deaktiviert" in response.get_data(as_text=True)
    assert not is_logged_in(client)


def test_empty_and_oversized_input_gets_a_message_not_an_error(client) -> None:
    response = form_login(client, "", "")
    assert response.status_code == 422
    assert "Bitte geben Sie Ihre E-Mail-Adresse an." in response.get_data(as_text=True)
    response = form_login(client, "a@example.de", "x" * 5000)
    assert response.status_code == 422


def test_login_without_csrf_token_is_refused(client, make_user) -> None:
    user = make_user("family")
    response = client.post("/konto/anmelden", data={"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 400
    assert not is_logged_in(client)


def test_login_renews_the_session(client, make_user) -> None:
    user = make_user("family")
    client.get("/konto/anmelden")
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    before = session_cookie(client)
    response = form_login(client, user.email)
    assert response.status_code == 302
    after = session_cookie(client)
    assert after
    assert after != before
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess["_user_id"] == user.get_id()
        assert sess["login_at"] > 0
        assert sess["mfa_ok"] is True


def test_login_is_throttled_per_address(client, app, make_user, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "3 per minute")
    user = make_user("family")
    db.session.commit()  # the user exists before the requests (a failed login rolls back)
    for n in range(3):
        assert (
            form_login(client, f"rate{n}@example.de", "falsch-falsch", addr="10.1.1.1").status_code
            == 401
        )
    # Even the right password is refused now, from this address only.
    response = form_login(client, user.email, addr="10.1.1.1")
    assert response.status_code == 429
    assert "Zu viele Anfragen" in response.get_data(as_text=True)
    assert form_login(client, user.email, addr="10.1.1.2").status_code == 302


def test_login_is_throttled_per_account(client, app, make_user, monkeypatch, caplog) -> None:
    """A guesser at one account from address A is stopped; the owner at address B still gets in."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setitem(app.config, "LOGIN_ACCOUNT_ADDRESS_RATE_LIMIT", "3 per minute")
    user = make_user("family")
    db.session.commit()
    for _n in range(3):
        assert form_login(client, user.email, "falsch-falsch", addr=ADDR_A).status_code == 401
    # From A even the right password is refused now, and writing the address differently does
    # not help.
    response = form_login(client, " " + user.email.upper(), addr=ADDR_A)
    assert response.status_code == 429
    assert LOCKED in response.get_data(as_text=True)
    assert not is_logged_in(client)
    owner = app.test_client()
    response = form_login(owner, user.email, addr=ADDR_B)
    assert response.status_code == 302
    assert is_logged_in(owner)
    # The refusal is logged, without the account's address.
    assert "login refused" in caplog.text
    assert user.email.split("@")[0] not in caplog.text


def test_with_the_default_limits_a_guesser_is_stopped_and_the_owner_gets_in(app, make_user) -> None:
    assert app.config["LOGIN_RATE_LIMIT"] == "10 per minute;50 per hour"
    assert app.config["LOGIN_ACCOUNT_ADDRESS_RATE_LIMIT"] == "5 per minute;10 per hour"
    assert app.config["LOGIN_ACCOUNT_RATE_LIMIT"] == "50 per hour;300 per day"
    user = make_user("family")
    db.session.commit()
    guesser = app.test_client()
    answers = [
        form_login(guesser, user.email, f"Rate-mal-{n:02d}", addr=ADDR_A).status_code
        for n in range(20)
    ]
    assert answers == [401] * 5 + [429] * 15
    assert form_login(guesser, user.email, addr=ADDR_A).status_code == 429
    assert form_login(app.test_client(), user.email, addr=ADDR_B).status_code == 302


def test_guessing_from_many_addresses_locks_the_account_until_the_owner_resets_the_password(
    app, make_user, monkeypatch, outbox
) -> None:
    monkeypatch.setitem(app.config, "LOGIN_ACCOUNT_RATE_LIMIT", "4 per hour")
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "3 per minute")
    user = make_user("family")
    db.session.commit()
    answers = [
        form_login(
            app.test_client(), user.email, "falsch-falsch", addr=f"203.0.113.{n}"
        ).status_code
        for n in range(1, 7)
    ]
    assert answers == [401] * 4 + [429] * 2
    # Now the right password is refused from everywhere too (else the limit would tell a guesser
    # which guess was right); the page shows the owner the way back in.
    owner = app.test_client()
    owner.environ_base["REMOTE_ADDR"] = ADDR_B
    for _n in range(4):  # more than the address's budget: refusals do not count as failures
        refused = form_login(owner, user.email)
        assert refused.status_code == 429
    page = refused.get_data(as_text=True)
    assert LOCKED in page
    assert "Passwort vergessen?" in page
    # The way back in: the password-reset mail.
    post_form(owner, "/konto/passwort-vergessen", {"email": user.email})
    link = mailed_link(outbox, user.email, "/konto/passwort-neu/")
    new = {"password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD}
    assert post_form(owner, link, new).status_code == 302
    assert form_login(owner, user.email, NEW_PASSWORD).status_code == 302
    assert is_logged_in(owner)


def test_an_unknown_address_is_throttled_like_a_known_one(app, make_user, monkeypatch) -> None:
    """No account enumeration: the same answers, in the same order, with the same page."""
    monkeypatch.setitem(app.config, "LOGIN_ACCOUNT_ADDRESS_RATE_LIMIT", "2 per minute")
    monkeypatch.setitem(app.config, "LOGIN_ACCOUNT_RATE_LIMIT", "3 per hour")
    user = make_user("family", email="familie.krause@example.de")
    db.session.commit()

    def attempts(email: str) -> tuple[list[int], str]:
        answers = []
        for addr in (ADDR_A, ADDR_A, ADDR_A, ADDR_B, "203.0.113.99"):
            response = form_login(app.test_client(), email, "falsch-falsch", addr=addr)
            answers.append(response.status_code)
        return answers, without_csrf(response.get_data(as_text=True)).replace(email, "EMAIL")

    known, unknown = attempts(user.email), attempts("niemand.hier@example.de")
    assert known == unknown
    assert known[0] == [401, 401, 429, 401, 429]


def test_successful_logins_do_not_use_up_the_limit(client, app, make_user, monkeypatch) -> None:
    for setting in (
        "LOGIN_RATE_LIMIT",
        "LOGIN_ACCOUNT_ADDRESS_RATE_LIMIT",
        "LOGIN_ACCOUNT_RATE_LIMIT",
    ):
        monkeypatch.setitem(app.config, setting, "2 per minute")
    user = make_user("family")
    for _n in range(4):
        assert form_login(app.test_client(), user.email, addr=ADDR_A).status_code == 302


def test_logout_is_post_only_and_needs_csrf(client, login, make_user) -> None:
    login(make_user("family"))
    assert client.get("/konto/abmelden").status_code == 405
    assert client.post("/konto/abmelden").status_code == 400
    assert is_logged_in(client)


def test_logout_ends_every_session_of_the_user(client, new_client, make_user) -> None:
    user = make_user("family")
    phone = new_client()
    assert form_login(client, user.email).status_code == 302
    assert form_login(phone, user.email).status_code == 302
    assert is_logged_in(client)
    assert is_logged_in(phone)
    response = post_form(client, "/konto/abmelden", {}, token_from="/konto/")
    assert response.status_code == 302
    assert not is_logged_in(client)
    assert not is_logged_in(phone)
    # The old cookie of the phone stays useless even if it is sent again.
    assert phone.get("/konto/").status_code == 302


def test_anonymous_user_is_sent_to_login_with_next(client) -> None:
    response = client.get("/konto/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/konto/anmelden?next=/konto/")


@pytest.mark.parametrize(
    ("role", "idle", "absolute", "still_in"),
    [
        ("staff", timedelta(hours=1, minutes=59), timedelta(hours=11), True),
        ("staff", timedelta(hours=2, minutes=1), timedelta(hours=3), False),
        ("staff", timedelta(minutes=5), timedelta(hours=12, minutes=1), False),
        ("provider", timedelta(hours=2, minutes=1), timedelta(hours=3), False),
        ("provider", timedelta(minutes=5), timedelta(hours=12, minutes=1), False),
        ("family", timedelta(hours=5), timedelta(days=2), True),
        ("family", timedelta(days=1), timedelta(days=31), False),
    ],
)
def test_session_idle_and_absolute_limits(
    client, login, make_user, make_provider, role, idle, absolute, still_in
) -> None:
    user = make_user(role, provider=make_provider() if role == "provider" else None)
    login(user)
    now = datetime.now(UTC).timestamp()
    with client.session_transaction() as sess:
        sess["login_at"] = now - absolute.total_seconds()
        sess["seen_at"] = now - idle.total_seconds()
    assert is_logged_in(client) is still_in
    if not still_in:
        with client.session_transaction() as sess:
            assert "_user_id" not in sess


def test_session_cookie_flags(client, make_user) -> None:
    user = make_user("family")
    response = form_login(client, user.email)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_logged_in_pages_are_not_cached(client, login, make_user) -> None:
    login(make_user("family"))
    response = client.get("/konto/")
    assert response.headers["Cache-Control"] == "no-store"


def test_login_page_redirects_a_logged_in_user(client, login, make_user) -> None:
    login(make_user("family"))
    response = client.get("/konto/anmelden")
    assert response.status_code == 302
    assert response.headers["Location"] == "/familie/"


@pytest.mark.parametrize(
    "junk",
    ["a\x00@example.de", "\x00", "x" * 10_000, "Ŝimon@例え.jp", "' OR 1=1 --", "\u202e@example.de"],
)
@pytest.mark.parametrize(
    "url", ["/konto/anmelden", "/konto/passwort-vergessen", "/konto/bestaetigung-anfordern"]
)
def test_junk_addresses_get_an_answer_not_an_error(client, junk, url) -> None:
    data = {"email": junk, "password": "irgendwas-langes"}
    response = post_form(client, url, data)
    assert response.status_code in (302, 401, 422)
