"""Account administration by staff: invitations, resets, deactivation, role changes (all audited)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models import AuditEntry, User
from kyffikus.services import Conflict, DomainError, NotAllowed
from kyffikus.services.accounts import (
    activate_user,
    change_role,
    deactivate_user,
    invite_user,
    is_confirmed,
    send_password_reset,
)
from tests.auth.conftest import form_login, is_logged_in
from tests.conftest import Outbox, post_form

NEW_PASSWORD = "Barbarossa-schlaeft-im-Berg"


def audit(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_invited_provider_sets_a_password_and_can_log_in(
    client, make_user, make_provider, outbox
) -> None:
    staff = make_user("staff")
    provider = make_provider(name="Erlebnispark auf dem Possen")
    user = invite_user(" Kasse@Possen.example ", "provider", provider, by=staff)
    db.session.commit()
    assert user.email == "kasse@possen.example"
    assert user.password_hash is None
    assert not is_confirmed(user)
    (entry,) = audit("user.invite")
    assert entry.actor_id == staff.id
    assert entry.object_id == str(user.id)
    assert entry.details == {"role": "provider", "provider": provider.slug}

    mail = outbox.wait_for("kasse@possen.example")[0]
    body = Outbox.body(mail)
    assert "Erlebnispark auf dem Possen" in body
    path = next(x for x in Outbox.links(mail) if "/konto/einladung/" in x).removeprefix(
        "http://localhost"
    )
    # Before accepting, no password works.
    assert form_login(client, user.email, NEW_PASSWORD).status_code == 401
    page = client.get(path)
    assert page.status_code == 200
    assert "kasse@possen.example" in page.get_data(as_text=True)
    response = post_form(client, path, {"password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD})
    assert response.status_code == 302
    assert is_confirmed(user)
    assert form_login(client, user.email, NEW_PASSWORD).headers["Location"] == "/anbieter/pruefen"
    # The link works once.
    assert client.get(path).status_code == 400


@pytest.mark.parametrize(
    ("by_role", "role", "error"),
    [
        ("family", "provider", NotAllowed),
        ("provider", "provider", NotAllowed),
        ("staff", "staff", NotAllowed),
        ("staff", "admin", NotAllowed),
        ("admin", "family", DomainError),
        ("admin", "wizard", DomainError),
    ],
)
def test_who_may_invite_whom(make_user, make_provider, by_role, role, error) -> None:
    by = make_user(by_role, provider=make_provider() if by_role == "provider" else None)
    with pytest.raises(error):
        invite_user("neu@example.de", role, None, by=by)
    assert db.session.scalars(select(User).where(User.email == "neu@example.de")).first() is None


def test_admin_invites_staff_and_provider_needs_a_provider(make_user, outbox) -> None:
    admin = make_user("admin")
    user = invite_user("kollegin@kyffhaeuser.example", "staff", None, by=admin)
    assert user.role == "staff"
    with pytest.raises(DomainError, match="Anbieter"):
        invite_user("kasse@example.de", "provider", None, by=admin)
    with pytest.raises(Conflict):
        invite_user("Kollegin@kyffhaeuser.example", "staff", None, by=admin)


def test_staff_sends_a_reset_link_and_it_is_audited(
    client, make_user, make_provider, outbox
) -> None:
    staff = make_user("staff")
    user = make_user("provider", provider=make_provider())
    send_password_reset(user, by=staff)
    db.session.commit()
    body = Outbox.body(outbox.wait_for(user.email)[0])
    assert "Landratsamt Kyffhäuserkreis hat" in body
    assert "/konto/passwort-neu/" in body
    (entry,) = audit("user.password_reset")
    assert entry.actor_id == staff.id
    assert entry.object_id == str(user.id)


def test_deactivation_ends_sessions_at_once_and_is_audited(client, make_user) -> None:
    staff = make_user("staff")
    user = make_user("family")
    assert form_login(client, user.email).status_code == 302
    assert is_logged_in(client)
    deactivate_user(user, by=staff)
    db.session.commit()
    assert not is_logged_in(client)
    response = form_login(client, user.email)
    assert response.status_code == 403
    assert "deaktiviert" in response.get_data(as_text=True)
    (entry,) = audit("user.deactivate")
    assert entry.actor_id == staff.id
    activate_user(user, by=staff)
    db.session.commit()
    assert form_login(client, user.email).status_code == 302
    assert audit("user.activate")


@pytest.mark.parametrize(
    ("by_role", "target_role", "allowed"),
    [
        ("staff", "family", True),
        ("staff", "provider", True),
        ("staff", "staff", False),
        ("staff", "admin", False),
        ("admin", "staff", True),
        ("provider", "family", False),
    ],
)
def test_who_may_deactivate_whom(make_user, make_provider, by_role, target_role, allowed) -> None:
    by = make_user(by_role, provider=make_provider() if by_role == "provider" else None)
    target = make_user(target_role, provider=make_provider() if target_role == "provider" else None)
    if allowed:
        deactivate_user(target, by=by)
        assert target.active is False
    else:
        with pytest.raises(NotAllowed):
            deactivate_user(target, by=by)
        assert target.active is True


def test_nobody_deactivates_themselves(make_user) -> None:
    admin = make_user("admin")
    with pytest.raises(NotAllowed):
        deactivate_user(admin, by=admin)


def test_role_change_by_admin_ends_sessions_and_is_audited(
    client, make_user, make_provider
) -> None:
    admin = make_user("admin")
    user = make_user("provider", provider=make_provider())
    assert form_login(client, user.email).status_code == 302
    change_role(user, "staff", by=admin)
    db.session.commit()
    assert user.role == "staff"
    assert user.provider is None
    assert not is_logged_in(client)
    (entry,) = audit("user.role_change")
    assert entry.details["role"] == {"old": "provider", "new": "staff"}
    staff = make_user("staff")
    with pytest.raises(NotAllowed):
        change_role(user, "admin", by=staff)
    with pytest.raises(DomainError):
        change_role(user, "family", by=admin)
