"""Logs hold no personal data; authentication failures and authorization refusals are logged.

A whole journey runs through the test client with every logger at DEBUG: register, confirm,
household, apply, approve, pass page, QR and card, check (page, QR URL, API), redeem, a failed
login, refusals. Then the captured log text is searched for the family's names, e-mail address,
street, postal code and locality, phone, the children's names and birth dates, and the secrets
(pass number and token, e-mailed link, API token, password). None may appear.

SQLAlchemy's own loggers stay at their level (WARN, set by SQLAlchemy): below that they echo SQL
with its parameters, a developer's switch that is never on in production.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models import Application, Pass, User
from kyffikus.services import apitokens
from kyffikus.services.passnumber import format_number
from tests.conftest import TEST_PASSWORD, csrf_token, login_as, post_form
from tests.family.family_helpers import household_form, locality_value
from tests.security.figures import record_figure

EMAIL = "hildegunde.pfefferkorn@example.de"
ADULTS = [("Hildegunde", "Pfefferkorn"), ("Wendelin", "Pfefferkorn-Ößler")]
CHILDREN = [("Eulalia", "2017-04-23"), ("Severin", "2020-09-08")]
STREET = "Quellengasse 23"
POSTAL_CODE, LOCALITY = "06578", "Oldisleben"
PHONE = "03466 918273"

PERSONAL = [
    "Hildegunde",
    "Pfefferkorn",
    "Wendelin",
    "Ößler",
    "Eulalia",
    "Severin",
    EMAIL,
    "hildegunde.pfefferkorn",
    "pfefferkorn@",
    "Quellengasse",
    f"{POSTAL_CODE} {LOCALITY}",
    LOCALITY,
    "918273",
    "2017-04-23",
    "23.04.2017",
    "2020-09-08",
    "08.09.2020",
    TEST_PASSWORD,
]

# Lines that must be there: failed sign-ins and refusals, logged without personal data.
EXPECTED = {
    "failed login": r"login failed",
    "anonymous refused": r"anonymous request refused",
    "wrong role refused": r"refused role family",
    "403 refused": r"refused GET /verwaltung/: 403",
    "CSRF refused": r"CSRF refused POST",
    "API token refused": r"API token refused",
}

# Loggers of the test's own tools, not of the app.
NOT_THE_APP = ("sqlalchemy", "mail.log", "asyncio", "hypothesis", "faker", "PIL")


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger of the app and its libraries at DEBUG (werkzeug and Flask-Limiter too)."""
    caplog.set_level(logging.DEBUG)
    names = ["kyffikus", "werkzeug", "flask_limiter", "flask_wtf", "flask_login", "flask_babel"]
    names += list(logging.root.manager.loggerDict)
    for name in sorted(set(names)):
        if not name.startswith(NOT_THE_APP):
            caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    lines = []
    for record in caplog.records:
        if record.name.startswith(NOT_THE_APP):
            continue
        lines.append(f"{record.name} {record.levelname} {record.getMessage()}")
        if record.exc_text:
            lines.append(record.exc_text)
    return "\n".join(lines)


