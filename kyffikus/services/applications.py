"""Households and applications: save, submit, withdraw, approve, reject, counter entry, queue.

Lifecycle of an application: draft -> submitted -> approved | rejected | withdrawn.
Approving issues the pass in the same transaction. The application row is locked first
(FOR UPDATE; a no-op on SQLite) and its status checked, and Pass.application_id is UNIQUE, so
approving twice, or approving while someone rejects, never yields two passes.
"""

from __future__ import annotations

import logging
import smtplib
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from sqlalchemy import Select, func, select

from kyffikus.extensions import db
from kyffikus.models.base import berlin_today, utcnow
from kyffikus.models.catalogue import Locality, Municipality, OutsideLocality
from kyffikus.models.families import Adult, Application, Child, Household
from kyffikus.models.passes import Pass
from kyffikus.services import Conflict, DomainError
from kyffikus.services.audit import record
from kyffikus.services.eligibility import (
    EligibilityResult,
    check_eligibility,
    possible_duplicate,
    residence_rule,
)
from kyffikus.services.passes import issue_pass
from kyffikus.services.settings import get_setting

if TYPE_CHECKING:
    from kyffikus.models.people import User

log = logging.getLogger("kyffikus.applications")

MAX_NAME = 100
MAX_STREET = 200
MAX_PHONE = 40
MAX_REASON = 2000
MAX_CHILDREN = 30  # the redemption table's check constraint allows up to 30 children
MAX_ADULTS = 2
EARLIEST_BIRTH = date(1900, 1, 1)
OUTSIDE_PREFIX = "a"  # locality choices: "<id>" for a Locality, "a<id>" for an OutsideLocality
_NAME_PUNCTUATION = set(" -'’.")


class NotEligible(DomainError):
    """The household does not meet every eligibility rule; `result` says which and why."""

    code = "not_eligible"
    status = 422

    def __init__(self, result: EligibilityResult) -> None:
        super().__init__(" ".join(r.message for r in result.failed))
        self.result = result


@dataclass
class HouseholdInput:
    """What a household form holds, already shaped (names stripped, dates parsed)."""

    adults: list[tuple[str, str]]
    children: list[tuple[str, date]]
    street: str
    postal_code: str
    locality: str
    phone: str | None = None
    consent: bool = False
    errors: dict[str, str] = field(default_factory=dict)


# ---- validation shared by the forms and the services -----------------------------------------


def clean_name(text: str | None) -> str:
    """Normalise a name for storage: NFC, surrounding and repeated spaces removed."""
    return " ".join(unicodedata.normalize("NFC", text or "").split())


def name_problem(text: str | None) -> str | None:
    """Why a first name or surname cannot be used, or None (any script; - ' . and spaces allowed)."""
    name = clean_name(text)
    if not name:
        return _("Bitte geben Sie einen Namen an.")
    if len(name) > MAX_NAME:
        return _("Ein Name darf höchstens %(max)d Zeichen lang sein.", max=MAX_NAME)
    letters = 0
    for char in name:
        category = unicodedata.category(char)
        if category.startswith("L"):
            letters += 1
        elif category.startswith("M") or char in _NAME_PUNCTUATION:
            continue
        else:
            return _(
                "Ein Name darf nur Buchstaben, Leerzeichen, Bindestriche, Apostrophe und Punkte enthalten."
            )
    if letters == 0:
        return _("Ein Name muss Buchstaben enthalten.")
    return None


def birth_date_problem(born: date | None, today: date | None = None) -> str | None:
    """Why a child's birth date cannot be right, or None."""
    today = today or berlin_today()
    if born is None:
        return _("Bitte geben Sie das Geburtsdatum an.")
    if born > today:
        return _("Das Geburtsdatum liegt in der Zukunft.")
    if born < EARLIEST_BIRTH:
        return _("Das Geburtsdatum darf nicht vor 1900 liegen.")
    return None


