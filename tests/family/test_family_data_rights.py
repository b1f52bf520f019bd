"""Data rights: the JSON export holds everything; deletion keeps only anonymous redemption counts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from kyffikus.extensions import db
from kyffikus.models import Adult, Application, AuditEntry, Child, Household, Pass, Redemption, User
from kyffikus.models.base import berlin_today
from tests.conftest import TEST_PASSWORD, post_form


@pytest.fixture
def family(
    client, login, family_with_pass, make_provider, make_offer
) -> tuple[Any, Any, Redemption]:
    household, pass_ = family_with_pass(adults=[("Ŝimon", "Müller-Lüdenscheidt")])
    provider = make_provider(name="Kyffhäuser-Therme")
    offer = make_offer(provider, title="Familientag")
    redemption = Redemption(
        pass_=pass_,
        offer=offer,
        provider=provider,
        venue=provider.venues[0],
        adults=1,
        children=2,
        redeemed_at=datetime.now(UTC),
        redeemed_on=berlin_today(),
    )
    db.session.add(redemption)
    db.session.commit()  # a view's rollback must not undo the fixture
    login(household.user)
    return household, pass_, redemption


def test_family_sees_its_redemptions(client, family) -> None:
    _household, pass_, _redemption = family
    html = client.get("/familie/einloesungen").get_data(as_text=True)
    assert "Kyffhäuser-Therme" in html
    assert "Familientag" in html
    assert pass_.grouped_number in html


def test_export_holds_all_the_family_s_data(client, family) -> None:
    household, pass_, _redemption = family
    response = client.get("/familie/daten/export.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    data = json.loads(response.data)
    assert data["account"]["email"] == household.user.email
    assert data["household"]["adults"] == [
        {"position": 1, "first_name": "Ŝimon", "last_name": "Müller-Lüdenscheidt"}
    ]
    assert (
        data["household"]["children"][0]["birth_date"]
        == household.children[0].birth_date.isoformat()
    )
    assert data["household"]["locality"] == "Sondershausen"
    assert [a["status"] for a in data["applications"]] == ["approved"]
    assert data["passes"][0]["number"] == pass_.grouped_number
    assert data["passes"][0]["events"][0]["kind"] == "issued"
    assert data["redemptions"] == [
        {
            "pass_number": pass_.grouped_number,
            "redeemed_at": data["redemptions"][0]["redeemed_at"],
            "redeemed_on": berlin_today().isoformat(),
            "provider": "Kyffhäuser-Therme",
            "offer": "Familientag",
            "venue": "Kyffhäuser-Therme",
            "adults": 1,
            "children": 2,
            "undone_at": None,
        }
    ]
    assert "password_hash" not in response.get_data(as_text=True)


def test_delete_needs_the_password(client, family) -> None:
    household, _pass, _redemption = family
    response = post_form(
        client,
        "/familie/daten/loeschen",
        {"password": "falsch-falsch-falsch", "confirm": "y"},
        token_from="/familie/daten",
    )
    assert response.status_code == 422
    assert "Das Passwort ist nicht richtig." in response.get_data(as_text=True)
    assert db.session.get(User, household.user_id) is not None
    response = post_form(
        client, "/familie/daten/loeschen", {"password": TEST_PASSWORD}, token_from="/familie/daten"
    )
    assert response.status_code == 422  # not confirmed
    assert db.session.get(User, household.user_id) is not None


def test_delete_account_keeps_only_anonymous_counts(client, family) -> None:
    household, pass_, redemption = family
    user_id, email, token = household.user_id, household.user.email, pass_.token
    response = post_form(
        client,
        "/familie/daten/loeschen",
        {"password": TEST_PASSWORD, "confirm": "y"},
        token_from="/familie/daten",
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, user_id) is None
    for model in (Household, Adult, Child, Application):
        assert db.session.scalar(select(func.count()).select_from(model)) == 0, model
    kept = db.session.get(Redemption, redemption.id)
    assert kept is not None
    assert kept.pass_id is None
    assert (kept.adults, kept.children) == (1, 2)
    shell = db.session.get(Pass, pass_.id)
    assert shell.status == "revoked"
    assert (shell.holders, shell.children_birth_dates, shell.household_id) == ([], [], None)
    # A scan of the old card says "not valid"; the audit log names nobody.
    assert "NICHT GÜLTIG" in client.application.test_client().get(f"/v/{token}").get_data(
        as_text=True
    )
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "account.delete")
    ).one()
    assert entry.details == {"passes_revoked": 1, "passes": 1, "redemptions_anonymised": 1}
    everything = json.dumps(
        [[e.actor_label, e.details] for e in db.session.scalars(select(AuditEntry))]
    )
    assert email not in everything
    assert "Müller" not in everything
    # The session is over.
    after = client.get("/familie/")
    assert after.status_code == 302
    assert "/konto/anmelden" in after.headers["Location"]
