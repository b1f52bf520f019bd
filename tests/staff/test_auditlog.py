"""The audit log pages: read only, searchable by person, object and date, newest first, paginated."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from kyffikus.extensions import db
from kyffikus.models import AuditEntry
from kyffikus.services.audit import record
from tests.conftest import csrf_token, login_as


@pytest.fixture
def staff(client: FlaskClient, make_user: Any) -> Any:
    """A staff member, logged in."""
    user = make_user("staff", email="pruefer@kyffhaeuser.example")
    login_as(client, user)
    return user


@pytest.fixture
def entries(app: Flask, make_user: Any, staff: Any) -> dict[str, Any]:
    """Entries by two people about several objects on several days (times in UTC)."""
    anna = make_user("staff", email="anna.amt@kyffhaeuser.example")
    bernd = make_user("admin", email="bernd.admin@kyffhaeuser.example")
    made = {
        "a1": record(
            anna,
            "offer.update",
            object_type="offer",
            object_id=7,
            details={"title": {"old": "Alt", "new": "Neu"}},
        ),
        "a2": record(
            anna, "pass.revoke", object_type="pass", object_id=42, details={"reason": "Verlust"}
        ),
        "b1": record(bernd, "user.deactivate", object_type="user_account", object_id=3),
        "b2": record(bernd, "pass.view", object_type="pass", object_id=42),
        "s1": record(None, "pass.expire", object_type="pass", object_id=43),
    }
    times = {
        "a1": datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
        # 23:30 UTC on 31 March is 1 April in Berlin (summer time, UTC+2).
        "a2": datetime(2026, 3, 31, 23, 30, tzinfo=UTC),
        "b1": datetime(2026, 4, 15, 12, 0, tzinfo=UTC),
        "b2": datetime(2026, 5, 2, 8, 0, tzinfo=UTC),
        "s1": datetime(2026, 5, 3, 1, 0, tzinfo=UTC),
    }
    for key, entry in made.items():
        entry.at = times[key]
    db.session.flush()
    return made


def _ids(client: FlaskClient, **query: str) -> list[str]:
    response = client.get("/verwaltung/protokoll/", query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    return re.findall(r"<code>([a-z_.]+)</code>", html)


def test_newest_first(client: FlaskClient, entries: dict[str, Any]) -> None:
    actions = _ids(client)
    mine = [a for a in actions if a in {e.action for e in entries.values()}]
    assert mine == ["pass.expire", "pass.view", "user.deactivate", "pass.revoke", "offer.update"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"person": "anna"}, {"offer.update", "pass.revoke"}),
        ({"person": "BERND.ADMIN@kyffhaeuser.example"}, {"user.deactivate", "pass.view"}),
        ({"person": "system"}, {"pass.expire"}),
        ({"object_type": "pass"}, {"pass.revoke", "pass.view", "pass.expire"}),
        ({"object_type": "pass", "object_id": "42"}, {"pass.revoke", "pass.view"}),
        ({"object_type": "offer", "object_id": "7"}, {"offer.update"}),
        ({"object_id": "3"}, {"user.deactivate"}),
        # Dates are days in Berlin: the revocation at 23:30 UTC on 31 March counts for 1 April.
        ({"date_from": "2026-04-01", "date_to": "2026-04-30"}, {"pass.revoke", "user.deactivate"}),
        ({"date_from": "2026-03-01", "date_to": "2026-03-31"}, {"offer.update"}),
        ({"date_from": "2026-05-02"}, {"pass.view", "pass.expire"}),
        ({"date_to": "2026-03-01"}, {"offer.update"}),
        ({"person": "anna", "object_type": "pass"}, {"pass.revoke"}),
        ({"person": "niemand"}, set()),
        # LIKE wildcards are taken literally.
        ({"person": "%"}, set()),
        ({"person": "_"}, set()),
    ],
)
def test_search_filters(
    client: FlaskClient, entries: dict[str, Any], query: dict[str, str], expected: set[str]
) -> None:
    found = _ids(client, **query)
    assert set(found) & {e.action for e in entries.values()} == expected
    assert len(found) == len(expected)


def test_details_show_old_and_new_values(client: FlaskClient, entries: dict[str, Any]) -> None:
    html = client.get("/verwaltung/protokoll/", query_string={"object_type": "offer"}).get_data(
        as_text=True
    )
    assert "Alt → Neu" in html
    assert "anna.amt@kyffhaeuser.example" in html


def test_a_pass_entry_links_to_the_pass(client: FlaskClient, entries: dict[str, Any]) -> None:
    html = client.get("/verwaltung/protokoll/", query_string={"object_id": "42"}).get_data(
        as_text=True
    )
    assert 'href="/verwaltung/paesse/42"' in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            {"date_from": "2026-05-01", "date_to": "2026-04-01"},
            "Das Enddatum darf nicht vor dem Anfangsdatum liegen.",
        ),
        ({"date_from": "gestern"}, "Von (Datum)"),
        ({"person": "x" * 300}, "Person"),
    ],
)
def test_bad_filters_get_a_message(
    client: FlaskClient, entries: dict[str, Any], query: dict[str, str], message: str
) -> None:
    response = client.get("/verwaltung/protokoll/", query_string=query)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Bitte prüfen Sie Ihre Angaben" in html
    assert message in html


def test_pagination(client: FlaskClient, app: Flask, staff: Any) -> None:
    for i in range(60):
        entry = record(staff, "offer.update", object_type="offer", object_id=1000 + i)
        entry.at = datetime(2026, 6, 1, 8, i % 60, tzinfo=UTC)
    db.session.flush()
    first = client.get("/verwaltung/protokoll/", query_string={"object_type": "offer"}).get_data(
        as_text=True
    )
    second = client.get(
        "/verwaltung/protokoll/", query_string={"object_type": "offer", "page": "2"}
    ).get_data(as_text=True)
    assert first.count("<code>offer.update</code>") == 50
    assert second.count("<code>offer.update</code>") == 10
    assert "offer 1059" in first  # newest first
    assert "offer 1000" in second
    assert 'rel="next"' in first
    assert "object_type=offer" in first  # the filter is kept across pages
    # A page past the end is empty, not an error.
    assert client.get("/verwaltung/protokoll/", query_string={"page": "99"}).status_code == 200
    assert client.get("/verwaltung/protokoll/", query_string={"page": "abc"}).status_code == 200


def test_the_log_has_no_route_that_changes_it(app: Flask) -> None:
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/verwaltung/protokoll")]
    assert rules
    for rule in rules:
        assert rule.methods is not None
        assert rule.methods <= {"GET", "HEAD", "OPTIONS"}, rule
    names = " ".join(
        r.endpoint for r in app.url_map.iter_rules() if r.endpoint.startswith("staff_audit.")
    )
    assert not re.search(r"edit|delete|update|remove|bearbeiten|loeschen", names)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_writing_to_the_log_is_not_allowed(
    client: FlaskClient, entries: dict[str, Any], method: str
) -> None:
    token = csrf_token(client, "/verwaltung/protokoll/")  # the logout form's token
    before = db.session.scalar(select(func.count()).select_from(AuditEntry))
    response = client.open(
        "/verwaltung/protokoll/",
        method=method,
        data={"csrf_token": token},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 405
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == before


@pytest.mark.parametrize("role", ["family", "provider"])
def test_families_and_providers_are_refused(
    client: FlaskClient, make_user: Any, make_provider: Any, role: str
) -> None:
    login_as(client, make_user(role, provider=make_provider() if role == "provider" else None))
    assert client.get("/verwaltung/protokoll/").status_code == 403


def test_anonymous_is_sent_to_login(client: FlaskClient, app: Flask) -> None:
    response = client.get("/verwaltung/protokoll/")
    assert response.status_code == 302
    assert "/konto/" in response.headers["Location"]


def test_admin_may_read_it(client: FlaskClient, make_user: Any) -> None:
    login_as(client, make_user("admin"))
    response = client.get("/verwaltung/protokoll/")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("page", ["99999999999999999999", "-5", "abc"])
def test_odd_page_numbers_never_fail(client: Any, make_user: Any, page: str) -> None:
    """A hand-edited ?page= gets a page, never a server error."""
    login_as(client, make_user("staff"))
    response = client.get(f"/verwaltung/protokoll/?page={page}")
    assert response.status_code == 200