def locality_choices() -> dict[str, list[tuple[str, str]]]:
    """The locality <select>'s options grouped by postal code, district localities first.

    Localities of other districts that share a postal code (06578) are listed too, so a family
    living there can say so and is told why the pass is not for them.
    """
    groups: dict[str, list[tuple[str, str]]] = {}
    rows = db.session.execute(
        select(Locality.id, Locality.name, Locality.postal_code)
        .join(Municipality)
        .where(Locality.active.is_(True), Municipality.active.is_(True))
        .order_by(Locality.postal_code, Locality.name)
    )
    for loc_id, name, code in rows:
        groups.setdefault(code, []).append((str(loc_id), name))
    for out in db.session.scalars(
        select(OutsideLocality).order_by(OutsideLocality.postal_code, OutsideLocality.name)
    ):
        groups.setdefault(out.postal_code, []).append((f"{OUTSIDE_PREFIX}{out.id}", out.name))
    return dict(sorted(groups.items()))


def resolve_locality(choice: str | None) -> Locality | OutsideLocality | None:
    """The locality a <select> value names, or None when it names none."""
    choice = (choice or "").strip()
    if choice.startswith(OUTSIDE_PREFIX) and choice[1:].isdecimal() and len(choice) < 12:
        return db.session.get(OutsideLocality, int(choice[1:]))
    if choice.isdecimal() and len(choice) < 12:
        return db.session.get(Locality, int(choice))
    return None


def locality_choice_value(household: Household) -> str:
    """The <select> value for a household's stored locality."""
    return str(household.locality_id) if household.locality_id else ""


def validate_household(data: HouseholdInput, *, today: date | None = None) -> Locality:
    """Check a household fully before anything is written; raise DomainError on the first problem."""
    adults = [
        (clean_name(f), clean_name(s)) for f, s in data.adults if clean_name(f) or clean_name(s)
    ]
    if not adults:
        raise DomainError(_("Bitte nennen Sie mindestens einen Erwachsenen."), field="adults")
    if len(adults) > MAX_ADULTS:
        raise DomainError(_("Auf dem Pass stehen höchstens zwei Erwachsene."), field="adults")
    for first, last in adults:
        problem = name_problem(first) or name_problem(last)
        if problem:
            raise DomainError(problem, field="adults")
    if not data.children:
        raise DomainError(_("Bitte nennen Sie mindestens ein Kind."), field="children")
    if len(data.children) > MAX_CHILDREN:
        raise DomainError(
            _("Bitte nennen Sie höchstens %(max)d Kinder.", max=MAX_CHILDREN), field="children"
        )
    for first, born in data.children:
        problem = name_problem(first) or birth_date_problem(born, today)
        if problem:
            raise DomainError(problem, field="children")
    street = " ".join((data.street or "").split())
    if not street:
        raise DomainError(_("Bitte geben Sie Straße und Hausnummer an."), field="street")
    if len(street) > MAX_STREET:
        raise DomainError(
            _("Die Angabe ist zu lang (höchstens %(max)d Zeichen).", max=MAX_STREET), field="street"
        )
    code = (data.postal_code or "").strip()
    if len(code) != 5 or not code.isascii() or not code.isdigit():
        raise DomainError(_("Die Postleitzahl hat fünf Ziffern."), field="postal_code")
    if data.phone and len(data.phone) > MAX_PHONE:
        raise DomainError(_("Die Telefonnummer ist zu lang."), field="phone")
    if not data.consent:
        raise DomainError(_("Bitte stimmen Sie der Datenschutzerklärung zu."), field="consent")
    locality = resolve_locality(data.locality)
    if locality is None:
        raise DomainError(
            _("Bitte wählen Sie Ihren Wohnort aus der Liste."), field="locality", code="residence"
        )
    rule = residence_rule(code, locality)
    if not rule.ok:
        raise DomainError(rule.message, field="locality", code="residence")
    if not isinstance(
        locality, Locality
    ):  # the rule refuses outside localities; this keeps mypy sure
        raise DomainError(rule.message, field="locality", code="residence")
    return locality


# ---- households ------------------------------------------------------------------------------


def household_of(user: User) -> Household | None:
    """The family user's household, if it has one."""
    return db.session.scalars(select(Household).where(Household.user_id == user.id)).first()


