"""Sessions and sign-in: where each SECURITY.md item is proven, plus what the account tests leave open.

The account tests (tests/auth/, by the sign-in helper) prove most items; COVERAGE below names
them, and a test here fails when one of them disappears. The tests added here walk the real clock
(idle limit sliding, absolute limit not), require the second factor on every staff route, and
read argon2id parameters from hashes stored by each way a password is set.
"""

from __future__ import annotations

import ast
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import argon2
import pytest
from flask import Flask
from sqlalchemy import select

from kyffikus import auth_session
from kyffikus.extensions import db
from kyffikus.models import User
from kyffikus.services.settings import set_setting
from tests.auth.conftest import form_login
from tests.conftest import TEST_PASSWORD, login_as, post_form
from tests.security.conftest import World, csrf_for, rolled_back, spy_writes
from tests.security.figures import record_figure
from tests.security.test_authz_matrix import MATRIX, OK, REACH, ROLES, routes, url_values

TESTS = Path(__file__).resolve().parents[1]

# SECURITY.md item -> the tests that prove it ("file::function").
COVERAGE: dict[str, list[str]] = {
    "session renewed at login (no fixation)": [
        "auth/test_auth_login.py::test_login_renews_the_session",
    ],
    "logout ends every session of the user": [
        "auth/test_auth_login.py::test_logout_ends_every_session_of_the_user",
    ],
    "password change and reset end every session": [
        "auth/test_auth_passwords.py::test_password_change_ends_other_sessions_and_keeps_this_one",
        "auth/test_auth_passwords.py::test_reset_link_sets_the_password_once_and_ends_every_session",
    ],
    "deactivation ends every session": [
        "auth/test_auth_admin.py::test_deactivation_ends_sessions_at_once_and_is_audited",
        "staff/test_users_admin.py::test_deactivated_user_is_logged_out_at_once",
        "provider/test_api_checks.py::test_revoked_token_and_deactivated_user_are_refused",
    ],
    "staff and providers: 2 h idle, 12 h absolute": [
        "auth/test_auth_login.py::test_session_idle_and_absolute_limits",
        "security/test_sessions.py::test_idle_limit_slides_and_absolute_limit_holds",
    ],
    "cookies HttpOnly, SameSite=Lax, Secure in production": [
        "auth/test_auth_login.py::test_session_cookie_flags",
        "security/test_headers.py::test_session_cookie_flags_in_production",
    ],
    "two-factor sign-in (TOTP) with one-time recovery codes": [
        "auth/test_auth_twofactor.py::test_a_totp_code_is_accepted_only_once",
        "auth/test_auth_twofactor.py::test_a_recovery_code_works_once",
    ],
    "two-factor sign-in required by a setting": [
        "auth/test_auth_twofactor.py::test_when_required_staff_without_totp_are_sent_to_setup",
        "staff/test_users_admin.py::test_require_staff_2fa_applies_at_once",
        "security/test_sessions.py::test_required_second_factor_guards_every_staff_route",
        "security/test_sessions.py::test_second_factor_is_required_in_production_by_default",
    ],
    "login throttled per account and per address": [
        "auth/test_auth_login.py::test_login_is_throttled_per_address",
        "auth/test_auth_login.py::test_login_is_throttled_per_account",
        "auth/test_auth_login.py::test_with_the_default_limits_a_guesser_is_stopped_and_the_owner_gets_in",
        "auth/test_auth_login.py::test_guessing_from_many_addresses_locks_the_account_until_the_owner_resets_the_password",
        "auth/test_auth_login.py::test_an_unknown_address_is_throttled_like_a_known_one",
        "auth/test_auth_twofactor.py::test_code_entry_is_throttled",
        "security/test_sessions.py::test_password_guessing_is_cut_off_with_the_production_limits",
    ],
    "argon2id parameters asserted": [
        "auth/test_auth_registration.py::test_register_stores_an_argon2id_hash_with_strong_parameters",
        "security/test_sessions.py::test_every_way_to_set_a_password_stores_strong_argon2id",
    ],
    "reset and confirmation links single use, reset expires in 1 h, no enumeration": [
        "auth/test_auth_passwords.py::test_expired_reset_link_is_refused",
        "auth/test_auth_passwords.py::test_forgot_password_answers_the_same_for_known_and_unknown_addresses",
        "auth/test_auth_registration.py::test_confirmation_link_from_the_mail_confirms_once",
        "auth/test_auth_registration.py::test_registered_and_unregistered_addresses_get_the_same_answer",
    ],
}


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_every_session_requirement_is_proven_somewhere() -> None:
    """Each item names tests that exist; deleting one of them fails here."""
    missing = []
    for item, refs in COVERAGE.items():
        assert refs, item
        for ref in refs:
            file, function = ref.split("::")
            path = TESTS / file
            if not path.exists() or function not in _functions(path):
                missing.append(f"{item}: {ref}")
    assert missing == []


# ---- the clock ------------------------------------------------------------------------------------


