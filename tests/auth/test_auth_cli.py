"""`flask --app kyffikus users create`: hidden prompt or password file, policy, provider checks."""

from __future__ import annotations

import argon2
import pytest
from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models import User
from kyffikus.services.accounts import is_confirmed
from tests.auth.conftest import form_login
from tests.conftest import TEST_PASSWORD


def find(email: str) -> User | None:
    return db.session.scalars(select(User).where(User.email == email)).first()


def test_create_staff_with_prompted_password(runner, client) -> None:
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "Sachbearbeitung@Kyffhaeuser.example",
            "--role",
            "staff",
        ],
        input=f"{TEST_PASSWORD}\n{TEST_PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert "Konto angelegt" in result.output
    assert TEST_PASSWORD not in result.output  # the prompt hides the input
    user = find("sachbearbeitung@kyffhaeuser.example")
    assert user.role == "staff"
    assert is_confirmed(user)
    assert user.active
    assert argon2.extract_parameters(user.password_hash).type is argon2.Type.ID
    assert form_login(client, user.email).headers["Location"] == "/verwaltung/"


def test_prompt_asks_again_when_the_repetition_differs(runner) -> None:
    result = runner.invoke(
        args=["users", "create", "--email", "a@example.de", "--role", "admin"],
        input=f"{TEST_PASSWORD}\nanders-anders\n{TEST_PASSWORD}\n{TEST_PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert find("a@example.de").role == "admin"


def test_create_provider_user_from_a_password_file(runner, make_provider, tmp_path) -> None:
    provider = make_provider()
    secret = tmp_path / "pw"
    secret.write_text(TEST_PASSWORD + "\n", encoding="utf-8")
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "kasse@example.de",
            "--role",
            "provider",
            "--provider",
            provider.slug,
            "--password-file",
            str(secret),
        ],
    )
    assert result.exit_code == 0, result.output
    user = find("kasse@example.de")
    assert user.provider is provider


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "provider"], "--provider SLUG"),
        (["--role", "provider", "--provider", "gibt-es-nicht"], "Unbekannter Anbieter"),
        (["--role", "staff", "--provider", "irgendwas"], "nur zur Rolle provider"),
    ],
)
def test_provider_mistakes_are_refused_clearly(runner, tmp_path, args, message) -> None:
    secret = tmp_path / "pw"
    secret.write_text(TEST_PASSWORD, encoding="utf-8")
    result = runner.invoke(
        args=["users", "create", "--email", "x@example.de", *args, "--password-file", str(secret)]
    )
    assert result.exit_code == 1
    assert message in result.output
    assert find("x@example.de") is None


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("kurz@example.de", "zu-kurz", "mindestens 10 Zeichen"),
        ("haeufig@example.de", "passwort123", "zu verbreitet"),
        ("keine-adresse", TEST_PASSWORD, "E-Mail-Adresse ist ungültig"),
    ],
)
def test_policy_applies_to_the_cli(runner, tmp_path, email, password, message) -> None:
    secret = tmp_path / "pw"
    secret.write_text(password, encoding="utf-8")
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            email,
            "--role",
            "family",
            "--password-file",
            str(secret),
        ]
    )
    assert result.exit_code == 1
    assert message in result.output
    assert find(email) is None


def test_existing_address_is_refused(runner, make_user, tmp_path) -> None:
    user = make_user("family")
    db.session.commit()
    secret = tmp_path / "pw"
    secret.write_text(TEST_PASSWORD, encoding="utf-8")
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            user.email.upper(),
            "--role",
            "staff",
            "--password-file",
            str(secret),
        ]
    )
    assert result.exit_code == 1
    assert "schon ein Konto" in result.output
