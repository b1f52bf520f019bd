"""The live app for the browser tests: its data set, the server object and the login step."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import WSGIRequestHandler

from tests.conftest import TEST_PASSWORD, Outbox

REPO = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = REPO / "build" / "screenshots"


class QuietHandler(WSGIRequestHandler):
    """The development server's handler without a log line per request."""

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """Say nothing about successful requests."""


@dataclass
class LiveServer:
    """The app serving on 127.0.0.1, its database file, its SMTP outbox and the seeded data."""

    app: Flask
    url: str
    outbox: Outbox
    data: dict[str, Any] = field(default_factory=dict)

    def __call__(self, path: str) -> str:
        """The absolute URL of a path on the live server."""
        return self.url + path


PASSWORD = TEST_PASSWORD
STAFF_EMAIL = "sachbearbeitung@landratsamt.example"
ADMIN_EMAIL = "admin@landratsamt.example"
PROVIDER_EMAIL = "kasse@possen.example"
FAMILY_EMAIL = "familie.beispiel@example.org"
PROVIDER_SLUG = "erlebnispark-possen"
SEED_REDEMPTIONS = 4


def seed(app: Flask) -> dict[str, Any]:
    """A small data set: the catalogue, staff, an admin, a provider's user, a family with a pass.

    Returns the objects' ids and keys, so the tests can fill URL parameters with real objects.
    """
    from sqlalchemy import select

    from kyffikus.extensions import db
    from kyffikus.models import (
        Adult,
        Application,
        Child,
        Edition,
        Household,
        Locality,
        Offer,
        Provider,
    )
    from kyffikus.models.base import berlin_today, utcnow
    from kyffikus.models.passes import Redemption
    from kyffikus.services.accounts import create_user
    from kyffikus.services.catalogue_load import load_catalogue
    from kyffikus.services.passes import issue_pass

    load_catalogue()
    # The next edition is announced: staff may extend a pass to its end (the "verlängern" page).
    current = db.session.scalars(select(Edition).order_by(Edition.valid_until.desc())).first()
    assert current is not None
    db.session.add(
        Edition(
            number=current.number + 1,
            name="Familienpass Kyffikus (nächste Ausgabe)",
            valid_from=current.valid_until + timedelta(days=1),
            valid_until=date(current.valid_until.year + 2, 12, 31),
        )
    )
    db.session.flush()
    provider = db.session.scalars(select(Provider).where(Provider.slug == PROVIDER_SLUG)).one()
    staff = create_user(STAFF_EMAIL, "staff", PASSWORD)
    admin = create_user(ADMIN_EMAIL, "admin", PASSWORD)
    provider_user = create_user(PROVIDER_EMAIL, "provider", PASSWORD, provider=provider)
    family_user = create_user(FAMILY_EMAIL, "family", PASSWORD)

    locality = db.session.scalars(
        select(Locality).where(Locality.postal_code == "99706", Locality.name == "Sondershausen")
    ).one()
    now = utcnow()
    today = berlin_today()

    def household(user: Any, first: str, last: str, street: str) -> Household:
        home = Household(
            user=user, street=street, postal_code="99706", locality=locality, consent_at=now
        )
        home.adults.append(Adult(position=1, first_name=first, last_name=last))
        home.children.append(Child(first_name="Lina", birth_date=date(today.year - 6, 5, 17)))
        db.session.add(home)
        db.session.flush()
        return home

    home = household(family_user, "Erika", "Beispiel", "Markt 8")
    approved = Application(
        household=home,
        status="approved",
        channel="online",
        submitted_at=now,
        decided_at=now,
        decided_by=staff,
        eligible=True,
        consent_at=now,
    )
    db.session.add(approved)
    db.session.flush()
    pass_ = issue_pass(approved, staff)

    # A second household (counter, no account) whose application waits in the staff queue.
    waiting_home = household(None, "Max", "Wartend", "Hauptstraße 3")
    waiting = Application(
        household=waiting_home,
        status="submitted",
        channel="counter",
        submitted_at=now,
        eligible=True,
        consent_at=now,
        entered_by_id=staff.id,
    )
    db.session.add(waiting)
    db.session.flush()

    offer = db.session.scalars(
        select(Offer)
        .where(Offer.provider_id == provider.id, Offer.published.is_(True))
        .order_by(Offer.id)
    ).first()
    assert offer is not None, f"the catalogue has no published offer of {PROVIDER_SLUG}"
    # Links as they arrive by mail: an unconfirmed account, a password reset, an invitation.
    from kyffikus.services.tokens import issue_token

    unconfirmed = create_user("noch.unbestaetigt@example.org", "family", PASSWORD, confirmed=False)
    invited = create_user(
        "eingeladen@possen.example", "provider", None, provider=provider, confirmed=False
    )
    tokens = {
        "confirm": issue_token(unconfirmed, "confirm"),
        "reset": issue_token(family_user, "reset"),
        "invite": issue_token(invited, "invite"),
    }

    # Four earlier redemptions: the statistics show "<5" for them, and 5 after the journey's one.
    redemptions = [
        Redemption(
            pass_=pass_,
            offer=offer,
            provider=provider,
            venue=provider.venues[0],
            adults=1,
            children=1,
            redeemed_at=datetime.now(UTC),
            redeemed_on=today,
            limit_key=None,
            by_id=provider_user.id,
        )
        for _ in range(SEED_REDEMPTIONS)
    ]
    db.session.add_all(redemptions)
    redemption = redemptions[0]
    db.session.commit()
    return {
        "staff_id": staff.id,
        "admin_id": admin.id,
        "provider_user_id": provider_user.id,
        "family_user_id": family_user.id,
        "provider_id": provider.id,
        "provider_slug": provider.slug,
        "provider_name": provider.name,
        "offer_id": offer.id,
        "offer_key": offer.key,
        "edition_id": offer.edition_id,
        "household_id": home.id,
        "application_id": approved.id,
        "waiting_application_id": waiting.id,
        "waiting_household_id": waiting_home.id,
        "pass_id": pass_.id,
        "pass_number": pass_.number,
        "pass_token": pass_.token,
        "redemption_id": redemption.id,
        "locality_id": locality.id,
        "tokens": tokens,
        "postal_code": locality.postal_code,
        "venue_id": provider.venues[0].id,
        "category_id": offer.category_id,
        "municipality_id": locality.municipality_id,
    }


ROLE_EMAILS = {
    "family": FAMILY_EMAIL,
    "provider": PROVIDER_EMAIL,
    "staff": STAFF_EMAIL,
    "admin": ADMIN_EMAIL,
}


def login(page: Any, live: LiveServer, email: str, password: str = PASSWORD) -> None:
    """Log in through the login form, as a person would."""
    response = page.goto(live("/konto/anmelden"))
    assert response is not None
    assert response.status == 200, (
        f"login page: HTTP {response.status}: {page.inner_text('body')[:500]}"
    )
    page.get_by_label("E-Mail-Adresse").fill(email)
    page.get_by_label("Passwort", exact=True).fill(password)
    page.get_by_role("main").get_by_role("button", name="Anmelden").click()
    page.wait_for_load_state()
    assert "/konto/anmelden" not in page.url, f"login as {email} failed: {page.url}"
