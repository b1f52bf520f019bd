"""Users: search, invite, deactivate (sessions end at once), reset, roles, the last admin; settings."""

from __future__ import annotations

import html
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models import AuditEntry, User
from kyffikus.services.settings import get_setting
from tests.conftest import Outbox, login_as, post_form


def text(response: Any) -> str:
    """The response's HTML with entities decoded."""
    return html.unescape(response.get_data(as_text=True))


def audits(action: str, object_id: Any = None) -> list[AuditEntry]:
    """Audit entries of an action (and object), oldest first."""
    query = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
    if object_id is not None:
        query = query.where(AuditEntry.object_id == str(object_id))
    return list(db.session.scalars(query))


@pytest.fixture
def staff(make_user: Any) -> User:
    """A staff member."""
    return make_user("staff", email="mitarbeiterin@kyffhaeuser.example")


@pytest.fixture
def admin(make_user: Any) -> User:
    """The only admin."""
    return make_user("admin", email="admin@kyffhaeuser.example")


@pytest.fixture
def provider_user(make_user: Any, make_provider: Any) -> User:
    """A provider's account."""
    return make_user(
        "provider", email="kasse@therme.example", provider=make_provider(name="Kyffhäuser-Therme")
    )


def act(client: FlaskClient, user: User, action: str, **data: Any) -> Any:
    """POST a button of a user's page and follow the redirect."""
    page = f"/verwaltung/benutzer/{user.id}"
    return post_form(client, f"{page}/{action}", data, token_from=page, follow_redirects=True)


# ---- list and search --------------------------------------------------------------------------


def test_search_by_email_and_role(
    client: FlaskClient, staff: User, admin: User, provider_user: User, make_user: Any
) -> None:
    """The list filters by part of the address, by role and by state."""
    make_user("family", email="familie.mueller@example.org")
    login_as(client, staff)
    page = text(client.get("/verwaltung/benutzer?q=THERME"))
    assert "kasse@therme.example" in page
    assert "familie.mueller@example.org" not in page
    page = text(client.get("/verwaltung/benutzer?role=family"))
    assert "familie.mueller@example.org" in page
    assert "kasse@therme.example" not in page
    page = text(client.get("/verwaltung/benutzer?q=Kyffh%C3%A4user-Therme"))  # the provider's name
    assert "kasse@therme.example" in page
    page = text(client.get("/verwaltung/benutzer?q=%25"))  # a literal %, not a wildcard
    assert "1 Konto" not in page
    assert "kasse@therme.example" not in page
    provider_user.active = False
    db.session.flush()
    page = text(client.get("/verwaltung/benutzer?state=inactive"))
    assert "kasse@therme.example" in page
    assert "admin@kyffhaeuser.example" not in page


def test_family_account_view_is_audited(client: FlaskClient, staff: User, make_user: Any) -> None:
    """Opening a family's account is a staff read of personal data: logged."""
    family = make_user("family")
    login_as(client, staff)
    assert client.get(f"/verwaltung/benutzer/{family.id}").status_code == 200
    (entry,) = audits("user.view", family.id)
    assert entry.actor_id == staff.id


# ---- invitations ------------------------------------------------------------------------------


def test_staff_invites_a_provider_user(
    client: FlaskClient, staff: User, provider_user: User, outbox: Outbox
) -> None:
    """Staff invite a provider account: the account exists, the mail has a link, it is audited."""
    login_as(client, staff)
    provider = provider_user.provider
    response = post_form(
        client,
        "/verwaltung/benutzer/einladen",
        {"email": "Neu@Therme.example", "role": "provider", "provider_id": str(provider.id)},
    )
    assert response.status_code == 302
    user = db.session.scalars(select(User).where(User.email == "neu@therme.example")).one()
    assert (user.role, user.provider_id, user.password_hash) == ("provider", provider.id, None)
    (message,) = outbox.wait_for("neu@therme.example")
    assert any("/konto/einladung/" in link for link in Outbox.links(message))
    assert audits("user.invite", user.id)


