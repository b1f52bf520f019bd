"""Two-factor sign-in for staff: setup with a QR code, TOTP and recovery codes at login, throttling."""

from __future__ import annotations

import base64
import io
import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models import AuditEntry, RecoveryCode
from kyffikus.services import NotAllowed, twofactor
from kyffikus.services.settings import set_setting
from tests.auth.conftest import form_login, is_logged_in
from tests.conftest import TEST_PASSWORD, post_form

SECOND = "/konto/zweiter-faktor"
SETUP = "/konto/zwei-faktor"


@pytest.fixture
def staff_with_totp(make_user):
    """A staff member whose authenticator app is set up; returns (user, TOTP, recovery codes)."""
    user = make_user("staff")
    user.totp_secret = pyotp.random_base32()
    user.totp_enabled_at = datetime.now(UTC)
    codes = twofactor.new_recovery_codes(user)
    db.session.commit()
    return user, pyotp.TOTP(user.totp_secret), codes


def enter_code(client, code: str, next_url: str = "/verwaltung/"):
    return post_form(client, f"{SECOND}?next={next_url}", {"code": code})


def test_setup_shows_a_qr_code_and_gives_ten_recovery_codes_once(client, login, make_user) -> None:
    user = make_user("staff")
    login(user)
    page = client.get(SETUP)
    assert page.status_code == 200
    assert "Einrichtung beginnen" in page.get_data(as_text=True)
    assert user.totp_secret is None  # nothing happens on GET
    assert post_form(client, "/konto/zwei-faktor/beginnen", {}, token_from=SETUP).status_code == 302
    html = client.get(SETUP).get_data(as_text=True)
    data = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
    (barcode,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(base64.b64decode(data))))
    uri = urlsplit(barcode.text)
    assert uri.scheme == "otpauth"
    assert uri.netloc == "totp"
    assert unquote(uri.path) == f"/Kyffikus:{user.email}"
    secret = parse_qs(uri.query)["secret"][0]
    assert secret == user.totp_secret
    assert twofactor.grouped_secret(secret) in html
    assert user.totp_enabled_at is None

    wrong = post_form(
        client, SETUP, {"code": "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"}
    )
    assert wrong.status_code == 401
    assert user.totp_enabled_at is None

    done = post_form(client, SETUP, {"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200
    codes = re.findall(r"<code>([a-z2-9]{5}-[a-z2-9]{5})</code>", done.get_data(as_text=True))
    assert len(codes) == len(set(codes)) == 10
    assert user.totp_enabled_at is not None
    stored = list(db.session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)))
    assert len(stored) == 10
    assert not {c.code_hash for c in stored} & {c.replace("-", "") for c in codes}
    assert db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "user.2fa_enable")
    ).one()
    # Shown once: the setup page now only says it is done.
    again = client.get(SETUP)
    assert again.status_code == 302
    account = client.get("/konto/").get_data(as_text=True)
    assert not any(code in account for code in codes)


def test_login_asks_for_the_code_before_anything_else(client, staff_with_totp) -> None:
    user, totp, _codes = staff_with_totp
    response = form_login(client, user.email)
    assert response.status_code == 302
    assert response.headers["Location"] == "/konto/zweiter-faktor?next=/verwaltung/"
    with client.session_transaction() as sess:
        assert sess["mfa_ok"] is False
    # The account page (like every staff page) sends the user to the code first.
    assert client.get("/konto/").headers["Location"].startswith(SECOND)
    response = enter_code(client, totp.now())
    assert response.status_code == 302
    assert response.headers["Location"] == "/verwaltung/"
    with client.session_transaction() as sess:
        assert sess["mfa_ok"] is True
    assert is_logged_in(client)


def test_a_totp_code_is_accepted_only_once(client, app, staff_with_totp) -> None:
    user, totp, _codes = staff_with_totp
    code = totp.now()
    form_login(client, user.email)
    assert enter_code(client, code).status_code == 302
    other = app.test_client()
    form_login(other, user.email)
    replay = enter_code(other, code)
    assert replay.status_code == 401
    assert "schon verwendet" in replay.get_data(as_text=True)
    with other.session_transaction() as sess:
        assert sess["mfa_ok"] is False


@pytest.mark.parametrize("typed", ["{code}", "{upper}", "{spaced}"])
def test_a_recovery_code_works_once(client, app, staff_with_totp, typed) -> None:
    user, _totp, codes = staff_with_totp
    code = codes[3]
    entered = typed.format(code=code, upper=code.upper(), spaced=" " + code.replace("-", " ") + " ")
    form_login(client, user.email)
    response = enter_code(client, entered)
    assert response.status_code == 302
    assert twofactor.remaining_recovery_codes(user) == 9
    other = app.test_client()
    form_login(other, user.email)
    again = enter_code(other, code)
    assert again.status_code == 401
    with other.session_transaction() as sess:
        assert sess["mfa_ok"] is False


