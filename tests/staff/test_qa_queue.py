"""QA: the application queue shows counts by status and how long each application has waited."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from kyffikus.extensions import db
from kyffikus.models.base import utcnow
from kyffikus.services.applications import (
    queue_summary,
    reject_application,
    submit_application,
    withdraw_application,
)


@pytest.fixture
def staff_client(client: FlaskClient, make_user: Any, login: Any) -> FlaskClient:
    """The test client logged in as staff."""
    login(make_user("staff"))
    return client


@pytest.fixture
def applications(localities: None, make_family: Any, make_user: Any) -> dict[str, Any]:
    """Three open applications (12, 3 and 0 days old), one rejected, one withdrawn, one draft."""
    staff = make_user("staff")
    made: dict[str, Any] = {}
    for name, days in (("Olga", 12), ("Paul", 3), ("Rita", 0)):
        household = make_family(adults=[(name, "Warten")], street=f"{name}weg 1")
        application = submit_application(household, household.user)
        application.submitted_at = utcnow() - timedelta(days=days, hours=1)
        made[name] = application
    rejected = make_family(adults=[("Sven", "Nein")], street="Neinweg 2")
    reject_application(submit_application(rejected, rejected.user), staff, "Kein Wohnsitz.")
    withdrawn = make_family(adults=[("Tina", "Zurück")], street="Zurückweg 3")
    withdraw_application(submit_application(withdrawn, withdrawn.user), withdrawn.user)
    make_family(adults=[("Uwe", "Entwurf")], street="Entwurfweg 4")  # no application at all
    db.session.flush()
    return made


def test_summary_counts_by_status_in_the_database(app: Any, applications: dict[str, Any]) -> None:
    summary = queue_summary()

    assert summary.counts == {"submitted": 3, "approved": 0, "rejected": 1, "withdrawn": 1}
    assert summary.oldest_waiting_days == 12


def test_summary_without_applications(app: Any) -> None:
    summary = queue_summary()

    assert summary.counts == {"submitted": 0, "approved": 0, "rejected": 0, "withdrawn": 0}
    assert summary.oldest_waiting_days is None


def test_queue_page_shows_the_counts_and_waiting_days(
    staff_client: FlaskClient, applications: dict[str, Any]
) -> None:
    page = html.unescape(staff_client.get("/verwaltung/antraege/").get_data(as_text=True))
    text = re.sub(r"<[^>]+>", " ", page)
    text = re.sub(r"\s+", " ", text)

    assert "3 in Prüfung" in text
    assert "1 abgelehnt" in text
    assert "1 zurückgezogen" in text
    assert "12 Tage wartet der älteste offene Antrag" in text
    assert 'href="/verwaltung/antraege/?status=rejected"' in page
    # Each row says how long it has waited, oldest first.
    rows = text.split("Olga Warten")[0], text.split("Paul Warten")[0], text.split("Rita Warten")[0]
    assert rows[0].rstrip().endswith("12 Tagen")
    assert rows[1].rstrip().endswith("3 Tagen")
    assert rows[2].rstrip().endswith("heute")
