"""Staff pass administration: search, the pass's page and history, revoke, replace and extend
(each in the history and the audit log), and who may use these pages."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models import AuditEntry, Pass, PassEvent, Redemption
from tests.conftest import login_as, post_form


@pytest.fixture
def staff(client: FlaskClient, make_user: Any) -> Any:
    """A staff member, logged in."""
    user = make_user("staff", email="sachbearbeitung@kyffhaeuser.example")
    login_as(client, user)
    return user


@pytest.fixture
def family_pass(localities: None, make_family: Any, make_pass: Any, make_edition: Any) -> Pass:
    """An active pass of a family in Artern with two adults and two children (one of them 19)."""
    household = make_family(
        adults=[("Jana", "Kyffhäuser"), ("Tom", "Kyffhäuser")],
        children=[date(2018, 4, 2), date(2007, 1, 1)],
        postal_code="06556",
        locality="Artern",
    )
    edition = make_edition(
        valid_from=date(2026, 1, 1), valid_until=date(2027, 12, 31), name="4. Ausgabe"
    )
    pass_ = make_pass(household, edition=edition)
    # Committed (inside the test's outer transaction), so a view's rollback after a refused
    # action keeps the test's data.
    db.session.commit()
    return pass_


def _audit(action: str, pass_: Pass) -> list[AuditEntry]:
    return list(
        db.session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == action,
                AuditEntry.object_type == "pass",
                AuditEntry.object_id == str(pass_.id),
            )
        )
    )


# ---- search --------------------------------------------------------------------------------------


def _search(client: FlaskClient, query: str) -> Any:
    """Search as staff do: the query is POSTed (never in a URL), the results shown after a redirect."""
    response = post_form(client, "/verwaltung/paesse/", {"q": query})
    assert response.status_code == 302
    assert response.headers["Location"] == "/verwaltung/paesse/"
    return client.get(response.headers["Location"])


def test_a_link_with_a_postal_code_searches_and_drops_it_from_the_url(
    client: FlaskClient, staff: Any, family_pass: Pass
) -> None:
    response = client.get("/verwaltung/paesse/?q=06556")
    assert response.status_code == 302
    assert response.headers["Location"] == "/verwaltung/paesse/"
    assert family_pass.grouped_number in client.get("/verwaltung/paesse/").get_data(as_text=True)


def test_search_pages_through_many_results(
    client: FlaskClient, staff: Any, localities: None, make_family: Any, make_pass: Any
) -> None:
    for i in range(30):
        make_pass(make_family(adults=[("Kim", f"Seitenweise{i}")], with_user=False))
    first = _search(client, "Seitenweise").get_data(as_text=True)
    assert "30 Pässe gefunden" in first
    assert first.count("Seitenweise") >= 25
    second = client.get("/verwaltung/paesse/?page=2").get_data(as_text=True)
    assert "30 Pässe gefunden" in second
    assert 'aria-current="page" aria-label="Seite 2"' in second


@pytest.mark.parametrize(
    "how",
    ["grouped", "plain", "lower", "prefix", "surname", "full name", "postal code", "spaces"],
)
def test_search_finds_the_pass(
    client: FlaskClient, staff: Any, family_pass: Pass, how: str
) -> None:
    number = family_pass.number
    query = {
        "grouped": family_pass.grouped_number,
        "plain": number,
        "lower": number.lower(),
        "prefix": number[:5],
        "surname": "kyffhäuser",
        "full name": "Jana Kyffhäuser",
        "postal code": "06556",
        "spaces": f" {number[:4]} {number[4:8]} {number[8:]} ",
    }[how]
    response = _search(client, query)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f"/verwaltung/paesse/{family_pass.id}" in html
    assert "Jana Kyffhäuser" in html


def test_search_without_a_match_says_so_and_is_audited(
    client: FlaskClient, staff: Any, family_pass: Pass
) -> None:
    html = _search(client, "Niemand Unbekannt").get_data(as_text=True)
    assert "Kein Pass passt zu dieser Suche" in html
    assert f"/verwaltung/paesse/{family_pass.id}" not in html
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "pass.search")).one()
    assert entry.actor_id == staff.id
    assert entry.details == {"query": "Niemand Unbekannt", "page": 1, "results": 0}


def test_search_does_not_match_other_families(
    client: FlaskClient, staff: Any, family_pass: Pass, make_family: Any, make_pass: Any
) -> None:
    other = make_pass(
        make_family(adults=[("Olga", "Anders")], postal_code="99706", locality="Sondershausen")
    )
    html = _search(client, "Kyffhäuser").get_data(as_text=True)
    assert f'/verwaltung/paesse/{family_pass.id}"' in html
    assert f'/verwaltung/paesse/{other.id}"' not in html


# ---- the pass's page -----------------------------------------------------------------------------


def test_pass_page_shows_holders_children_validity_status_and_history(
    client: FlaskClient, staff: Any, family_pass: Pass, make_provider: Any, make_offer: Any
) -> None:
    provider = make_provider(name="Erlebnispark auf dem Possen")
    offer = make_offer(provider, title="Familienkarte 50 % günstiger")
    db.session.add(
        Redemption(
            pass_id=family_pass.id,
            offer_id=offer.id,
            provider_id=provider.id,
            adults=2,
            children=1,
            redeemed_at=datetime(2026, 7, 4, 10, tzinfo=UTC),
            redeemed_on=date(2026, 7, 4),
            limit_key="2026-07-04",
        )
    )
    db.session.flush()
    response = client.get(f"/verwaltung/paesse/{family_pass.id}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert family_pass.grouped_number in html
    assert "Jana Kyffhäuser, Tom Kyffhäuser" in html
    assert "Gültig" in html
    assert "31. Dezember 2027" in html
    # One child under 18 (the other is 19): the count, and the age in years, never the birth date.
    assert "2018" not in html
    assert "Ausgestellt" in html
    assert "Einlösung: Familienkarte 50 % günstiger" in html
    assert "Erlebnispark auf dem Possen" in html
    assert "04.07.26" in html or "4.7.26" in html or "04.07.2026" in html
    # Looking at the pass is a staff view of personal data: audited.
    views = _audit("pass.view", family_pass)
    assert len(views) == 1
    assert views[0].actor_id == staff.id


def test_unknown_pass_is_404(client: FlaskClient, staff: Any) -> None:
    assert client.get("/verwaltung/paesse/999999").status_code == 404


# ---- revoke, replace, extend ---------------------------------------------------------------------


def test_revoke_shows_in_history_and_audit_log(
    client: FlaskClient, staff: Any, family_pass: Pass
) -> None:
    url = f"/verwaltung/paesse/{family_pass.id}/sperren"
    response = post_form(client, url, {"reason": "Verlust gemeldet", "confirm": "y"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/verwaltung/paesse/{family_pass.id}")
    db.session.refresh(family_pass)
    assert family_pass.status == "revoked"
    page = client.get(f"/verwaltung/paesse/{family_pass.id}").get_data(as_text=True)
    assert "ist gesperrt" in page  # the flash message
    assert "Gesperrt" in page
    assert "Verlust gemeldet" in page
    assert staff.email in page
    assert len(_audit("pass.revoke", family_pass)) == 1
    log = client.get(
        "/verwaltung/protokoll/",
        query_string={"object_type": "pass", "object_id": str(family_pass.id)},
    ).get_data(as_text=True)
    assert "pass.revoke" in log
    assert "Verlust gemeldet" in log
    assert "active → revoked" in log


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"reason": "", "confirm": "y"}, "Bitte geben Sie einen Grund an."),
        ({"reason": "   ", "confirm": "y"}, "Bitte geben Sie einen Grund an."),
        ({"reason": "Verlust"}, "Bitte bestätigen Sie die Sperrung."),
        ({"reason": "x" * 2001, "confirm": "y"}, "2000"),
    ],
)
def test_revoke_needs_a_reason_and_a_confirmation(
    client: FlaskClient, staff: Any, family_pass: Pass, data: dict[str, str], message: str
) -> None:
    response = post_form(client, f"/verwaltung/paesse/{family_pass.id}/sperren", data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    db.session.refresh(family_pass)
    assert family_pass.status == "active"
    assert _audit("pass.revoke", family_pass) == []


def test_the_error_summary_names_the_problem(
    client: FlaskClient, staff: Any, family_pass: Pass
) -> None:
    html = post_form(
        client, f"/verwaltung/paesse/{family_pass.id}/sperren", {"reason": ""}
    ).get_data(as_text=True)
    assert "Grund der Sperrung: Bitte geben Sie einen Grund an." in html
    assert "Bitte bestätigen Sie die Sperrung." in html


def test_replace_shows_in_history_and_audit_log(
    client: FlaskClient, staff: Any, family_pass: Pass
) -> None:
    response = post_form(
        client,
        f"/verwaltung/paesse/{family_pass.id}/ersetzen",
        {"reason": "Pass verloren", "confirm": "y"},
    )
    assert response.status_code == 302
    new = db.session.scalars(select(Pass).where(Pass.replaces_id == family_pass.id)).one()
    assert response.headers["Location"].endswith(f"/verwaltung/paesse/{new.id}")
    db.session.refresh(family_pass)
    assert family_pass.status == "replaced"
    assert new.status == "active"
    assert new.number != family_pass.number
    assert new.token != family_pass.token
    new_page = client.get(f"/verwaltung/paesse/{new.id}").get_data(as_text=True)
    assert "ausgestellt; der Pass" in new_page  # the flash message
    assert f"ersetzt den Pass Nr. {family_pass.id}" in new_page
    old_page = client.get(f"/verwaltung/paesse/{family_pass.id}").get_data(as_text=True)
    assert "Ersetzt" in old_page
    assert "Pass verloren" in old_page
    assert new.grouped_number in old_page
    assert len(_audit("pass.replace", family_pass)) == 1
    log = client.get("/verwaltung/protokoll/", query_string={"person": "sachbearbeitung"}).get_data(
        as_text=True
    )
    assert "pass.replace" in log


def test_extend_to_the_next_edition_shows_in_history_and_audit_log(
    client: FlaskClient, staff: Any, family_pass: Pass, make_edition: Any
) -> None:
    make_edition(valid_from=date(2028, 1, 1), valid_until=date(2029, 12, 31), name="5. Ausgabe")
    detail = client.get(f"/verwaltung/paesse/{family_pass.id}").get_data(as_text=True)
    assert "verlängern" in detail
    response = post_form(
        client, f"/verwaltung/paesse/{family_pass.id}/verlaengern", {"confirm": "y"}
    )
    assert response.status_code == 302
    db.session.refresh(family_pass)
    assert family_pass.valid_until == date(2029, 12, 31)
    page = client.get(f"/verwaltung/paesse/{family_pass.id}").get_data(as_text=True)
    assert "Verlängert" in page
    assert "5. Ausgabe" in page
    assert "gültig bis:" in page
    events = [
        e.kind
        for e in db.session.scalars(select(PassEvent).where(PassEvent.pass_id == family_pass.id))
    ]
    assert "extended" in events
    entries = _audit("pass.extend", family_pass)
    assert len(entries) == 1
    assert entries[0].details["valid_until"] == {"old": "2027-12-31", "new": "2029-12-31"}
    log = client.get(
        "/verwaltung/protokoll/",
        query_string={"object_type": "pass", "object_id": str(family_pass.id)},
    ).get_data(as_text=True)
    assert "pass.extend" in log
    assert "2027-12-31 → 2029-12-31" in log


def test_extend_without_a_next_edition_is_refused(
    client: FlaskClient, staff: Any, family_pass: Pass
) -> None:
    response = client.post(
        f"/verwaltung/paesse/{family_pass.id}/verlaengern",
        data={"confirm": "y", "csrf_token": _token(client, family_pass)},
    )
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "keine nächste Ausgabe" in page
    db.session.refresh(family_pass)
    assert family_pass.valid_until == date(2027, 12, 31)


def _token(client: FlaskClient, pass_: Pass) -> str:
    from tests.conftest import csrf_token

    return csrf_token(client, f"/verwaltung/paesse/{pass_.id}")


def test_a_revoked_pass_can_be_neither_replaced_nor_revoked_again(
    client: FlaskClient, staff: Any, family_pass: Pass
) -> None:
    post_form(
        client, f"/verwaltung/paesse/{family_pass.id}/sperren", {"reason": "Betrug", "confirm": "y"}
    )
    token = _token(client, family_pass)
    for action in ("ersetzen", "sperren"):
        response = client.post(
            f"/verwaltung/paesse/{family_pass.id}/{action}",
            data={"reason": "noch einmal", "confirm": "y", "csrf_token": token},
        )
        assert response.status_code == 302
    assert (
        db.session.scalars(select(Pass).where(Pass.replaces_id == family_pass.id)).first() is None
    )
    assert len(_audit("pass.revoke", family_pass)) == 1


def test_get_changes_nothing(client: FlaskClient, staff: Any, family_pass: Pass) -> None:
    for action in ("sperren", "ersetzen"):
        assert client.get(f"/verwaltung/paesse/{family_pass.id}/{action}").status_code == 200
    db.session.refresh(family_pass)
    assert family_pass.status == "active"


def test_post_without_csrf_token_is_refused(
    client: FlaskClient, staff: Any, family_pass: Pass
) -> None:
    response = client.post(
        f"/verwaltung/paesse/{family_pass.id}/sperren", data={"reason": "Verlust", "confirm": "y"}
    )
    assert response.status_code == 400
    db.session.refresh(family_pass)
    assert family_pass.status == "active"


# ---- who may ---------------------------------------------------------------------------------------

PASS_ROUTES = [
    ("GET", "/verwaltung/paesse/"),
    ("POST", "/verwaltung/paesse/"),
    ("GET", "/verwaltung/paesse/{id}"),
    ("GET", "/verwaltung/paesse/{id}/sperren"),
    ("POST", "/verwaltung/paesse/{id}/sperren"),
    ("GET", "/verwaltung/paesse/{id}/ersetzen"),
    ("POST", "/verwaltung/paesse/{id}/ersetzen"),
    ("GET", "/verwaltung/paesse/{id}/verlaengern"),
    ("POST", "/verwaltung/paesse/{id}/verlaengern"),
]


@pytest.mark.parametrize(("method", "url"), PASS_ROUTES)
@pytest.mark.parametrize("role", ["family", "provider"])
def test_families_and_providers_are_refused(
    app: Any,
    client: FlaskClient,
    make_user: Any,
    make_provider: Any,
    family_pass: Pass,
    method: str,
    url: str,
    role: str,
) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    try:
        user = make_user(role, provider=make_provider() if role == "provider" else None)
        login_as(client, user)
        response = client.open(
            url.format(id=family_pass.id), method=method, data={"reason": "x", "confirm": "y"}
        )
        assert response.status_code == 403
    finally:
        app.config["WTF_CSRF_ENABLED"] = True
    db.session.refresh(family_pass)
    assert family_pass.status == "active"


@pytest.mark.parametrize(("method", "url"), [r for r in PASS_ROUTES if r[0] == "GET"])
def test_anonymous_is_sent_to_login(
    client: FlaskClient, family_pass: Pass, method: str, url: str
) -> None:
    response = client.open(url.format(id=family_pass.id), method=method)
    assert response.status_code == 302
    assert "/konto/" in response.headers["Location"]