@pytest.mark.parametrize("role", ["staff", "admin"])
def test_staff_cannot_invite_staff(
    client: FlaskClient, staff: User, role: str, outbox: Outbox
) -> None:
    """Only admins invite staff and admins; the choice is not offered and a forged request fails."""
    login_as(client, staff)
    form = text(client.get("/verwaltung/benutzer/einladen"))
    assert f'value="{role}"' not in form
    response = post_form(
        client,
        "/verwaltung/benutzer/einladen",
        {"email": "neu@example.org", "role": role, "provider_id": "0"},
    )
    assert response.status_code == 422
    assert "Sie dürfen keine Konten mit dieser Rolle einladen." in text(response)
    assert db.session.scalars(select(User).where(User.email == "neu@example.org")).first() is None
    assert outbox.to("neu@example.org") == []


def test_admin_invites_staff(client: FlaskClient, admin: User, outbox: Outbox) -> None:
    """Admins invite staff."""
    login_as(client, admin)
    response = post_form(
        client,
        "/verwaltung/benutzer/einladen",
        {"email": "kollege@example.org", "role": "staff", "provider_id": "0"},
    )
    assert response.status_code == 302
    assert (
        db.session.scalars(select(User).where(User.email == "kollege@example.org")).one().role
        == "staff"
    )
    outbox.wait_for("kollege@example.org")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"email": "kein-at", "role": "provider", "provider_id": "PROVIDER"},
            "Diese E-Mail-Adresse ist ungültig.",
        ),
        (
            {"email": "kasse@therme.example", "role": "provider", "provider_id": "PROVIDER"},
            "Für diese E-Mail-Adresse gibt es schon ein Konto.",
        ),
        (
            {"email": "neu@example.org", "role": "provider", "provider_id": "0"},
            "Ein Anbieter-Konto braucht einen Anbieter.",
        ),
    ],
)
def test_bad_invitation(
    client: FlaskClient, staff: User, provider_user: User, data: dict[str, str], message: str
) -> None:
    """Bad invitations: 422 and a clear message; no account."""
    login_as(client, staff)
    users = db.session.scalar(select(db.func.count()).select_from(User))
    data = {k: (str(provider_user.provider_id) if v == "PROVIDER" else v) for k, v in data.items()}
    response = post_form(client, "/verwaltung/benutzer/einladen", data)
    assert response.status_code == 422
    assert message in text(response)
    assert db.session.scalar(select(db.func.count()).select_from(User)) == users


def test_failed_invitation_mail_leaves_no_account(
    app: Flask, client: FlaskClient, staff: User, provider_user: User
) -> None:
    """When the mail server is down, the user is told and the half-made account is not kept."""
    login_as(client, staff)
    old_port = app.config["MAIL_PORT"]
    app.config["MAIL_PORT"] = 1  # nothing listens there
    try:
        response = post_form(
            client,
            "/verwaltung/benutzer/einladen",
            {
                "email": "offline@example.org",
                "role": "provider",
                "provider_id": str(provider_user.provider_id),
            },
        )
    finally:
        app.config["MAIL_PORT"] = old_port
    assert response.status_code == 422
    assert "konnte gerade nicht versendet werden" in text(response)
    assert (
        db.session.scalars(select(User).where(User.email == "offline@example.org")).first() is None
    )
    assert db.session.get(User, staff.id) is not None  # the test's own rows are untouched


# ---- deactivation -----------------------------------------------------------------------------


def test_deactivated_user_is_logged_out_at_once(
    app: Flask, staff: User, provider_user: User
) -> None:
    """The provider's open session ends with staff's click: its next request is anonymous."""
    provider_client = login_as(app.test_client(), provider_user)
    assert provider_client.get("/verwaltung/").status_code == 403  # logged in (as a provider)
    staff_client = login_as(app.test_client(), staff)
    response = act(staff_client, provider_user, "deaktivieren")
    assert "Das Konto wurde deaktiviert; alle Sitzungen sind beendet." in text(response)
    assert provider_user.active is False
    anonymous = provider_client.get("/verwaltung/")
    assert anonymous.status_code == 302  # anonymous now: sent to the login page, not refused
    assert anonymous.headers["Location"].startswith("/konto/anmelden")
    (entry,) = audits("user.deactivate", provider_user.id)
    assert entry.actor_id == staff.id