def open_application(household: Household) -> Application | None:
    """The household's draft or submitted application, if any."""
    return db.session.scalars(
        select(Application)
        .where(
            Application.household_id == household.id, Application.status.in_(("draft", "submitted"))
        )
        .order_by(Application.id.desc())
    ).first()


def latest_application(household: Household) -> Application | None:
    """The household's newest application."""
    return db.session.scalars(
        select(Application)
        .where(Application.household_id == household.id)
        .order_by(Application.id.desc())
    ).first()


def active_pass(household: Household) -> Pass | None:
    """The household's active pass, if any."""
    return db.session.scalars(
        select(Pass)
        .where(Pass.household_id == household.id, Pass.status == "active")
        .order_by(Pass.id.desc())
    ).first()


def save_household(
    user: User | None,
    data: HouseholdInput,
    *,
    household: Household | None = None,
    entered_by: User | None = None,
) -> Household:
    """Create or update a household after validating everything; keeps a draft application ready."""
    locality = validate_household(data)
    if household is not None:
        pending = open_application(household)
        if pending is not None and pending.status == "submitted":
            raise Conflict(
                _(
                    "Ihr Antrag wird gerade geprüft. Ziehen Sie ihn zurück, wenn Sie Ihre Angaben ändern möchten."
                )
            )
    else:
        household = Household(user_id=user.id if user is not None else None)
        db.session.add(household)
    household.street = " ".join(data.street.split())
    household.postal_code = data.postal_code.strip()
    household.locality_id = locality.id
    household.locality = locality
    household.phone = (data.phone or "").strip() or None
    household.consent_at = household.consent_at or utcnow()
    household.adults.clear()
    household.children.clear()
    db.session.flush()
    position = 1
    for first, last in data.adults:
        if not (clean_name(first) or clean_name(last)):
            continue
        household.adults.append(
            Adult(position=position, first_name=clean_name(first), last_name=clean_name(last))
        )
        position += 1
    for first, born in sorted(data.children, key=lambda c: c[1]):
        household.children.append(Child(first_name=clean_name(first), birth_date=born))
    db.session.flush()
    if active_pass(household) is None and open_application(household) is None:
        db.session.add(
            Application(
                household=household,
                status="draft",
                channel="counter" if entered_by is not None else "online",
                entered_by_id=entered_by.id if entered_by is not None else None,
            )
        )
    if entered_by is not None:
        record(entered_by, "household.save", household, details={"channel": "counter"})
    db.session.flush()
    return household


def snapshot(household: Household) -> dict[str, Any]:
    """The household as submitted, so staff decide on exactly what the family said."""
    locality = household.locality
    return {
        "adults": [
            {"first_name": a.first_name, "last_name": a.last_name} for a in household.adults
        ],
        "children": [
            {"first_name": c.first_name, "birth_date": c.birth_date.isoformat()}
            for c in household.children
        ],
        "street": household.street,
        "postal_code": household.postal_code,
        "locality": locality.name if locality else None,
        "municipality": locality.municipality.name if locality else None,
        "phone": household.phone,
        "email": household.user.email if household.user is not None else None,
    }


# ---- the lifecycle ---------------------------------------------------------------------------


def submit_application(
    household: Household,
    by: User | None,
    *,
    channel: str = "online",
    on: date | None = None,
    auto_approve: bool = True,
) -> Application:
    """Submit the household's application after the eligibility check; may approve it at once.

    Online applications need a confirmed e-mail address. An ineligible household raises
    NotEligible and nothing is submitted.
    """
    on = on or berlin_today()
    if channel == "online":
        user = household.user
        if user is None or user.email_confirmed_at is None:
            raise DomainError(
                _(
                    "Bitte bestätigen Sie zuerst Ihre E-Mail-Adresse über den Link, den wir Ihnen geschickt haben."
                ),
                code="email_unconfirmed",
            )
    if active_pass(household) is not None:
        raise Conflict(_("Sie haben bereits einen gültigen Familienpass."))
    application = open_application(household)
    if application is not None and application.status == "submitted":
        raise Conflict(_("Ihr Antrag wurde bereits abgeschickt und wird geprüft."))
    if household.consent_at is None:
        raise DomainError(_("Bitte stimmen Sie der Datenschutzerklärung zu."), field="consent")
    result = check_eligibility(household, on)
    if not result.eligible:
        raise NotEligible(result)
    if application is None:
        application = Application(household=household)
        db.session.add(application)
    application.status = "submitted"
    application.channel = channel
    application.submitted_at = utcnow()
    application.eligibility = result.as_json()
    application.eligible = True
    application.possible_duplicate = possible_duplicate(household)
    application.snapshot = snapshot(household)
    application.consent_at = household.consent_at
    if channel == "counter" and by is not None:
        application.entered_by_id = by.id
    db.session.flush()
    record(
        by,
        "application.submit",
        application,
        details={"channel": channel, "possible_duplicate": application.possible_duplicate},
    )
    if auto_approve and get_setting("auto_approve") and not application.possible_duplicate:
        approve_application(application, None)
    db.session.flush()
    return application