def _at(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    monkeypatch.setattr(auth_session, "_now", lambda: moment)


def _logged_in(client: Any) -> bool:
    return client.get("/konto/").status_code == 200


@pytest.mark.parametrize("role", ["staff", "provider"])
def test_idle_limit_slides_and_absolute_limit_holds(
    client: Any, make_user: Any, make_provider: Any, monkeypatch: pytest.MonkeyPatch, role: str
) -> None:
    """Active all day: still in after 11 h 50 min; out at 12 h 1 min although active 1 h before."""
    user = make_user(role, provider=make_provider() if role == "provider" else None)
    db.session.commit()
    start = datetime.now(UTC)
    _at(monkeypatch, start)
    assert form_login(client, user.email).status_code == 302
    for step in range(1, 7):  # a page every 1 h 58 min: never idle for 2 h
        _at(monkeypatch, start + step * timedelta(hours=1, minutes=58))
        assert _logged_in(client), f"logged out after {step} active steps"
    _at(monkeypatch, start + timedelta(hours=12, minutes=1))
    assert not _logged_in(client)


@pytest.mark.parametrize(("role", "idle"), [("staff", 121), ("provider", 121), ("family", 121)])
def test_idle_limit_after_a_real_login(
    client: Any,
    make_user: Any,
    make_provider: Any,
    monkeypatch: pytest.MonkeyPatch,
    role: str,
    idle: int,
) -> None:
    """2 h 1 min without a request ends a staff or provider session; a family's stays."""
    user = make_user(role, provider=make_provider() if role == "provider" else None)
    db.session.commit()
    start = datetime.now(UTC)
    _at(monkeypatch, start)
    assert form_login(client, user.email).status_code == 302
    _at(monkeypatch, start + timedelta(minutes=idle))
    assert _logged_in(client) is (role == "family")


# ---- second factor --------------------------------------------------------------------------------


def test_required_second_factor_guards_every_staff_route(app: Flask, world: World) -> None:
    """With the setting on, a staff session without the second factor gets no staff route at all."""
    set_setting("require_staff_2fa", True)
    db.session.commit()
    values = url_values(world)
    token = csrf_for(app)
    staff_column = ROLES.index("staff")
    failures: list[str] = []
    tried = 0
    for (rule_text, method), rule in sorted(routes(app).items()):
        if MATRIX[(rule_text, method)][staff_column] not in (OK, REACH):
            continue
        if not rule_text.startswith("/verwaltung/"):
            continue
        args = {name: values[name](rule_text) for name in rule.arguments}
        path = rule.build(args, append_unknown=False)[1]  # type: ignore[index]
        for role in ("staff", "admin"):
            with rolled_back():
                client = app.test_client()
                user = db.session.get(User, world.user_ids[role])
                login_as(client, user)
                with client.session_transaction() as sess:
                    sess["mfa_ok"] = False
                    sess["csrf_token"] = "0" * 40
                data = {"csrf_token": token} if method != "GET" else None
                with spy_writes() as writes:
                    response = client.open(path, method=method, data=data)
                    response.close()
            tried += 1
            location = response.headers.get("Location", "")
            if response.status_code != 302 or not location.startswith("/konto/zweiter-faktor"):
                failures.append(f"{method} {path} as {role}: {response.status_code} {location}")
            if writes.statements:
                failures.append(f"{method} {path} as {role}: wrote to {writes.tables}")
    record_figure(
        "second-factor",
        "staff routes requested by staff sessions without the required second factor",
        tried,
        len(failures),
        0,
        order=42,
    )
    assert tried > 50
    assert failures == []


def test_second_factor_is_required_in_production_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SECURITY.md / issue 7: two-factor sign-in is on in production, off for local work."""
    from kyffikus import create_app

    monkeypatch.setenv("KYFFIKUS_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("KYFFIKUS_REQUIRE_STAFF_2FA", raising=False)
    production = create_app(
        {"SECRET_KEY": "s" * 64, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'p.sqlite'}"}
    )
    assert production.config["REQUIRE_STAFF_2FA"] is True
    development = create_app(
        {"ENV": "development", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'd.sqlite'}"}
    )
    assert not development.config["REQUIRE_STAFF_2FA"]
    explicit = create_app(
        {
            "SECRET_KEY": "s" * 64,
            "REQUIRE_STAFF_2FA": False,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'e.sqlite'}",
        }
    )
    assert explicit.config["REQUIRE_STAFF_2FA"] is False


# ---- argon2id --------------------------------------------------------------------------------------


def _assert_strong(password_hash: str) -> None:
    params = argon2.extract_parameters(password_hash)
    assert params.type is argon2.Type.ID
    assert params.memory_cost >= 19456
    assert params.time_cost >= 2
    assert params.parallelism >= 1
    assert params.salt_len >= 16
    assert params.hash_len >= 16


def test_every_way_to_set_a_password_stores_strong_argon2id(
    app: Flask, client: Any, make_user: Any, make_provider: Any, runner: Any, tmp_path: Path
) -> None:
    """Change, reset link, invitation and the CLI all store argon2id with OWASP's parameters."""
    from kyffikus.services.tokens import issue_token

    new_password = "Kyffhäuser-Burg-und-Wald-9"
    seen = 0
    # Change on the account page.
    user = make_user("family")
    db.session.commit()
    login_as(client, user)
    data = {
        "current_password": TEST_PASSWORD,
        "password": new_password,
        "password_repeat": new_password,
    }
    assert post_form(client, "/konto/passwort", data, token_from="/konto/").status_code == 302
    _assert_strong(db.session.get(User, user.id).password_hash)
    seen += 1
    # Reset link.
    other = make_user("family")
    raw = issue_token(other, "reset")
    db.session.commit()
    url = f"/konto/passwort-neu/{raw}"
    form = {"password": new_password, "password_repeat": new_password}
    assert post_form(app.test_client(), url, form).status_code == 302
    db.session.expire_all()
    _assert_strong(db.session.get(User, other.id).password_hash)
    seen += 1
    # Invitation.
    invited = make_user("provider", provider=make_provider(), confirmed=False)
    invited.password_hash = None
    raw = issue_token(invited, "invite")
    db.session.commit()
    url = f"/konto/einladung/{raw}"
    assert post_form(app.test_client(), url, form).status_code == 302
    db.session.expire_all()
    _assert_strong(db.session.get(User, invited.id).password_hash)
    seen += 1
    # The CLI (the first staff account of an installation).
    secret = tmp_path / "pw.txt"
    secret.write_text(new_password + "\n", encoding="utf-8")
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "erste.verwaltung@example.org",
            "--role",
            "staff",
            "--password-file",
            str(secret),
        ]
    )
    assert result.exit_code == 0, result.output
    created = db.session.scalars(
        select(User).where(User.email == "erste.verwaltung@example.org")
    ).one()
    _assert_strong(created.password_hash)
    seen += 1
    assert seen == 4