def test_deactivated_staff_is_logged_out_at_once(app: Flask, admin: User, staff: User) -> None:
    """An admin deactivates a staff member who is using a staff page right now."""
    staff_client = login_as(app.test_client(), staff)
    assert staff_client.get("/verwaltung/").status_code == 200
    act(login_as(app.test_client(), admin), staff, "deaktivieren")
    response = staff_client.get("/verwaltung/benutzer")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/konto/anmelden")


def test_reactivate(client: FlaskClient, staff: User, provider_user: User) -> None:
    """A deactivated account can be let in again."""
    login_as(client, staff)
    act(client, provider_user, "deaktivieren")
    response = act(client, provider_user, "freischalten")
    assert "Das Konto ist wieder freigeschaltet." in text(response)
    assert provider_user.active is True
    assert audits("user.activate", provider_user.id)


@pytest.mark.parametrize("target_role", ["staff", "admin"])
def test_staff_cannot_deactivate_staff_or_admins(
    client: FlaskClient, staff: User, make_user: Any, target_role: str
) -> None:
    """Staff may not deactivate colleagues or admins; the page offers no button either."""
    target = make_user(target_role)
    login_as(client, staff)
    assert "Konto deaktivieren" not in text(client.get(f"/verwaltung/benutzer/{target.id}"))
    response = act(client, target, "deaktivieren")
    assert "Sie dürfen dieses Konto nicht deaktivieren." in text(response)
    assert target.active is True


def test_nobody_deactivates_themselves(client: FlaskClient, staff: User) -> None:
    """Staff cannot lock themselves out."""
    login_as(client, staff)
    response = act(client, staff, "deaktivieren")
    assert "Sie können Ihr eigenes Konto nicht deaktivieren." in text(response)
    assert staff.active is True


# ---- password reset -----------------------------------------------------------------------------


def test_send_password_reset(
    client: FlaskClient, staff: User, provider_user: User, outbox: Outbox
) -> None:
    """Staff send a reset link to a provider account; the mail arrives; audited."""
    login_as(client, staff)
    response = act(client, provider_user, "passwort-zuruecksetzen")
    assert "Ein Link zum Zurücksetzen des Passworts wurde per E-Mail geschickt." in text(response)
    (message,) = outbox.wait_for("kasse@therme.example")
    assert any("/konto/passwort-neu/" in link for link in Outbox.links(message))
    assert audits("user.password_reset", provider_user.id)


def test_staff_cannot_reset_an_admin(
    client: FlaskClient, staff: User, admin: User, outbox: Outbox
) -> None:
    """A staff member cannot take over an admin account through a reset link."""
    login_as(client, staff)
    response = act(client, admin, "passwort-zuruecksetzen")
    assert "Sie dürfen für dieses Konto kein neues Passwort anstoßen." in text(response)
    assert outbox.to("admin@kyffhaeuser.example") == []


# ---- roles and the last admin -----------------------------------------------------------------


def test_last_admin_cannot_demote_itself(client: FlaskClient, admin: User) -> None:
    """The only active admin cannot give up the role: a clear message, still admin."""
    login_as(client, admin)
    response = act(client, admin, "rolle", role="staff", provider_id="0")
    assert "Das ist das letzte aktive Administratorkonto." in text(response)
    assert admin.role == "admin"
    assert audits("user.role_change") == []


def test_last_admin_cannot_deactivate_itself(
    client: FlaskClient, admin: User, make_user: Any
) -> None:
    """Inactive admins do not count: the only active admin cannot deactivate itself either."""
    make_user("admin", active=False)
    login_as(client, admin)
    response = act(client, admin, "deaktivieren")
    assert "Das ist das letzte aktive Administratorkonto." in text(response)
    assert admin.active is True