def test_a_whole_journey_logs_no_personal_data(
    app: Flask,
    client: Any,
    localities: None,
    make_user: Any,
    make_provider: Any,
    make_offer: Any,
    make_edition: Any,
    outbox: Any,
    all_logs: pytest.LogCaptureFixture,
) -> None:
    """Register to redemption and a few attacks: the log names no one and no secret."""
    from datetime import timedelta

    from kyffikus.models.base import berlin_today

    today = berlin_today()
    edition = make_edition(
        valid_from=today - timedelta(days=30), valid_until=today + timedelta(days=300)
    )
    provider = make_provider(published=True)
    offer = make_offer(provider, edition=edition, limit="per_day")
    till = make_user("provider", provider=provider)
    _token, api_raw = apitokens.create_token(till, "Kasse 1")
    staff = make_user("staff")
    db.session.commit()  # refusing views roll back; the setup must survive them
    all_logs.clear()

    # Register, confirm, log in.
    data = {"email": EMAIL, "password": TEST_PASSWORD, "password_repeat": TEST_PASSWORD}
    assert post_form(client, "/konto/registrieren", data).status_code == 302
    (mail,) = outbox.wait_for(EMAIL)
    (link,) = [u for u in outbox.links(mail) if "/konto/bestaetigen/" in u]
    confirm_path = urlsplit(link).path
    response = client.post(confirm_path, data={"csrf_token": csrf_token(client, confirm_path)})
    assert response.status_code == 302
    login = {"email": EMAIL, "password": TEST_PASSWORD}
    assert post_form(client, "/konto/anmelden", login).status_code == 302

    # Household and application.
    form = household_form(
        adults=ADULTS,
        children=CHILDREN,
        street=STREET,
        postal_code=POSTAL_CODE,
        locality=locality_value(LOCALITY, POSTAL_CODE),
        phone=PHONE,
    )
    response = post_form(client, "/familie/haushalt", form)
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    assert post_form(client, "/familie/antrag", {}).status_code == 302
    application = db.session.scalars(
        select(Application).join(Application.household).where(Application.status == "submitted")
    ).one()

    # Staff: queue, detail, approve, search by name, the pass.
    staff_client = app.test_client()
    login_as(staff_client, staff)
    assert staff_client.get("/verwaltung/antraege/").status_code == 200
    detail = f"/verwaltung/antraege/{application.id}"
    assert staff_client.get(detail).status_code == 200
    response = post_form(staff_client, f"{detail}/genehmigen", {}, token_from=detail)
    assert response.status_code == 302
    pass_ = db.session.scalars(select(Pass).where(Pass.application_id == application.id)).one()
    search = post_form(staff_client, "/verwaltung/paesse/", {"q": "Pfefferkorn"})
    assert search.status_code in (200, 302)
    assert staff_client.get(f"/verwaltung/paesse/{pass_.id}").status_code == 200

    # The family's pass page, QR image and card.
    assert client.get("/familie/pass").status_code == 200
    assert client.get(f"/familie/pass/{pass_.id}/qr.png").status_code == 200
    assert client.get(f"/familie/pass/{pass_.id}/karte.pdf").status_code == 200
    assert client.get("/familie/daten/export.json").status_code == 200

    # The till: check by page, QR URL and API; redeem.
    till_client = app.test_client()
    login_as(till_client, till)
    checked = post_form(
        till_client,
        "/anbieter/pruefen/ergebnis",
        {"code": pass_.token},
        token_from="/anbieter/pruefen",
    )
    assert ">GÜLTIG</h2>" in checked.get_data(as_text=True)
    assert ">GÜLTIG</h2>" in app.test_client().get(f"/v/{pass_.token}").get_data(as_text=True)
    bearer = {"Authorization": f"Bearer {api_raw}"}
    number = format_number(pass_.number)
    api = app.test_client().post("/api/v1/checks", json={"code": number}, headers=bearer)
    assert api.get_json()["status"] == "valid"
    redeem = {
        "code": pass_.token,
        "offer_id": offer.id,
        "adults": 1,
        "children": 2,
        "idempotency_key": "journey-key-0001",
    }
    response = post_form(till_client, "/anbieter/einloesen", redeem, token_from="/anbieter/pruefen")
    assert response.status_code == 200
    assert till_client.get("/anbieter/einloesungen").status_code == 200

    # Failed sign-ins and refusals.
    wrong = {"email": EMAIL, "password": "Falsches-Passwort-99"}
    assert post_form(app.test_client(), "/konto/anmelden", wrong).status_code == 401
    assert client.get("/verwaltung/").status_code == 403
    assert app.test_client().get("/familie/pass").status_code == 302
    assert client.post("/familie/haushalt", data=form).status_code == 400  # no CSRF token
    api = app.test_client().post(
        "/api/v1/checks", json={"code": number}, headers={"Authorization": "Bearer kyf_falsch"}
    )
    assert api.status_code == 401

    text = _log_text(all_logs)
    secrets_ = [
        pass_.token,
        pass_.number,
        number,
        api_raw,
        confirm_path.rsplit("/", 1)[-1],
    ]
    leaks = [needle for needle in PERSONAL + secrets_ if needle.lower() in text.lower()]
    missing = [name for name, pattern in EXPECTED.items() if not re.search(pattern, text)]
    record_figure(
        "logs",
        f"log records of a whole journey (every logger at DEBUG) searched for "
        f"{len(PERSONAL) + len(secrets_)} personal data and secrets",
        len(all_logs.records),
        len(leaks),
        0,
        outcome=f"{len(leaks)} found; {len(EXPECTED) - len(missing)} of {len(EXPECTED)} "
        "expected refusal lines present",
        order=85,
    )
    assert leaks == [], text
    assert missing == [], text
    # The refusal lines name the way in, never the person: a user id at most.
    assert db.session.scalars(select(User).where(User.email == EMAIL)).one().id