def withdraw_application(application: Application, by: User | None) -> Application:
    """The family withdraws its application while it is being reviewed."""
    locked = _lock(application.id)
    if locked.status != "submitted":
        raise Conflict(_decided_message(locked))
    locked.status = "withdrawn"
    locked.decided_at = utcnow()
    record(by, "application.withdraw", locked)
    db.session.flush()
    return locked


def approve_application(application: Application, by: User | None) -> Pass:
    """Approve a submitted application and issue its pass in the same transaction (by=None: the system)."""
    locked = _lock(application.id)
    if locked.status != "submitted":
        raise Conflict(_decided_message(locked))
    locked.status = "approved"
    locked.decided_at = utcnow()
    locked.decided_by_id = by.id if by is not None else None
    locked.rejection_reason = None
    db.session.flush()
    pass_ = issue_pass(locked, by)
    record(
        by, "application.approve", locked, details={"pass_id": pass_.id, "automatic": by is None}
    )
    db.session.flush()
    return pass_


def reject_application(application: Application, by: User | None, reason: str) -> Application:
    """Reject a submitted application with a reason the family sees."""
    clean = (reason or "").strip()
    if not clean:
        raise DomainError(
            _("Bitte geben Sie einen Grund an, den die Familie lesen kann."), field="reason"
        )
    if len(clean) > MAX_REASON:
        raise DomainError(
            _("Der Grund darf höchstens %(max)d Zeichen lang sein.", max=MAX_REASON), field="reason"
        )
    locked = _lock(application.id)
    if locked.status != "submitted":
        raise Conflict(_decided_message(locked))
    locked.status = "rejected"
    locked.decided_at = utcnow()
    locked.decided_by_id = by.id if by is not None else None
    locked.rejection_reason = clean
    record(by, "application.reject", locked, details={"reason_length": len(clean)})
    db.session.flush()
    return locked


def enter_at_counter(
    staff: User, data: HouseholdInput, *, on: date | None = None
) -> tuple[Application, Pass | None]:
    """Staff enter an application for a family without e-mail and approve it at once if eligible.

    A possible duplicate is left submitted for a second look; an ineligible household raises
    NotEligible (the caller rolls back, so nothing stays written).
    """
    household = save_household(None, data, entered_by=staff)
    application = submit_application(household, staff, channel="counter", on=on, auto_approve=False)
    if application.possible_duplicate:
        return application, None
    return application, approve_application(application, staff)


