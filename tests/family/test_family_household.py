"""The household form: good names in any script are kept; bad input gets a message and writes nothing."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from kyffikus.extensions import db
from kyffikus.models import Adult, Application, Child, Household
from kyffikus.models.base import berlin_today
from tests.conftest import post_form
from tests.family.family_helpers import household_form, locality_value

URL = "/familie/haushalt"


def _count(model: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def family(localities, make_user, login) -> Any:
    user = make_user("family")
    db.session.commit()  # a view's rollback must not undo the fixture
    login(user)
    return user


def test_the_form_offers_the_localities_and_the_privacy_notice(client, family) -> None:
    response = client.get(URL)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<select id="locality" name="locality"' in html
    assert "Oldisleben (06578)" in html
    assert "Kannawurf (06578)" in html  # listed, so a family there is told why not
    assert 'href="/datenschutz"' in html
    assert html.count('name="children-') >= 12  # six child rows: name and birth date
    assert response.headers["Cache-Control"] == "no-store"


def test_saving_a_household_creates_a_draft_application(client, family) -> None:
    data = household_form(
        adults=[("Anna", "Muster"), ("Ben", "Muster")],
        children=[("Lina", "2019-05-17"), ("Tom", "17.03.2016")],
        phone="03632 123456",
    )
    response = post_form(client, URL, data)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/familie/antrag")
    household = db.session.scalars(select(Household).where(Household.user_id == family.id)).one()
    assert [(a.position, a.first_name, a.last_name) for a in household.adults] == [
        (1, "Anna", "Muster"),
        (2, "Ben", "Muster"),
    ]
    assert [(c.first_name, c.birth_date) for c in household.children] == [
        ("Tom", date(2016, 3, 17)),
        ("Lina", date(2019, 5, 17)),
    ]
    assert household.locality.name == "Sondershausen"
    assert household.phone == "03632 123456"
    assert household.consent_at is not None
    assert [a.status for a in household.applications] == ["draft"]


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("Hans-Peter", "Müller-Lüdenscheidt"),
        ("Ŝimon", "Ŝevĉenko"),
        ("Siobhán", "O'Brien"),
        ("Zoë", "D’Arcy"),
        ("Łukasz", "Żółć"),
        ("Jean-Luc", "de la Tour"),
        ("Мария", "Иванова"),
        ("J.", "Muster"),
    ],
)
def test_names_in_any_script_are_accepted_and_kept(client, family, first: str, last: str) -> None:
    response = post_form(
        client, URL, household_form(adults=[(first, last)], children=[(first, "2020-01-01")])
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    adult = db.session.scalars(select(Adult)).one()
    assert (adult.first_name, adult.last_name) == (first, last)


def test_decomposed_umlauts_are_stored_composed(client, family) -> None:
    response = post_form(client, URL, household_form(adults=[("Jo\u0308rg", "Mu\u0308ller")]))
    assert response.status_code == 302
    adult = db.session.scalars(select(Adult)).one()
    assert (adult.first_name, adult.last_name) == ("Jörg", "Müller")


def _future() -> str:
    return (berlin_today() + timedelta(days=1)).isoformat()


BAD_INPUT = [
    (
        "future birth date",
        {"children": [("Lina", "FUTURE")]},
        "Das Geburtsdatum liegt in der Zukunft.",
    ),
    (
        "birth before 1900",
        {"children": [("Lina", "1899-12-31")]},
        "Das Geburtsdatum darf nicht vor 1900 liegen.",
    ),
    (
        "impossible date",
        {"children": [("Lina", "31.02.2019")]},
        "Bitte geben Sie ein gültiges Datum an",
    ),
    ("child without date", {"children": [("Lina", "")]}, "Bitte geben Sie das Geburtsdatum an."),
    ("child without name", {"children": [("", "2019-05-17")]}, "Bitte geben Sie einen Namen an."),
    ("no child", {"children": []}, "Bitte nennen Sie mindestens ein Kind."),
    ("empty first name", {"adults": [("", "Muster")]}, "Bitte geben Sie einen Namen an."),
    ("empty surname", {"adults": [("Anna", "  ")]}, "Bitte geben Sie einen Namen an."),
    (
        "second adult half",
        {"adults": [("Anna", "Muster"), ("Ben", "")]},
        "Bitte geben Sie einen Namen an.",
    ),
    (
        "10,000 characters",
        {"adults": [("A" * 10_000, "Muster")]},
        "Ein Name darf höchstens 100 Zeichen lang sein.",
    ),
    ("digits in a name", {"adults": [("R2D2", "Muster")]}, "Ein Name darf nur Buchstaben"),
    ("markup in a name", {"adults": [("<script>", "Muster")]}, "Ein Name darf nur Buchstaben"),
    ("only punctuation", {"adults": [("--", "Muster")]}, "Ein Name muss Buchstaben enthalten."),
    ("short postal code", {"postal_code": "9970"}, "Die Postleitzahl hat fünf Ziffern."),
    ("no street", {"street": ""}, "Bitte geben Sie Straße und Hausnummer an."),
    ("no consent", {"consent": False}, "Bitte stimmen Sie der Datenschutzerklärung zu."),
    ("no locality", {"locality": ""}, "Bitte wählen Sie Ihren Wohnort aus der Liste."),
    ("unknown locality", {"locality": "999999"}, "Bitte wählen Sie Ihren Wohnort aus der Liste."),
    (
        "garbage locality",
        {"locality": "'; DROP TABLE household; --"},
        "Bitte wählen Sie Ihren Wohnort aus der Liste.",
    ),
    ("locality of another postal code", {"locality": "LOC:Artern"}, "passt nicht zu Artern"),
    (
        "06578 with Kannawurf",
        {"postal_code": "06578", "locality": "LOC:Kannawurf"},
        "Landkreis Sömmerda",
    ),
    ("postal code outside", {"postal_code": "10115"}, "gehört nicht zum Kyffhäuserkreis"),
    ("bad phone", {"phone": "call me maybe"}, "Bitte nur Ziffern"),
]


@pytest.mark.parametrize(("case", "changes", "message"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_gets_a_clear_message_and_writes_nothing(
    client, family, case: str, changes: dict[str, Any], message: str
) -> None:
    changes = dict(changes)
    if changes.get("children") and changes["children"][0][1] == "FUTURE":
        changes["children"] = [("Lina", _future())]
    if str(changes.get("locality", "")).startswith("LOC:"):
        changes["locality"] = locality_value(changes["locality"][4:])
    response = post_form(client, URL, household_form(**changes))
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in html
    assert "Bitte prüfen Sie Ihre Angaben" in html  # the error summary at the top
    assert (_count(Household), _count(Adult), _count(Child), _count(Application)) == (0, 0, 0, 0)


def test_06578_with_oldisleben_is_accepted(client, family) -> None:
    data = household_form(postal_code="06578", locality=locality_value("Oldisleben"))
    assert post_form(client, URL, data).status_code == 302


def test_add_child_shows_one_more_row_and_saves_nothing(client, family) -> None:
    data = household_form()
    data["add_child"] = "Weiteres Kind hinzufügen"
    response = post_form(client, URL, data)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'name="children-6-first_name"' in html
    assert 'value="Lina"' in html  # what was typed stays
    assert _count(Household) == 0


def test_more_children_than_rows(client, family) -> None:
    kids = [(f"Kind{chr(65 + i)}", f"201{i}-01-01") for i in range(8)]
    response = post_form(client, URL, household_form(children=kids))
    assert response.status_code == 302
    assert _count(Child) == 8


def test_the_saved_household_is_shown_for_editing(client, family) -> None:
    post_form(client, URL, household_form(adults=[("Ŝimon", "O'Brien")]))
    html = client.get(URL).get_data(as_text=True)
    assert "Ŝimon" in html
    assert "O&#39;Brien" in html
    response = post_form(
        client, URL, household_form(adults=[("Ŝimon", "O'Brien")], street="Markt 9")
    )
    assert response.status_code == 302
    assert db.session.scalars(select(Household)).one().street == "Markt 9"
    assert _count(Adult) == 1
    assert _count(Application) == 1  # still the one draft


def test_editing_is_locked_while_the_application_is_reviewed(client, family) -> None:
    post_form(client, URL, household_form())
    assert post_form(client, "/familie/antrag", {}).status_code == 302
    response = post_form(client, URL, household_form(street="Markt 9"))
    assert response.status_code == 409
    assert "wird gerade geprüft" in response.get_data(as_text=True)
    assert db.session.scalars(select(Household)).one().street == "Markt 8"


@pytest.mark.parametrize("role", ["provider", "staff"])
def test_only_families_have_a_household_page(
    client, localities, make_user, make_provider, login, role: str
) -> None:
    user = make_user(role, provider=make_provider() if role == "provider" else None)
    login(user)
    assert client.get(URL).status_code == 403


def test_anonymous_users_are_sent_to_the_login(client) -> None:
    response = client.get(URL)
    assert response.status_code == 302
    assert "/konto/anmelden" in response.headers["Location"]


def test_a_family_with_a_pass_is_told_edits_do_not_change_it(
    client, localities, family_with_pass, login
) -> None:
    household, _pass = family_with_pass()
    login(household.user)
    html = client.get(URL).get_data(as_text=True)
    assert "der Pass selbst bleibt, wie er ist" in html