@pytest.mark.parametrize(
    "code", ["", "12345", "1234567", "abcdefghij", "x" * 41, "12345\x00", "ÄÖÜäöüßẞ12"]
)
def test_malformed_codes_are_refused_without_error(client, staff_with_totp, code) -> None:
    user, _totp, _codes = staff_with_totp
    form_login(client, user.email)
    response = enter_code(client, code)
    assert response.status_code in (401, 422)
    with client.session_transaction() as sess:
        assert sess["mfa_ok"] is False


def test_code_entry_is_throttled(client, app, staff_with_totp, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "SECOND_FACTOR_RATE_LIMIT", "3 per minute")
    user, totp, _codes = staff_with_totp
    form_login(client, user.email)
    for _n in range(3):
        assert (
            enter_code(client, "000000" if totp.now() != "000000" else "111111").status_code == 401
        )
    response = enter_code(client, totp.now())
    assert response.status_code == 429
    assert "Zu viele Anfragen" in response.get_data(as_text=True)


@pytest.mark.parametrize("how", ["config", "setting"])
def test_when_required_staff_without_totp_are_sent_to_setup(
    client, app, make_user, monkeypatch, how
) -> None:
    if how == "config":
        monkeypatch.setitem(app.config, "REQUIRE_STAFF_2FA", True)
    else:
        set_setting("require_staff_2fa", True)
    user = make_user("admin")
    db.session.commit()
    response = form_login(client, user.email)
    assert response.headers["Location"].startswith(SECOND)
    to_setup = client.get(response.headers["Location"])
    assert to_setup.status_code == 302
    assert to_setup.headers["Location"].startswith(SETUP)
    assert client.get("/konto/").headers["Location"].startswith(SECOND)
    # After setting it up the session counts as passed.
    post_form(client, "/konto/zwei-faktor/beginnen", {}, token_from=SETUP)
    done = post_form(client, SETUP, {"code": pyotp.TOTP(user.totp_secret).now()})
    assert done.status_code == 200
    assert client.get("/konto/").status_code == 200
    # And it cannot be switched off while required.
    with pytest.raises(NotAllowed):
        twofactor.disable(user, user)


def test_families_and_providers_never_see_the_second_factor(
    client, make_user, make_provider, app, monkeypatch
) -> None:
    monkeypatch.setitem(app.config, "REQUIRE_STAFF_2FA", True)
    family = make_user("family")
    assert form_login(client, family.email).headers["Location"] == "/familie/"
    assert client.get(SETUP).status_code == 403
    provider_user = make_user("provider", provider=make_provider())
    assert (
        form_login(app.test_client(), provider_user.email).headers["Location"]
        == "/anbieter/pruefen"
    )


def test_staff_without_totp_and_not_required_log_in_with_the_password(client, make_user) -> None:
    user = make_user("staff")
    response = form_login(client, user.email)
    assert response.headers["Location"] == "/verwaltung/"
    assert client.get("/konto/").status_code == 200


def test_new_recovery_codes_replace_the_old_ones(client, login, staff_with_totp) -> None:
    user, _totp, codes = staff_with_totp
    login(user)
    wrong = post_form(
        client,
        "/konto/zwei-faktor/wiederherstellungscodes",
        {"codes_password": "falsch-falsch"},
        token_from="/konto/",
    )
    assert wrong.status_code == 422
    response = post_form(
        client,
        "/konto/zwei-faktor/wiederherstellungscodes",
        {"codes_password": TEST_PASSWORD},
        token_from="/konto/",
    )
    assert response.status_code == 200
    new = re.findall(r"<code>([a-z2-9]{5}-[a-z2-9]{5})</code>", response.get_data(as_text=True))
    assert len(new) == 10
    assert not set(new) & set(codes)
    with pytest.raises(twofactor.SecondFactorFailed):
        twofactor.verify_second_factor(user, codes[0])
    assert twofactor.verify_second_factor(user, new[0]) == "recovery"


def test_user_switches_totp_off_and_admin_resets_a_lost_phone(
    client, login, staff_with_totp, make_user
) -> None:
    user, _totp, _codes = staff_with_totp
    login(user)
    response = post_form(
        client,
        "/konto/zwei-faktor/abschalten",
        {"disable_password": TEST_PASSWORD},
        token_from="/konto/",
    )
    assert response.status_code == 302
    assert not twofactor.has_totp(user)
    assert twofactor.remaining_recovery_codes(user) == 0
    user.totp_secret, user.totp_enabled_at = pyotp.random_base32(), datetime.now(UTC)
    colleague = make_user("staff")
    with pytest.raises(NotAllowed):
        twofactor.disable(user, colleague)
    twofactor.disable(user, make_user("admin"))
    assert not twofactor.has_totp(user)
    assert db.session.scalars(select(AuditEntry).where(AuditEntry.action == "user.2fa_reset")).one()
