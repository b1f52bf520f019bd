"""Who may hold a Kyffikus pass: every eligibility rule lives in this one module.

The rules (explained in plain words on the home page):
- residence: the household's main residence is a locality of the Kyffhäuserkreis; the postal code
  and the locality must match the Locality table (06578 only with Oldisleben: Bilzingsleben and
  Kannawurf share the code but belong to the Landkreis Sömmerda);
- child_under_18: at least one child is under 18 on the day of the application.

A possible duplicate (an adult who already holds an active pass at the same address) does not
make a household ineligible; it is flagged for staff.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from flask_babel import format_date
from flask_babel import gettext as _
from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models.catalogue import Locality, OutsideLocality
from kyffikus.models.families import Household
from kyffikus.models.passes import Pass

if TYPE_CHECKING:
    from collections.abc import Iterable

ADULT_AGE = 18

RULE_RESIDENCE = "residence"
RULE_CHILD = "child_under_18"
RULES = (RULE_RESIDENCE, RULE_CHILD)


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule: its id, whether it is met, and a localised explanation."""

    rule: str
    ok: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON form stored with an application."""
        return {"rule": self.rule, "ok": self.ok, "message": self.message}


@dataclass
class EligibilityResult:
    """Every rule's outcome for one household on one day."""

    on: date
    results: list[RuleResult] = field(default_factory=list)

    @property
    def eligible(self) -> bool:
        """True when every rule is met."""
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[RuleResult]:
        """The rules that are not met."""
        return [r for r in self.results if not r.ok]

    def rule(self, rule_id: str) -> RuleResult | None:
        """One rule's result by id."""
        return next((r for r in self.results if r.rule == rule_id), None)

    def as_json(self) -> list[dict[str, Any]]:
        """The list stored in Application.eligibility."""
        return [r.as_dict() for r in self.results]


def rules_in_plain_words() -> list[str]:
    """The rules as a family should read them (for the home page), localised."""
    return [
        _(
            "Ihr Hauptwohnsitz liegt im Kyffhäuserkreis. Postleitzahl und Ort müssen zusammenpassen; "
            "mit der Postleitzahl 06578 gehört nur Oldisleben zum Kreis (Bilzingsleben und Kannawurf "
            "liegen im Landkreis Sömmerda)."
        ),
        _(
            "Zu Ihrem Haushalt gehört mindestens ein Kind, das am Tag des Antrags jünger als 18 Jahre ist."
        ),
        _("Ein Einkommensnachweis ist nicht nötig."),
    ]


def age_on(birth: date, on: date) -> int:
    """Age in completed years on a day.

    A child born on 29 February turns a year older on 1 March in years without that day
    (the common reading of § 188 (3) BGB), so it is 17 on 28 February of its 18th year.
    """
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def is_minor(birth: date, on: date) -> bool:
    """Whether a child counts on the pass that day: born, and not yet 18."""
    return birth <= on and age_on(birth, on) < ADULT_AGE


