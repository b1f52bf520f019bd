"""Applying: confirmed e-mail, eligibility refusals with reasons, submission, withdrawal, auto-approval."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from kyffikus.extensions import db
from kyffikus.models import Application, AuditEntry, Household, Pass
from kyffikus.services import Conflict, DomainError
from kyffikus.services.applications import (
    NotEligible,
    approve_application,
    reject_application,
    submit_application,
    withdraw_application,
)
from kyffikus.services.settings import set_setting
from tests.conftest import post_form
from tests.family.family_helpers import household_form

APPLY = "/familie/antrag"


def _setup(client: Any, make_user: Any, login: Any, *, confirmed: bool = True, **form: Any) -> Any:
    user = make_user("family", confirmed=confirmed)
    login(user)
    response = post_form(client, "/familie/haushalt", household_form(**form))
    assert response.status_code == 302, response.get_data(as_text=True)
    return user


def _application(user: Any) -> Application:
    household = db.session.scalars(select(Household).where(Household.user_id == user.id)).one()
    return household.applications[-1]


def test_submitting_sends_the_application_and_a_mail(
    client, localities, make_user, login, outbox
) -> None:
    user = _setup(client, make_user, login)
    page = client.get(APPLY).get_data(as_text=True)
    assert "Erfüllt:" in page
    assert "Antrag abschicken" in page
    response = post_form(client, APPLY, {})
    assert response.status_code == 302
    application = _application(user)
    assert application.status == "submitted"
    assert application.eligible is True
    assert application.submitted_at is not None
    assert [r["rule"] for r in application.eligibility] == ["residence", "child_under_18"]
    assert application.snapshot["adults"] == [{"first_name": "Anna", "last_name": "Muster"}]
    assert application.snapshot["locality"] == "Sondershausen"
    assert application.possible_duplicate is False
    mail = outbox.wait_for(user.email)[0]
    assert "eingegangen" in mail["Subject"]
    assert "http://localhost/familie/" in outbox.body(mail)
    assert "In Prüfung" in client.get(APPLY).get_data(as_text=True)


def test_an_unconfirmed_email_cannot_submit(client, localities, make_user, login, outbox) -> None:
    user = _setup(client, make_user, login, confirmed=False)
    page = client.get(APPLY).get_data(as_text=True)
    assert "Bitte bestätigen Sie zuerst Ihre E-Mail-Adresse" in page
    assert "Antrag abschicken" not in page
    response = post_form(client, APPLY, {}, token_from=APPLY)
    assert response.status_code == 422
    assert "bestätigen Sie zuerst Ihre E-Mail-Adresse" in response.get_data(as_text=True)
    assert _application(user).status == "draft"
    assert outbox.to(user.email) == []


def test_an_ineligible_household_is_told_why_and_nothing_is_submitted(
    client, localities, make_user, login, outbox
) -> None:
    user = _setup(client, make_user, login, children=[("Lea", "2001-04-01")])
    page = client.get(APPLY).get_data(as_text=True)
    assert "Nicht erfüllt:" in page
    assert "kein Kind unter 18" in page
    assert "Antrag abschicken" not in page
    response = post_form(client, APPLY, {}, token_from="/familie/haushalt")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Nicht alle Voraussetzungen sind erfüllt" in html
    assert "kein Kind unter 18" in html
    assert _application(user).status == "draft"
    assert outbox.to(user.email) == []


def test_withdraw_and_apply_again(client, localities, make_user, login) -> None:
    user = _setup(client, make_user, login)
    post_form(client, APPLY, {})
    response = post_form(client, "/familie/antrag/zurueckziehen", {}, token_from=APPLY)
    assert response.status_code == 302
    assert _application(user).status == "withdrawn"
    # Now the household can be changed and a new application sent.
    assert (
        post_form(client, "/familie/haushalt", household_form(street="Markt 9")).status_code == 302
    )
    assert post_form(client, APPLY, {}).status_code == 302
    statuses = [a.status for a in db.session.scalars(select(Application).order_by(Application.id))]
    assert statuses == ["withdrawn", "submitted"]


def test_auto_approve_issues_the_pass_at_once(client, localities, make_user, login, outbox) -> None:
    set_setting("auto_approve", True)
    user = _setup(client, make_user, login)
    response = post_form(client, APPLY, {})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/familie/pass")
    application = _application(user)
    assert application.status == "approved"
    assert application.decided_by_id is None
    pass_ = db.session.scalars(select(Pass).where(Pass.application_id == application.id)).one()
    mail = outbox.wait_for(user.email)[0]
    assert "Familienpass" in mail["Subject"]
    assert pass_.grouped_number in outbox.body(mail)
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "application.approve")
    ).one()
    assert entry.actor_label == "system"
    assert entry.details["automatic"] is True


def test_auto_approve_leaves_possible_duplicates_to_staff(
    app, localities, family_with_pass, make_family
) -> None:
    set_setting("auto_approve", True)
    family_with_pass(adults=[("Anna", "Muster")], street="Markt 8")
    household = make_family(adults=[("Anna", "Muster")], street="Markt 8")
    application = submit_application(household, household.user)
    assert application.status == "submitted"
    assert application.possible_duplicate is True


def test_a_family_with_an_active_pass_cannot_apply_again(app, localities, family_with_pass) -> None:
    household, _pass = family_with_pass()
    with pytest.raises(Conflict, match="bereits einen gültigen Familienpass"):
        submit_application(household, household.user)


def test_submit_twice_is_refused(app, localities, make_family) -> None:
    household = make_family()
    submit_application(household, household.user)
    with pytest.raises(Conflict, match="bereits abgeschickt"):
        submit_application(household, household.user)


def test_not_eligible_carries_the_result(app, localities, make_family) -> None:
    household = make_family(children=[date(1999, 1, 1)])
    with pytest.raises(NotEligible) as caught:
        submit_application(household, household.user)
    assert [r.rule for r in caught.value.result.failed] == ["child_under_18"]
    assert db.session.scalar(select(func.count()).select_from(Application)) == 0


@pytest.mark.parametrize("first", ["approve", "reject", "withdraw"])
def test_a_decided_application_cannot_be_decided_again(
    app, localities, make_family, make_user, first: str
) -> None:
    staff = make_user("staff")
    household = make_family()
    application = submit_application(household, household.user)
    if first == "approve":
        approve_application(application, staff)
    elif first == "reject":
        reject_application(application, staff, "Kein Hauptwohnsitz im Kreis.")
    else:
        withdraw_application(application, household.user)
    for attempt in (
        lambda: approve_application(application, staff),
        lambda: reject_application(application, staff, "Nochmal"),
        lambda: withdraw_application(application, household.user),
    ):
        with pytest.raises(Conflict):
            attempt()
    assert db.session.scalar(select(func.count()).select_from(Pass)) == (
        1 if first == "approve" else 0
    )


def test_reject_needs_a_reason(app, localities, make_family, make_user) -> None:
    household = make_family()
    application = submit_application(household, household.user)
    with pytest.raises(DomainError, match="Grund"):
        reject_application(application, make_user("staff"), "   ")
    assert application.status == "submitted"