def test_admin_changes_roles_audited(
    app: Flask, client: FlaskClient, admin: User, make_user: Any
) -> None:
    """An admin promotes staff and demotes another admin; old and new roles are audited."""
    colleague = make_user("staff")
    other_admin = make_user("admin")
    login_as(client, admin)
    response = act(client, colleague, "rolle", role="admin", provider_id="0")
    assert "Die Rolle ist jetzt „Administration“." in text(response)
    assert colleague.role == "admin"
    (entry,) = audits("user.role_change", colleague.id)
    assert entry.details["role"] == {"old": "staff", "new": "admin"}
    other_client = login_as(app.test_client(), other_admin)
    act(client, other_admin, "rolle", role="staff", provider_id="0")
    assert other_admin.role == "staff"
    # Its sessions ended, so the new rights apply at once.
    assert other_client.get("/verwaltung/einstellungen").status_code == 302


def test_role_change_to_provider_needs_a_provider(
    client: FlaskClient, admin: User, make_user: Any, make_provider: Any
) -> None:
    """Turning an account into a provider account needs the provider."""
    colleague = make_user("staff")
    login_as(client, admin)
    response = act(client, colleague, "rolle", role="provider", provider_id="0")
    assert "Ein Anbieter-Konto braucht einen Anbieter." in text(response)
    assert colleague.role == "staff"
    provider = make_provider()
    act(client, colleague, "rolle", role="provider", provider_id=str(provider.id))
    assert (colleague.role, colleague.provider_id) == ("provider", provider.id)


def test_family_role_cannot_be_changed(client: FlaskClient, admin: User, make_user: Any) -> None:
    """Family accounts belong to a household: their role stays."""
    family = make_user("family")
    login_as(client, admin)
    response = act(client, family, "rolle", role="admin", provider_id="0")
    assert "Familienkonten haben immer die Rolle Familie." in text(response)
    assert family.role == "family"


# ---- settings ---------------------------------------------------------------------------------


def test_settings_are_saved_and_audited(client: FlaskClient, admin: User) -> None:
    """Admins change the settings; the audit entry has old and new values."""
    login_as(client, admin)
    response = post_form(
        client,
        "/verwaltung/einstellungen",
        {"auto_approve": "y", "district_family_count": "6 400", "require_staff_2fa": ""},
    )
    assert response.status_code == 302
    assert get_setting("auto_approve") is True
    assert get_setting("district_family_count") == 6400
    (entry,) = audits("settings.update")
    assert entry.details == {
        "auto_approve": {"old": False, "new": True},
        "district_family_count": {"old": None, "new": 6400},
    }
    page = text(client.get("/verwaltung/einstellungen"))
    assert 'value="6400"' in page
    # Emptying the number switches the share off again.
    post_form(
        client, "/verwaltung/einstellungen", {"auto_approve": "y", "district_family_count": ""}
    )
    assert get_setting("district_family_count") is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "größer als 0"),
        ("-5", "größer als 0"),
        ("viele", "Bitte geben Sie eine ganze Zahl ein."),
        ("12,5", "Bitte geben Sie eine ganze Zahl ein."),
    ],
)
def test_bad_family_count(client: FlaskClient, admin: User, value: str, message: str) -> None:
    """The number of families is a positive whole number or empty."""
    login_as(client, admin)
    response = post_form(client, "/verwaltung/einstellungen", {"district_family_count": value})
    assert response.status_code == 422
    assert message in text(response)
    assert get_setting("district_family_count") is None
    assert audits("settings.update") == []


def test_require_staff_2fa_applies_at_once(
    app: Flask, client: FlaskClient, admin: User, staff: User
) -> None:
    """With the setting on, staff without a second factor in this session are sent to it."""
    login_as(client, admin)
    post_form(client, "/verwaltung/einstellungen", {"require_staff_2fa": "y"})
    assert get_setting("require_staff_2fa") is True
    staff_client = app.test_client()
    login_as(staff_client, staff)
    with staff_client.session_transaction() as sess:
        sess["mfa_ok"] = False
    response = staff_client.get("/verwaltung/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/konto/zweiter-faktor")
