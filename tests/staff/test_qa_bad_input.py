"""QA: numbers no column can hold, odd digits and NUL characters in staff forms and lists.

Each of these answered 500 before (SQLite's OverflowError, PostgreSQL's integer range or its refusal
of NUL in text); now each gets a 4xx with a message and writes nothing.
"""

from __future__ import annotations

import html
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from kyffikus.extensions import db
from kyffikus.models import Category, Edition, Locality, Offer, Provider, User
from tests.conftest import post_form

HUGE = "99999999999999999999999"


def count(model: Any) -> int:
    """Rows of a model."""
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def page_text(response: Any) -> str:
    """The response's HTML with entities decoded."""
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def staff_client(client: FlaskClient, make_user: Any, login: Any) -> FlaskClient:
    """The test client logged in as staff (committed: a view's rollback keeps it)."""
    user = make_user("staff")
    db.session.commit()
    login(user)
    return client


@pytest.fixture
def offer(make_provider: Any, make_offer: Any) -> Offer:
    """An offer of a provider with one venue."""
    made = make_offer(make_provider(name="Kyffhäuser-Therme"), title="Familientag")
    db.session.commit()
    return made


def _offer_data(offer: Offer, **changes: str) -> dict[str, str]:
    data = {
        "title": offer.title,
        "edition_id": str(offer.edition_id),
        "category_id": str(offer.category_id),
        "discount_kind": "percent",
        "discount_value": "10",
        "redemption_limit": "per_day",
        "venues": str(offer.venues[0].id),
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"edition_id": HUGE}, "Bitte wählen Sie eine Ausgabe."),
        ({"edition_id": "-1"}, "Bitte wählen Sie eine Ausgabe."),
        ({"category_id": HUGE}, "Kategorie"),
        ({"venues": HUGE}, "Standort"),
        ({"discount_kind": "amount", "discount_value": "1e30"}, "höchstens 999.999,99 €"),
        ({"discount_kind": "amount", "discount_value": "1000000"}, "höchstens 999.999,99 €"),
        ({"min_age": HUGE}, "Diese Zahl ist zu groß."),
    ],
)
def test_offer_with_impossible_numbers_is_refused_and_unchanged(
    staff_client: FlaskClient, offer: Offer, changes: dict[str, str], message: str
) -> None:
    url = f"/verwaltung/angebote/{offer.id}/bearbeiten"
    response = post_form(staff_client, url, _offer_data(offer, title="Geändert", **changes))

    assert response.status_code == 422
    assert message in page_text(response)
    db.session.expire_all()
    assert db.session.get(Offer, offer.id).title == "Familientag"


@pytest.mark.parametrize("field", ["edition_id", "category_id"])
def test_offer_id_that_is_no_number_gets_a_german_message(
    staff_client: FlaskClient, offer: Offer, field: str
) -> None:
    url = f"/verwaltung/angebote/{offer.id}/bearbeiten"
    response = post_form(staff_client, url, _offer_data(offer, **{field: "abc"}))

    assert response.status_code == 422
    assert "Ungültige Auswahl" in page_text(response)


@pytest.mark.parametrize("value", [HUGE, "1.5e308", "-3000000000"])
def test_edition_number_beyond_the_column_is_refused(staff_client: FlaskClient, value: str) -> None:
    data = {
        "number": value,
        "name": "Familienpass 2028/29",
        "valid_from": "2028-01-01",
        "valid_until": "2029-12-31",
    }
    response = post_form(staff_client, "/verwaltung/auflagen/neu", data)

    assert response.status_code == 422
    assert "Diese Zahl ist zu groß." in page_text(response)
    assert count(Edition) == 0


def test_category_position_beyond_the_column_is_refused(staff_client: FlaskClient) -> None:
    data = {"name_de": "Natur", "name_en": "Nature", "position": HUGE}
    response = post_form(staff_client, "/verwaltung/kategorien/neu", data)

    assert response.status_code == 422
    assert "Diese Zahl ist zu groß." in page_text(response)
    assert count(Category) == 0


def test_invitation_for_a_provider_id_no_row_has_writes_no_account(
    staff_client: FlaskClient, outbox: Any
) -> None:
    before = count(User)
    data = {"email": "kasse@therme.example", "role": "provider", "provider_id": HUGE}
    response = post_form(staff_client, "/verwaltung/benutzer/einladen", data)

    assert 400 <= response.status_code < 500
    assert "Anbieter" in page_text(response)
    assert count(User) == before
    assert outbox.to("kasse@therme.example") == []


def test_role_change_to_a_provider_id_no_row_has(
    client: FlaskClient, make_user: Any, login: Any
) -> None:
    admin = make_user("admin")
    staff = make_user("staff")
    db.session.commit()
    login(admin)
    page = f"/verwaltung/benutzer/{staff.id}"
    response = post_form(
        client,
        f"{page}/rolle",
        {"role": "provider", "provider_id": HUGE},
        token_from=page,
        follow_redirects=True,
    )

    assert response.status_code == 200
    assert 'class="flash flash-error"' in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, staff.id).role == "staff"


def test_locality_with_a_municipality_id_no_row_has(
    staff_client: FlaskClient, localities: None
) -> None:
    db.session.commit()
    before = count(Locality)
    data = {"name": "Neudorf", "postal_code": "99706", "municipality_id": HUGE, "active": "y"}
    response = post_form(staff_client, "/verwaltung/orte/neu", data)

    assert 400 <= response.status_code < 500
    assert count(Locality) == before


@pytest.mark.parametrize(
    "url",
    [
        "/verwaltung/anbieter?page=",
        "/verwaltung/angebote?page=",
        "/verwaltung/benutzer?page=",
        "/verwaltung/antraege/?page=",
        "/verwaltung/angebote?auflage=",
        "/verwaltung/orte/neu?gemeinde=",
        "/verwaltung/benutzer/einladen?anbieter=",
        "/verwaltung/antraege/?ort=",
    ],
)
@pytest.mark.parametrize("value", ["²", "¹²", HUGE, "9" * 5000, "٣"])
def test_odd_numbers_in_the_address_never_break_a_list(
    staff_client: FlaskClient, url: str, value: str
) -> None:
    # "²".isdigit() is True but int("²") fails; a huge page overflowed the database's OFFSET.
    assert staff_client.get(url + value).status_code == 200


@pytest.mark.parametrize("value", ["²", HUGE])
def test_export_of_an_edition_that_is_no_number_is_400(
    staff_client: FlaskClient, value: str
) -> None:
    response = staff_client.get("/verwaltung/export/angebote.csv", query_string={"auflage": value})

    assert response.status_code in (400, 404)
    assert "Die Ausgabe ist eine Nummer." in page_text(response) or response.status_code == 404


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/verwaltung/anbieter/neu", {"name": "Therme\x00"}),
        ("/verwaltung/kategorien/neu", {"name_de": "Na\x00tur", "name_en": "Nature"}),
        ("/verwaltung/gemeinden/neu", {"name": "\x00", "active": "y"}),
    ],
)
def test_nul_characters_are_refused_with_a_message_and_nothing_written(
    staff_client: FlaskClient, url: str, data: dict[str, str]
) -> None:
    before = (count(Provider), count(Category))
    response = post_form(staff_client, url, data)

    assert response.status_code == 400
    assert "Steuerzeichen" in page_text(response)
    assert (count(Provider), count(Category)) == before


def test_nul_in_a_search_is_refused(staff_client: FlaskClient) -> None:
    response = staff_client.get("/verwaltung/anbieter", query_string={"q": "a\x00b"})

    assert response.status_code == 400
    assert "Steuerzeichen" in page_text(response)