# ---- password guessing ------------------------------------------------------------------------------


def test_password_guessing_is_cut_off_with_the_production_limits(
    app: Flask, make_user: Any
) -> None:
    """Default limits: guesses at one account from rotating addresses are refused with 429 after
    50 an hour, guesses at many accounts from one address after 10 a minute; the right password
    too, until the owner sets a new one through the reset mail."""
    from itsdangerous import URLSafeTimedSerializer

    assert app.config["LOGIN_RATE_LIMIT"] == "10 per minute;50 per hour"
    assert app.config["LOGIN_ACCOUNT_RATE_LIMIT"] == "50 per hour;300 per day"
    victim = make_user("family", email="ziel.person@example.de")
    db.session.commit()
    token = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps("2" * 40)
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["csrf_token"] = "2" * 40
    attempts = 300
    by_kind: dict[str, Counter[int]] = {"one account": Counter(), "one address": Counter()}
    for i in range(attempts):
        response = client.post(
            "/konto/anmelden",
            data={"email": victim.email, "password": f"Rate-mal-{i:04d}-x", "csrf_token": token},
            environ_base={"REMOTE_ADDR": f"198.18.{i // 250}.{i % 250 + 1}"},
        )
        by_kind["one account"][response.status_code] += 1
    for i in range(attempts):
        response = client.post(
            "/konto/anmelden",
            data={
                "email": f"person{i}@example.de",
                "password": "Sommer2026!!",
                "csrf_token": token,
            },
            environ_base={"REMOTE_ADDR": "203.0.113.99"},
        )
        by_kind["one address"][response.status_code] += 1
    right = client.post(
        "/konto/anmelden",
        data={"email": victim.email, "password": TEST_PASSWORD, "csrf_token": token},
        environ_base={"REMOTE_ADDR": "198.18.200.1"},
    )
    evaluated = sum(c[401] for c in by_kind.values())
    record_figure(
        "login-guessing",
        "password guesses with the production login limit (one account from rotating "
        "addresses; many accounts from one address)",
        2 * attempts,
        sum(c[302] for c in by_kind.values()),
        sum(n for c in by_kind.values() for s, n in c.items() if s >= 500),
        outcome=f"0 logged in; {evaluated} checked, "
        f"{sum(c[429] for c in by_kind.values())} refused with 429",
        order=43,
        details={k: dict(v) for k, v in by_kind.items()},
    )
    # Fixed windows that start with the first failure: a run that outlasts a minute may get a
    # second 10 from one address; the account's hour outlasts any run.
    for counts in by_kind.values():
        assert set(counts) <= {401, 429}, counts
    assert by_kind["one account"][401] == 50, by_kind
    assert 10 <= by_kind["one address"][401] <= 20, by_kind
    # Guessed from everywhere, the account is locked for the owner too (else the answer to the
    # right password would tell the guesser); the reset mail is the way back in (tests/auth).
    assert right.status_code == 429
