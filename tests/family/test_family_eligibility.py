"""Each eligibility rule at its boundary, the duplicate flag, and the age arithmetic."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models import Locality, OutsideLocality
from kyffikus.services.eligibility import (
    RULE_CHILD,
    RULE_RESIDENCE,
    age_on,
    check_eligibility,
    child_rule,
    normalise_street,
    possible_duplicate,
    residence_rule,
)
from kyffikus.services.passes import revoke_pass
from tests.family.family_helpers import years_ago

ON = date(2026, 6, 15)


def _locality(name: str, code: str | None = None) -> Locality:
    query = select(Locality).where(Locality.name == name)
    if code:
        query = query.where(Locality.postal_code == code)
    return db.session.scalars(query).one()


@pytest.mark.parametrize(
    ("born", "on", "minor"),
    [
        (years_ago(ON, 18, days=-1), ON, True),  # 17 years and 364 days
        (years_ago(ON, 18), ON, False),  # the 18th birthday is today
        (years_ago(ON, 18, days=1), ON, False),
        (ON, ON, True),  # born today
        (date(2008, 2, 29), date(2026, 2, 28), True),  # born 29 Feb: still 17 on 28 Feb
        (date(2008, 2, 29), date(2026, 3, 1), False),  # ... and 18 on 1 March
        (date(2008, 2, 29), date(2024, 2, 29), True),
        (
            date(2010, 2, 28),
            date(2028, 2, 29),
            False,
        ),  # a leap year's 29 Feb after the 28 Feb birthday
    ],
)
def test_child_under_18_on_the_day_of_the_application(
    app, born: date, on: date, minor: bool
) -> None:
    result = child_rule([born], on)
    assert result.rule == RULE_CHILD
    assert result.ok is minor
    if not minor:
        assert "kein Kind unter 18" in result.message


def test_a_child_born_after_the_day_does_not_count(app) -> None:
    assert child_rule([date(2026, 6, 16)], ON).ok is False
    assert child_rule([], ON).message == "Es ist kein Kind angegeben."


@pytest.mark.parametrize(
    ("born", "on", "age"),
    [
        (date(2008, 6, 15), date(2026, 6, 14), 17),
        (date(2008, 6, 15), date(2026, 6, 15), 18),
        (date(2008, 2, 29), date(2026, 2, 28), 17),
        (date(2008, 2, 29), date(2026, 3, 1), 18),
        (date(2020, 1, 1), date(2020, 12, 31), 0),
    ],
)
def test_age_on(born: date, on: date, age: int) -> None:
    assert age_on(born, on) == age


def test_one_minor_among_adult_children_is_enough(app) -> None:
    assert child_rule([date(1990, 1, 1), years_ago(ON, 18, days=-1)], ON).ok


@pytest.mark.parametrize(
    ("postal_code", "name", "ok", "words"),
    [
        ("99706", "Sondershausen", True, "gehört zum Kyffhäuserkreis"),
        ("06578", "Oldisleben", True, "Oldisleben"),
        (
            "99706",
            "Artern",
            False,
            "passt nicht zu Artern",
        ),  # postal code and locality do not match
        ("06556", "Oldisleben", False, "Postleitzahl 06578"),
        ("10115", "Sondershausen", False, "gehört nicht zum Kyffhäuserkreis"),
    ],
)
def test_residence_needs_postal_code_and_locality_of_the_table(
    app, localities, postal_code: str, name: str, ok: bool, words: str
) -> None:
    result = residence_rule(postal_code, _locality(name))
    assert result.rule == RULE_RESIDENCE
    assert result.ok is ok
    assert words in result.message


@pytest.mark.parametrize("name", ["Kannawurf", "Bilzingsleben"])
def test_06578_outside_the_district_names_its_district(app, localities, name: str) -> None:
    outside = db.session.scalars(select(OutsideLocality).where(OutsideLocality.name == name)).one()
    result = residence_rule("06578", outside)
    assert not result.ok
    assert name in result.message
    assert "Landkreis Sömmerda" in result.message


def test_no_locality_or_an_inactive_one_fails(app, localities) -> None:
    assert not residence_rule("99706", None).ok
    loc = _locality("Sondershausen")
    loc.active = False
    db.session.flush()
    result = residence_rule("99706", loc)
    assert not result.ok
    assert "nicht als Ort" in result.message


def test_check_eligibility_reports_every_rule(app, localities, make_family) -> None:
    household = make_family(children=[date(2000, 1, 1)])
    result = check_eligibility(household, ON)
    assert [r.rule for r in result.results] == [RULE_RESIDENCE, RULE_CHILD]
    assert not result.eligible
    assert [r.rule for r in result.failed] == [RULE_CHILD]
    stored = result.as_json()
    assert stored[1] == {"rule": RULE_CHILD, "ok": False, "message": result.failed[0].message}


def test_mismatch_on_a_stored_household(app, localities, make_family) -> None:
    household = make_family()
    household.postal_code = "06556"  # e.g. staff edited the locality table since
    result = check_eligibility(household, ON)
    assert not result.eligible
    assert "passt nicht zu Sondershausen" in result.failed[0].message


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Hauptstraße 12", "hauptstr. 12", True),
        ("Hauptstrasse 12", "Hauptstraße  12", True),
        ("Markt 8", "Markt8", True),
        ("Markt 8", "Markt 9", False),
    ],
)
def test_normalise_street(a: str, b: str, same: bool) -> None:
    assert (normalise_street(a) == normalise_street(b)) is same


def test_possible_duplicate_same_adult_same_address(
    app, localities, family_with_pass, make_family
) -> None:
    first, pass_ = family_with_pass(adults=[("Anna", "Muster")], street="Hauptstraße 12")
    same = make_family(adults=[("anna", "MUSTER"), ("Max", "Muster")], street="Hauptstr. 12")
    other_street = make_family(adults=[("Anna", "Muster")], street="Hauptstraße 14")
    other_person = make_family(adults=[("Berta", "Muster")], street="Hauptstraße 12")
    assert possible_duplicate(same)
    assert not possible_duplicate(other_street)
    assert not possible_duplicate(other_person)
    assert not possible_duplicate(first)  # its own pass is not a duplicate
    revoke_pass(pass_, None, reason="Test")
    assert not possible_duplicate(same)  # only active passes count


def test_rules_in_plain_words_for_the_home_page(app) -> None:
    from kyffikus.services.eligibility import rules_in_plain_words

    with app.test_request_context():
        text = " ".join(rules_in_plain_words())
    assert "Kyffhäuserkreis" in text
    assert "Oldisleben" in text
    assert "18 Jahre" in text
