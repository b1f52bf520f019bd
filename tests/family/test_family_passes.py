"""Issuing and keeping passes: number, token, holders, children, validity, replace, revoke, extend, expire."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models import Application, AuditEntry, Pass
from kyffikus.models.base import berlin_today, utcnow
from kyffikus.services import Conflict, DomainError, passnumber
from kyffikus.services import passes as pass_service
from kyffikus.services.checks import check_pass
from kyffikus.services.passes import (
    children_ages,
    expire_passes,
    extend_pass,
    issue_pass,
    replace_pass,
    revoke_pass,
)
from tests.conftest import post_form
from tests.family.family_helpers import years_ago


def _approved(household) -> Application:
    application = Application(
        household=household, status="approved", submitted_at=utcnow(), eligible=True
    )
    db.session.add(application)
    db.session.flush()
    return application


def _audit(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_issue_pass(app, localities, make_family, make_user, make_edition) -> None:
    today = berlin_today()
    edition = make_edition(
        valid_from=today - timedelta(days=30), valid_until=today + timedelta(days=400)
    )
    staff = make_user("staff")
    household = make_family(
        adults=[("Ŝimon", "Müller-Lüdenscheidt"), ("Siobhán", "O'Brien")],
        children=[years_ago(today, 18), years_ago(today, 18, days=-1), date(2020, 2, 29)],
    )
    pass_ = issue_pass(_approved(household), staff)
    assert passnumber.is_valid(pass_.number)
    assert len(pass_.number) == 10
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", pass_.token)  # 192 bits, URL-safe
    assert pass_.status == "active"
    assert pass_.holders == [
        {"first_name": "Ŝimon", "last_name": "Müller-Lüdenscheidt"},
        {"first_name": "Siobhán", "last_name": "O'Brien"},
    ]
    # The child who turns 18 today is not counted.
    assert pass_.children_birth_dates == sorted(
        [years_ago(today, 18, days=-1).isoformat(), "2020-02-29"]
    )
    assert (pass_.valid_from, pass_.valid_until, pass_.edition_id) == (
        today,
        edition.valid_until,
        edition.id,
    )
    assert [e.kind for e in pass_.events] == ["issued"]
    assert pass_.issued_by_id == staff.id
    assert _audit("pass.issue")[0].object_id == str(pass_.id)
    assert pass_ in household.passes


def test_issue_pass_without_a_covering_edition(app, localities, make_family, make_edition) -> None:
    today = berlin_today()
    assert pass_service.validity_end(None, today) == date(today.year, 12, 31)
    old = make_edition(valid_from=date(2020, 1, 1), valid_until=date(2021, 12, 31))
    assert pass_service.current_edition(today).id == old.id  # the latest, when none covers today
    pass_ = issue_pass(_approved(make_family()), None)
    assert pass_.valid_until == date(today.year, 12, 31)


def test_issue_pass_twice_for_one_application_is_refused(app, localities, make_family) -> None:
    application = _approved(make_family())
    issue_pass(application, None)
    with pytest.raises(Conflict, match="bereits ein Familienpass"):
        issue_pass(application, None)


def test_a_colliding_number_is_drawn_again(app, localities, make_family, monkeypatch) -> None:
    first = issue_pass(_approved(make_family()), None)
    numbers = iter([first.number, first.number, passnumber.generate()])
    calls = []

    def fake_generate() -> str:
        calls.append(1)
        return next(numbers)

    monkeypatch.setattr(passnumber, "generate", fake_generate)
    second = issue_pass(_approved(make_family()), None)
    assert len(calls) == 3
    assert second.number != first.number
    assert db.session.get(Pass, first.id).status == "active"  # the savepoint kept the rest intact


def test_children_ages(app) -> None:
    on = date(2026, 6, 15)
    pass_ = Pass(children_birth_dates=["2008-06-15", "2008-06-16", "2020-01-01", "2026-06-16"])
    assert children_ages(pass_, on) == [17, 6]
    assert children_ages(pass_, date(2026, 6, 16)) == [6, 0]


def test_replace_kills_the_old_token_at_once(app, localities, family_with_pass, make_user) -> None:
    household, old = family_with_pass()
    staff = make_user("staff")
    old_token, old_number = old.token, old.number
    new = replace_pass(old, staff, reason="Verloren")
    assert old.status == "replaced"
    assert (new.status, new.replaces_id, new.household_id) == ("active", old.id, household.id)
    assert new.token != old_token
    assert new.number != old_number
    assert new.holders == old.holders
    assert new.valid_until == old.valid_until
    assert [e.kind for e in old.events] == ["issued", "replaced"]
    assert old.events[-1].details == {"new_pass_id": new.id}
    assert _audit("pass.replace")[0].actor_id == staff.id
    today = berlin_today()
    assert check_pass(old_token, None, today, token_only=True).status == "replaced"
    assert check_pass(new.token, None, today, token_only=True).status == "valid"
    with pytest.raises(Conflict):
        replace_pass(old, staff)


def test_revoke_needs_a_reason_and_records_it(app, localities, family_with_pass, make_user) -> None:
    _household, pass_ = family_with_pass()
    staff = make_user("staff")
    with pytest.raises(DomainError):
        revoke_pass(pass_, staff, reason=" ")
    revoke_pass(pass_, staff, reason="Missbrauch gemeldet")
    assert (pass_.status, pass_.status_reason) == ("revoked", "Missbrauch gemeldet")
    assert pass_.events[-1].kind == "revoked"
    assert _audit("pass.revoke")[0].details["reason"] == "Missbrauch gemeldet"
    with pytest.raises(Conflict):
        revoke_pass(pass_, staff, reason="nochmal")
    with pytest.raises(Conflict):
        extend_pass(pass_, staff, until=pass_.valid_until + timedelta(days=1))


def test_extend_and_reactivate(app, localities, family_with_pass, make_user) -> None:
    _household, pass_ = family_with_pass()
    staff = make_user("staff")
    with pytest.raises(DomainError):
        extend_pass(pass_, staff, until=pass_.valid_until)
    pass_.status = "expired"
    db.session.flush()
    until = pass_.valid_until + timedelta(days=365)
    extend_pass(pass_, staff, until=until, note="Neue Auflage")
    assert (pass_.status, pass_.valid_until) == ("active", until)
    assert [e.kind for e in pass_.events][-2:] == ["extended", "reactivated"]
    assert _audit("pass.extend")[0].details["status"] == {"old": "expired", "new": "active"}


def test_expire_passes(app, localities, family_with_pass) -> None:
    _h1, current = family_with_pass()
    _h2, old = family_with_pass()
    old.valid_from = date(2020, 1, 1)
    old.valid_until = berlin_today() - timedelta(days=1)
    db.session.flush()
    assert expire_passes() == 1
    assert (old.status, current.status) == ("expired", "active")
    assert old.events[-1].kind == "expired"
    assert len(_audit("pass.expire")) == 1
    assert expire_passes() == 0


def test_family_replaces_its_lost_pass(client, localities, family_with_pass, login, outbox) -> None:
    household, old = family_with_pass()
    login(household.user)
    old_token = old.token
    page = client.get("/familie/pass/verloren")
    assert old.grouped_number in page.get_data(as_text=True)
    response = post_form(client, "/familie/pass/verloren", {"reason": "Im Bus verloren"})
    assert response.status_code == 302
    new = db.session.scalars(select(Pass).where(Pass.replaces_id == old.id)).one()
    mail = outbox.wait_for(household.user.email)[0]
    assert new.grouped_number in outbox.body(mail)
    assert "gelten ab sofort nicht mehr" in outbox.body(mail)
    # The old QR address now says "not valid"; the new one "valid".
    anonymous = client.application.test_client()
    assert "NICHT GÜLTIG" in anonymous.get(f"/v/{old_token}").get_data(as_text=True)
    assert "NICHT GÜLTIG" not in anonymous.get(f"/v/{new.token}").get_data(as_text=True)
    assert client.get("/familie/pass").get_data(as_text=True).count(new.grouped_number) >= 1
