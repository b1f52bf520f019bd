"""The staff's application queue: list, filters, detail, approve (never two passes), reject, counter."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from kyffikus.extensions import db
from kyffikus.models import Application, AuditEntry, Household, Pass
from kyffikus.models.base import utcnow
from kyffikus.services.applications import submit_application
from tests.conftest import post_form, postgres_only
from tests.family.family_helpers import decode_qr, household_form, locality_value, render_pdf_pages

QUEUE = "/verwaltung/antraege/"


def _passes() -> int:
    return db.session.scalar(select(func.count()).select_from(Pass)) or 0


@pytest.fixture
def staff(make_user, login) -> Any:
    user = make_user("staff")
    db.session.commit()  # a view's rollback must not undo the fixture
    login(user)
    return user


@pytest.fixture
def submitted(localities, make_family) -> Any:
    """submitted(**make_family kwargs) -> a submitted online application."""

    def _make(**kwargs: Any) -> Application:
        household = make_family(**kwargs)
        application = submit_application(household, household.user)
        db.session.commit()
        return application

    return _make


def test_queue_lists_submitted_applications_oldest_first(client, staff, submitted) -> None:
    older = submitted(adults=[("Olga", "Alt")])
    older.submitted_at = utcnow() - timedelta(days=10)
    newer = submitted(adults=[("Nina", "Neu")])
    db.session.flush()
    response = client.get(QUEUE)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert html.index("Olga Alt") < html.index("Nina Neu")
    assert f"/verwaltung/antraege/{newer.id}" in html
    # Filters: age and status.
    aged = client.get(QUEUE + "?alter=7").get_data(as_text=True)
    assert "Olga Alt" in aged
    assert "Nina Neu" not in aged
    assert "Olga Alt" not in client.get(QUEUE + "?status=approved").get_data(as_text=True)
    listed = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "application.list")
    ).first()
    assert listed is not None
    assert set(listed.details["ids"]) == {older.id, newer.id}


def test_queue_filters_by_locality(client, staff, submitted) -> None:
    submitted(adults=[("Sara", "Sonder")])
    submitted(adults=[("Arne", "Artern")], postal_code="06556", locality="Artern")
    artern = locality_value("Artern", "06556")
    html = client.get(QUEUE + f"?ort={artern}").get_data(as_text=True)
    assert "Arne Artern" in html
    assert "Sara Sonder" not in html


@pytest.mark.parametrize(
    "bad", ["?status=boom", "?alter=abc", "?ort=-1", "?page=x", "?ort=99999999999"]
)
def test_queue_ignores_bad_filters(client, staff, submitted, bad: str) -> None:
    submitted()
    assert client.get(QUEUE + bad).status_code == 200


def test_families_and_providers_cannot_see_the_queue(
    client, localities, make_user, make_provider, login
) -> None:
    login(make_user("family"))
    assert client.get(QUEUE).status_code == 403
    login(make_user("provider", provider=make_provider()))
    assert client.get(QUEUE).status_code == 403


def test_detail_shows_the_submission_and_is_audited(client, staff, submitted) -> None:
    application = submitted(adults=[("Ŝimon", "Müller-Lüdenscheidt")])
    response = client.get(f"{QUEUE}{application.id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Ŝimon Müller-Lüdenscheidt" in html
    assert "Erfüllt:" in html
    assert "Genehmigen und Pass ausstellen" in html
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "application.view")
    ).one()
    assert entry.actor_id == staff.id
    assert entry.object_id == str(application.id)
    assert client.get(f"{QUEUE}999999").status_code == 404


def test_approve_issues_one_pass_and_mails_the_family(client, staff, submitted, outbox) -> None:
    application = submitted()
    url = f"{QUEUE}{application.id}/genehmigen"
    response = post_form(client, url, {}, token_from=f"{QUEUE}{application.id}")
    assert response.status_code == 302
    db.session.refresh(application)
    assert application.status == "approved"
    assert application.decided_by_id == staff.id
    pass_ = db.session.scalars(select(Pass).where(Pass.application_id == application.id)).one()
    mail = outbox.wait_for(application.household.user.email)[0]
    assert pass_.grouped_number in outbox.body(mail)
    actions = set(db.session.scalars(select(AuditEntry.action)))
    assert {"application.approve", "pass.issue"} <= actions
    # The second approval (a double click, a second tab) answers 409 and issues nothing.
    again = post_form(client, url, {}, token_from=f"{QUEUE}{application.id}")
    assert again.status_code == 409
    assert "bereits genehmigt" in again.get_data(as_text=True)
    assert _passes() == 1


def test_approve_after_reject_is_refused(client, staff, submitted, outbox) -> None:
    application = submitted()
    detail = f"{QUEUE}{application.id}"
    response = post_form(
        client, f"{detail}/ablehnen", {"reason": "Kein Hauptwohnsitz im Kreis."}, token_from=detail
    )
    assert response.status_code == 302
    mail = outbox.wait_for(application.household.user.email)[0]
    assert "abgelehnt" in mail["Subject"]
    assert "Kein Hauptwohnsitz im Kreis." in outbox.body(mail)
    again = post_form(client, f"{detail}/genehmigen", {}, token_from=detail)
    assert again.status_code == 409
    assert "bereits abgelehnt" in again.get_data(as_text=True)
    assert _passes() == 0


def test_reject_without_reason_is_refused(client, staff, submitted) -> None:
    application = submitted()
    detail = f"{QUEUE}{application.id}"
    response = post_form(client, f"{detail}/ablehnen", {"reason": "  "}, token_from=detail)
    assert response.status_code == 422
    assert "Bitte geben Sie einen Grund an" in response.get_data(as_text=True)
    db.session.refresh(application)
    assert application.status == "submitted"


def test_the_family_sees_the_rejection_reason(
    client, localities, make_user, login, submitted
) -> None:
    application = submitted()
    staff = make_user("staff")
    login(staff)
    detail = f"{QUEUE}{application.id}"
    post_form(
        client,
        f"{detail}/ablehnen",
        {"reason": "Bitte Meldebescheinigung nachreichen."},
        token_from=detail,
    )
    login(application.household.user)
    assert "Bitte Meldebescheinigung nachreichen." in client.get("/familie/").get_data(as_text=True)
    assert "Bitte Meldebescheinigung nachreichen." in client.get("/familie/antrag").get_data(
        as_text=True
    )


def test_possible_duplicate_is_shown_to_staff(client, staff, family_with_pass, submitted) -> None:
    family_with_pass(adults=[("Anna", "Muster")], street="Markt 8")
    application = submitted(adults=[("ANNA", "muster")], street="Markt 8")
    assert application.possible_duplicate
    assert "Mögliches Duplikat" in client.get(QUEUE).get_data(as_text=True)
    assert "Mögliches Duplikat" in client.get(f"{QUEUE}{application.id}").get_data(as_text=True)


def test_counter_entry_approves_at_once_and_prints_the_card(
    client, localities, staff, outbox
) -> None:
    url = QUEUE + "schalter"
    data = household_form(
        adults=[("Ŝimon", "Müller-Lüdenscheidt")], children=[("Mia", "2018-08-08")]
    )
    response = post_form(client, url, data)
    assert response.status_code == 302, response.get_data(as_text=True)
    application = db.session.scalars(select(Application)).one()
    assert (application.status, application.channel, application.entered_by_id) == (
        "approved",
        "counter",
        staff.id,
    )
    assert application.household.user_id is None
    pass_ = db.session.scalars(select(Pass)).one()
    detail = client.get(response.headers["Location"]).get_data(as_text=True)
    card_url = f"/verwaltung/antraege/pass/{pass_.id}/karte.pdf"
    assert card_url in detail
    card = client.get(card_url)
    assert card.status_code == 200
    assert card.mimetype == "application/pdf"
    assert decode_qr(render_pdf_pages(card.data)[0]) == [f"http://localhost/v/{pass_.token}"]
    assert db.session.scalars(select(AuditEntry).where(AuditEntry.action == "pass.print")).one()
    assert outbox.messages == []  # no e-mail address, no mail


def test_counter_entry_of_an_ineligible_family_writes_nothing(client, localities, staff) -> None:
    data = household_form(children=[("Erwachsen", "2000-01-01")])
    response = post_form(client, QUEUE + "schalter", data)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "kein Kind unter 18" in html
    assert "nicht erfasst" in html
    assert db.session.scalar(select(func.count()).select_from(Household)) == 0
    assert db.session.scalar(select(func.count()).select_from(Application)) == 0


def test_counter_entry_bad_locality(client, localities, staff) -> None:
    data = household_form(postal_code="06578", locality=locality_value("Kannawurf"))
    response = post_form(client, QUEUE + "schalter", data)
    assert response.status_code == 422
    assert "Landkreis Sömmerda" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Household)) == 0


def test_card_of_unknown_or_revoked_pass(client, staff, family_with_pass) -> None:
    from kyffikus.services.passes import revoke_pass

    assert client.get("/verwaltung/antraege/pass/999999/karte.pdf").status_code == 404
    _household, pass_ = family_with_pass()
    revoke_pass(pass_, None, reason="Test")
    response = client.get(f"/verwaltung/antraege/pass/{pass_.id}/karte.pdf")
    assert response.status_code == 409
    assert "Nur ein gültiger Familienpass" in response.get_data(as_text=True)


# ---- races on PostgreSQL ----------------------------------------------------------------------


@postgres_only
@pytest.mark.parametrize("second", ["approve", "reject"])
def test_racing_decisions_never_yield_two_passes(app, second: str) -> None:
    """Two staff members decide the same application at the same moment, in separate transactions."""
    from datetime import date

    from sqlalchemy import delete
    from sqlalchemy.orm import scoped_session, sessionmaker

    from kyffikus.models import Adult, Child, User
    from kyffikus.services import Conflict
    from kyffikus.services.applications import approve_application, reject_application

    rounds = 5

    def decide(
        kind: str,
        staff_id: int,
        application_id: int,
        barrier: threading.Barrier,
        outcomes: list[str],
    ) -> None:
        with app.app_context():
            try:
                by = factory.get(User, staff_id)
                target = factory.get(Application, application_id)
                barrier.wait(timeout=5)
                if kind == "approve":
                    approve_application(target, by)
                else:
                    reject_application(target, by, "Gleichzeitig abgelehnt.")
                factory.commit()
                outcomes.append(kind)
            except Conflict:
                factory.rollback()
                outcomes.append("conflict")
            finally:
                factory.remove()

    factory = scoped_session(
        sessionmaker(bind=db.engine, expire_on_commit=False), scopefunc=threading.get_ident
    )
    test_session = db.session
    db.session = factory  # the services use db.session: here each thread gets its own connection
    staff_ids: list[int] = []
    household_ids: list[int] = []
    tally = {"approve": 0, "reject": 0, "conflict": 0, "passes": 0}
    try:
        staff = [User(email=f"race-{n}@example.org", role="staff") for n in "ab"]
        factory.add_all(staff)
        factory.commit()
        staff_ids = [s.id for s in staff]
        for _round in range(rounds):
            household = Household(street="Markt 8", postal_code="99706", consent_at=utcnow())
            household.adults.append(Adult(position=1, first_name="Rita", last_name="Rennen"))
            household.children.append(Child(first_name="Kim", birth_date=date(2019, 1, 1)))
            application = Application(
                household=household, status="submitted", submitted_at=utcnow(), eligible=True
            )
            factory.add_all([household, application])
            factory.commit()
            household_ids.append(household.id)
            application_id = application.id
            factory.remove()
            outcomes: list[str] = []
            barrier = threading.Barrier(2)

            threads = [
                threading.Thread(
                    target=decide, args=(kind, by_id, application_id, barrier, outcomes)
                )
                for kind, by_id in (("approve", staff_ids[0]), (second, staff_ids[1]))
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=20)
            assert len(outcomes) == 2, outcomes
            assert outcomes.count("conflict") == 1, outcomes
            passes = factory.scalar(
                select(func.count()).select_from(Pass).where(Pass.application_id == application_id)
            )
            status = factory.get(Application, application_id).status
            factory.remove()
            assert passes == (1 if status == "approved" else 0)
            for outcome in outcomes:
                tally[outcome] += 1
            tally["passes"] += passes
        print(f"race approve vs {second}, {rounds} rounds: {tally}")
    finally:
        factory.rollback()
        if staff_ids:
            factory.execute(delete(AuditEntry).where(AuditEntry.actor_id.in_(staff_ids)))
        if household_ids:
            factory.execute(delete(Pass).where(Pass.household_id.in_(household_ids)))
            factory.execute(delete(Household).where(Household.id.in_(household_ids)))
        if staff_ids:
            factory.execute(delete(User).where(User.id.in_(staff_ids)))
        factory.commit()
        factory.remove()
        db.session = test_session