def _lock(application_id: int) -> Application:
    """Load the application with a row lock, refreshing what the session holds."""
    locked = db.session.scalars(
        select(Application)
        .where(Application.id == application_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if locked is None:
        raise Conflict(_("Diesen Antrag gibt es nicht mehr."))
    return locked


def _decided_message(application: Application) -> str:
    messages = {
        "approved": _("Dieser Antrag wurde bereits genehmigt."),
        "rejected": _("Dieser Antrag wurde bereits abgelehnt."),
        "withdrawn": _("Dieser Antrag wurde zurückgezogen."),
        "draft": _("Dieser Antrag wurde noch nicht abgeschickt."),
    }
    return messages.get(application.status, _("Dieser Antrag kann nicht mehr geändert werden."))


# ---- the staff queue -------------------------------------------------------------------------


def review_query(
    *,
    status: str | None = "submitted",
    locality_id: int | None = None,
    older_than_days: int | None = None,
) -> Select[tuple[Application]]:
    """Applications for the staff queue, oldest submitted first, with optional filters."""
    query = select(Application).join(Household, Application.household_id == Household.id)
    if status:
        query = query.where(Application.status == status)
    else:
        query = query.where(Application.status != "draft")
    if locality_id:
        query = query.where(Household.locality_id == locality_id)
    if older_than_days:
        cutoff = utcnow() - timedelta(days=older_than_days)
        query = query.where(Application.submitted_at <= cutoff)
    return query.order_by(Application.submitted_at.asc().nulls_last(), Application.id.asc())


QUEUE_STATUSES = ("submitted", "approved", "rejected", "withdrawn")


@dataclass
class QueueSummary:
    """Applications by status (drafts left out) and how long the oldest open one has waited."""

    counts: dict[str, int]
    oldest_waiting_days: int | None


def queue_summary() -> QueueSummary:
    """Count applications by status in one grouped query, for the top of the staff queue."""
    rows = db.session.execute(
        select(Application.status, func.count(), func.min(Application.submitted_at))
        .where(Application.status != "draft")
        .group_by(Application.status)
    ).all()
    counts = dict.fromkeys(QUEUE_STATUSES, 0)
    oldest = None
    for status, count, first in rows:
        counts[status] = int(count)
        if status == "submitted":
            oldest = first
    return QueueSummary(counts, waiting_days(oldest) if oldest is not None else None)


def waiting_days(submitted_at: datetime) -> int:
    """Whole days since an application was submitted."""
    return max(0, (utcnow() - submitted_at).days)


def pass_of(application: Application) -> Pass | None:
    """The pass issued for an application, if any."""
    return db.session.scalars(select(Pass).where(Pass.application_id == application.id)).first()


# ---- mail to the family ----------------------------------------------------------------------


def family_link(endpoint: str, **values: Any) -> str:
    """An absolute link for a mail: BASE_URL + path."""
    return current_app.config["BASE_URL"].rstrip("/") + url_for(endpoint, _external=False, **values)


def mail_family(
    household: Household | None, subject: str, template: str, **context: Any
) -> bool | None:
    """Mail the household's user; None when it has no e-mail (counter), False when sending failed."""
    from kyffikus.services.mail import send_mail

    if household is None or household.user is None:
        return None
    try:
        send_mail(household.user.email, subject, template, **context)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("mail %s not sent: %s", template, type(exc).__name__)
        return False
    return True


def notify_submitted(application: Application) -> bool | None:
    """Tell the family its application arrived (or, when approved at once, that it was approved)."""
    if application.status == "approved":
        return notify_decision(application)
    return mail_family(
        application.household,
        _("Ihr Antrag auf den Familienpass Kyffikus ist eingegangen"),
        "application_received",
        application=application,
        link=family_link("family.dashboard"),
    )


def notify_decision(application: Application) -> bool | None:
    """Tell the family the decision on its application."""
    if application.status == "approved":
        pass_ = pass_of(application)
        return mail_family(
            application.household,
            _("Ihr Familienpass Kyffikus ist da"),
            "application_approved",
            application=application,
            pass_=pass_,
            valid_until=format_date(pass_.valid_until, "medium") if pass_ else "",
            link=family_link("family.pass_page"),
        )
    if application.status == "rejected":
        return mail_family(
            application.household,
            _("Ihr Antrag auf den Familienpass Kyffikus wurde abgelehnt"),
            "application_rejected",
            application=application,
            reason=application.rejection_reason,
            link=family_link("family.dashboard"),
        )
    return None


def notify_replaced(new_pass: Pass) -> bool | None:
    """Tell the family that its pass was replaced and the old one no longer works."""
    return mail_family(
        new_pass.household,
        _("Ihr Familienpass Kyffikus wurde ersetzt"),
        "pass_replaced",
        pass_=new_pass,
        link=family_link("family.pass_page"),
    )
