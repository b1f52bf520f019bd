"""QA: `make run` shows the demo logins every time and prints mail; odd input in the household form."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from kyffikus.cli import DEMO_ACCOUNTS, DEMO_PASSWORD
from kyffikus.extensions import db
from kyffikus.models import Adult, Household, User
from kyffikus.services.mail import send_mail
from tests.conftest import post_form
from tests.family.family_helpers import household_form


def test_bootstrap_shows_the_demo_logins_again_on_a_second_run(runner: Any) -> None:
    first = runner.invoke(args=["bootstrap"])
    again = runner.invoke(args=["bootstrap"])

    assert first.exit_code == again.exit_code == 0, again.output
    assert DEMO_PASSWORD in again.output
    for email, _role, _label in DEMO_ACCOUNTS:
        assert email in again.output
    assert db.session.scalar(select(func.count()).select_from(User)) == len(DEMO_ACCOUNTS)


def test_bootstrap_names_no_logins_when_there_are_no_demo_accounts(
    runner: Any, make_user: Any
) -> None:
    make_user("staff", email="echte.person@kyffhaeuser.example")
    result = runner.invoke(args=["bootstrap"])

    assert result.exit_code == 0, result.output
    assert DEMO_PASSWORD not in result.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_console_mail_prints_the_link_so_a_newcomer_can_follow_it(
    app: Flask, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(app.config, "MAIL_BACKEND", "console")
    with app.test_request_context():
        send_mail(
            "anna@example.de",
            "Bitte bestätigen Sie Ihre E-Mail-Adresse",
            "confirm",
            link="http://127.0.0.1:5000/konto/bestaetigen/abc",
            hours=24,
            user=None,
        )

    out = capsys.readouterr().out
    assert "E-Mail an anna@example.de" in out
    assert "Bitte bestätigen Sie Ihre E-Mail-Adresse" in out
    assert "http://127.0.0.1:5000/konto/bestaetigen/abc" in out


@pytest.fixture
def family(localities: None, make_user: Any, login: Any) -> Any:
    """A logged-in family without a household yet."""
    user = make_user("family")
    db.session.commit()
    login(user)
    return user


def _written() -> tuple[int, int]:
    return (
        db.session.scalar(select(func.count()).select_from(Household)) or 0,
        db.session.scalar(select(func.count()).select_from(Adult)) or 0,
    )


@pytest.mark.parametrize("locality", ["²", "a²", "¹²³", "9" * 5000])
def test_locality_values_that_only_look_like_numbers(
    client: Any, family: Any, locality: str
) -> None:
    response = post_form(client, "/familie/haushalt", household_form(locality=locality))

    assert response.status_code == 422
    assert "Bitte wählen Sie Ihren Wohnort aus der Liste." in response.get_data(as_text=True)
    assert _written() == (0, 0)


@pytest.mark.parametrize(
    ("field", "value"),
    [("street", "Markt\x008"), ("adults-0-first_name", "An\x00na"), ("phone", "\x00")],
)
def test_nul_characters_in_the_household_form(
    client: Any, family: Any, field: str, value: str
) -> None:
    data = household_form()
    data[field] = value
    response = post_form(client, "/familie/haushalt", data)

    assert response.status_code == 400
    assert "Steuerzeichen" in response.get_data(as_text=True)
    assert _written() == (0, 0)