def residence_rule(postal_code: str, locality: Locality | OutsideLocality | None) -> RuleResult:
    """Main residence in the district: the postal code and the locality must match the table."""
    code = (postal_code or "").strip()
    if isinstance(locality, OutsideLocality):
        return RuleResult(
            RULE_RESIDENCE,
            False,
            _(
                "%(locality)s (%(postal_code)s) gehört zum %(district)s, nicht zum Kyffhäuserkreis. "
                "Den Familienpass Kyffikus erhalten Familien mit Hauptwohnsitz im Kyffhäuserkreis.",
                locality=locality.name,
                postal_code=locality.postal_code,
                district=locality.district,
            ),
        )
    if locality is None:
        if code and not _district_has_postal_code(code):
            return RuleResult(
                RULE_RESIDENCE,
                False,
                _(
                    "Die Postleitzahl %(postal_code)s gehört nicht zum Kyffhäuserkreis. Den Familienpass "
                    "erhalten Familien mit Hauptwohnsitz im Kyffhäuserkreis.",
                    postal_code=code,
                ),
            )
        return RuleResult(
            RULE_RESIDENCE,
            False,
            _("Bitte wählen Sie Ihren Wohnort aus der Liste der Orte im Kyffhäuserkreis."),
        )
    if not locality.active or not locality.municipality.active:
        return RuleResult(
            RULE_RESIDENCE,
            False,
            _(
                "%(locality)s ist derzeit nicht als Ort im Kyffhäuserkreis verzeichnet.",
                locality=locality.name,
            ),
        )
    if locality.postal_code != code:
        if not _district_has_postal_code(code):
            message = _(
                "Die Postleitzahl %(postal_code)s gehört nicht zum Kyffhäuserkreis. %(locality)s hat die "
                "Postleitzahl %(expected)s. Bitte prüfen Sie Postleitzahl und Ort.",
                postal_code=code,
                locality=locality.name,
                expected=locality.postal_code,
            )
        else:
            message = _(
                "Die Postleitzahl %(postal_code)s passt nicht zu %(locality)s (Postleitzahl %(expected)s). "
                "Bitte prüfen Sie Postleitzahl und Ort.",
                postal_code=code,
                locality=locality.name,
                expected=locality.postal_code,
            )
        return RuleResult(RULE_RESIDENCE, False, message)
    return RuleResult(
        RULE_RESIDENCE,
        True,
        _(
            "Hauptwohnsitz in %(locality)s (%(postal_code)s): gehört zum Kyffhäuserkreis.",
            locality=locality.name,
            postal_code=code,
        ),
    )


def child_rule(birth_dates: Iterable[date], on: date) -> RuleResult:
    """At least one child under 18 on the day of the application."""
    births = list(birth_dates)
    if not births:
        return RuleResult(RULE_CHILD, False, _("Es ist kein Kind angegeben."))
    minors = [b for b in births if is_minor(b, on)]
    if minors:
        return RuleResult(
            RULE_CHILD,
            True,
            _(
                "Am %(date)s ist mindestens ein Kind unter 18 Jahre alt.",
                date=format_date(on, "medium"),
            ),
        )
    return RuleResult(
        RULE_CHILD,
        False,
        _(
            "Am %(date)s ist kein Kind unter 18 Jahre alt. Den Familienpass erhalten Familien mit "
            "mindestens einem Kind unter 18 Jahren.",
            date=format_date(on, "medium"),
        ),
    )


def check_eligibility(household: Household, on: date) -> EligibilityResult:
    """Check every rule for the household on the given day (the day of the application)."""
    result = EligibilityResult(on=on)
    result.results.append(residence_rule(household.postal_code, household.locality))
    result.results.append(child_rule((c.birth_date for c in household.children), on))
    return result


def _district_has_postal_code(code: str) -> bool:
    return (
        db.session.scalar(
            select(Locality.id)
            .where(Locality.postal_code == code, Locality.active.is_(True))
            .limit(1)
        )
        is not None
    )


def normalise_street(street: str) -> str:
    """A street for comparison: case-folded, 'Straße'/'Strasse'/'Str.' alike, spaces collapsed."""
    text = " ".join((street or "").casefold().replace("ß", "ss").split())
    text = text.replace("strasse", "str").replace("str.", "str")
    return re.sub(r"(?<=\D)(?=\d)", " ", text).replace("  ", " ").strip()


def possible_duplicate(household: Household) -> bool:
    """Whether an adult of the household already holds an active pass at the same address."""
    names = {
        (a.first_name.casefold().strip(), a.last_name.casefold().strip()) for a in household.adults
    }
    if not names:
        return False
    street = normalise_street(household.street)
    query = (
        select(Pass)
        .join(Household, Pass.household_id == Household.id)
        .where(Pass.status == "active", Household.postal_code == household.postal_code)
    )
    if household.id is not None:
        query = query.where(Household.id != household.id)
    for other in db.session.scalars(query):
        if other.household is None or normalise_street(other.household.street) != street:
            continue
        for holder in other.holders or []:
            key = (
                str(holder.get("first_name", "")).casefold().strip(),
                str(holder.get("last_name", "")).casefold().strip(),
            )
            if key in names:
                return True
    return False
