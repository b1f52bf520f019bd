"""Staff pages: find a pass, see its history, revoke, replace or extend it.

The changes themselves are kyffikus.services.passes (issue_pass, replace_pass, revoke_pass,
extend_pass): each writes a PassEvent and an audit entry. Looking at a pass (names, children's
ages, redemptions) is a staff view of personal data and is audited as "pass.view"; a search that
lists families' names is audited as "pass.search".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response
from wtforms import BooleanField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from kyffikus.authz import staff_required
from kyffikus.extensions import db
from kyffikus.models import (
    Adult,
    Edition,
    Household,
    Locality,
    Offer,
    Pass,
    PassEvent,
    Provider,
    Redemption,
)
from kyffikus.models.base import berlin_today
from kyffikus.services import Conflict, DomainError, passnumber
from kyffikus.services.audit import record
from kyffikus.services.passes import children_ages, extend_pass, replace_pass, revoke_pass
from kyffikus.web import no_store

bp = Blueprint("staff_passes", __name__)

PER_PAGE = 25
MAX_QUERY = 100
SEARCH_KEY = "staff_pass_search"


# ---- forms ---------------------------------------------------------------------------------------


class RevokeForm(FlaskForm):
    """Revoke a pass: a reason is required, and a confirmation."""

    reason = TextAreaField(
        _l("Grund der Sperrung"),
        validators=[InputRequired(_l("Bitte geben Sie einen Grund an.")), Length(max=2000)],
        description=_l("Wird im Verlauf des Passes gespeichert, z. B. „Verlust gemeldet“."),
    )
    confirm = BooleanField(
        _l("Ja, diesen Familienpass jetzt sperren. Er gilt danach an keiner Kasse mehr."),
        validators=[DataRequired(_l("Bitte bestätigen Sie die Sperrung."))],
    )


class ReplaceForm(FlaskForm):
    """Replace a lost pass: a new number and QR code; the old ones stop working."""

    reason = TextAreaField(
        _l("Anlass (optional)"),
        validators=[Optional(), Length(max=2000)],
        description=_l("Zum Beispiel „Pass verloren, telefonisch gemeldet“."),
    )
    confirm = BooleanField(
        _l(
            "Ja, einen neuen Pass ausstellen. Nummer und QR-Code des alten Passes gelten sofort nicht mehr."
        ),
        validators=[DataRequired(_l("Bitte bestätigen Sie den Ersatz."))],
    )


class ExtendForm(FlaskForm):
    """Extend a pass to the end of the next edition."""

    note = TextAreaField(_l("Notiz (optional)"), validators=[Optional(), Length(max=2000)])
    confirm = BooleanField(
        _l("Ja, die Gültigkeit bis zum Ende der nächsten Ausgabe verlängern."),
        validators=[DataRequired(_l("Bitte bestätigen Sie die Verlängerung."))],
    )


# ---- queries -------------------------------------------------------------------------------------


def search_passes(text: str) -> Select[tuple[Pass]]:
    """Passes matching a typed pass number (or its start), an adult's name or a postal code."""
    query = text.strip()[:MAX_QUERY]
    conditions: list[Any] = []
    number = passnumber.normalise(query)
    if 2 <= len(number) <= passnumber.LENGTH and all(c in passnumber.ALPHABET for c in number):
        conditions.append(Pass.number.startswith(number, autoescape=True))
    if len(query) == 5 and query.isdigit():
        conditions.append(Household.postal_code == query)
    words = [w for w in query.replace(",", " ").split() if len(w) >= 2]
    if words and any(c.isalpha() for c in query):
        name_matches = [
            select(Adult.household_id).where(
                or_(
                    Adult.first_name.ilike(_like(w), escape="\\"),
                    Adult.last_name.ilike(_like(w), escape="\\"),
                )
            )
            for w in words
        ]
        # Every word must match an adult of the household ("Anna Muster", "Muster").
        conditions.append(and_(*(Pass.household_id.in_(m) for m in name_matches)))
    if not conditions:
        return select(Pass).where(Pass.id.is_(None))
    return (
        select(Pass)
        .outerjoin(Household, Household.id == Pass.household_id)
        .where(or_(*conditions))
        .options(selectinload(Pass.household).selectinload(Household.locality))
        .order_by(Pass.id.desc())
    )


def _like(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def next_edition(pass_: Pass) -> Edition | None:
    """The edition after the pass's current end: the one a pass is extended to."""
    return db.session.scalars(
        select(Edition)
        .where(Edition.valid_until > pass_.valid_until)
        .order_by(Edition.valid_from, Edition.number)
    ).first()


@dataclass
class HistoryItem:
    """One line of a pass's history: an event or a redemption."""

    at: datetime
    kind: str
    label: str
    by: str | None
    note: str | None
    details: list[str]
    undone: bool = False


EVENT_LABELS = {
    "issued": _l("Ausgestellt"),
    "replaced": _l("Ersetzt"),
    "revoked": _l("Gesperrt"),
    "extended": _l("Verlängert"),
    "expired": _l("Abgelaufen"),
    "reactivated": _l("Wieder gültig"),
}

STATUS_LABELS = {
    "active": _l("Gültig"),
    "expired": _l("Abgelaufen"),
    "revoked": _l("Gesperrt"),
    "replaced": _l("Ersetzt"),
}


def _event_details(event: PassEvent) -> list[str]:
    details = event.details or {}
    lines = []
    change = details.get("valid_until")
    if isinstance(change, dict) and "old" in change and "new" in change:
        lines.append(
            _(
                "gültig bis: %(old)s → %(new)s",
                old=_day(change["old"]),
                new=_day(change["new"]),
            )
        )
    if details.get("replaces"):
        lines.append(_("ersetzt den Pass Nr. %(id)s", id=details["replaces"]))
    if details.get("new_pass_id"):
        lines.append(_("neuer Pass Nr. %(id)s", id=details["new_pass_id"]))
    if details.get("application_id"):
        lines.append(_("Antrag Nr. %(id)s", id=details["application_id"]))
    return lines


def _day(text: Any) -> str:
    from flask_babel import format_date

    try:
        return format_date(date.fromisoformat(str(text)), "medium")
    except ValueError:
        return str(text)


def history(pass_: Pass) -> list[HistoryItem]:
    """Events and redemptions of the pass, newest first."""
    items = [
        HistoryItem(
            at=e.at,
            kind=e.kind,
            label=str(EVENT_LABELS.get(e.kind, e.kind)),
            by=e.by.email if e.by is not None else None,
            note=e.note,
            details=_event_details(e),
        )
        for e in db.session.scalars(
            select(PassEvent)
            .where(PassEvent.pass_id == pass_.id)
            .options(selectinload(PassEvent.by))
            .order_by(PassEvent.at, PassEvent.id)
        )
    ]
    rows = db.session.execute(
        select(Redemption, Offer.title, Provider.name)
        .join(Offer, Offer.id == Redemption.offer_id)
        .join(Provider, Provider.id == Redemption.provider_id)
        .where(Redemption.pass_id == pass_.id)
        .order_by(Redemption.redeemed_at)
    ).tuples()
    for redemption, title, provider in rows:
        persons = _(
            "%(adults)s Erwachsene, %(children)s Kinder",
            adults=redemption.adults,
            children=redemption.children,
        )
        items.append(
            HistoryItem(
                at=redemption.redeemed_at,
                kind="redemption",
                label=_("Einlösung: %(offer)s", offer=title),
                by=provider,
                note=None,
                details=[persons] + ([_("zurückgenommen")] if redemption.undone_at else []),
                undone=redemption.undone_at is not None,
            )
        )
    items.sort(key=lambda i: i.at, reverse=True)
    return items


def _load(pass_id: int) -> Pass:
    pass_ = db.session.scalars(
        select(Pass)
        .where(Pass.id == pass_id)
        .options(
            selectinload(Pass.household)
            .selectinload(Household.locality)
            .selectinload(Locality.municipality),
            selectinload(Pass.edition),
        )
    ).first()
    if pass_ is None:
        abort(404)
    return pass_


def _replaced_by(pass_: Pass) -> Pass | None:
    return db.session.scalars(select(Pass).where(Pass.replaces_id == pass_.id)).first()


# ---- views ---------------------------------------------------------------------------------------


@bp.route("/", methods=["GET", "POST"])
@staff_required
def search() -> str | Response:
    """Search passes by number (with or without dashes, or its start), an adult's name or postal code.

    Names and pass numbers are personal data and stay out of URLs (and so out of access logs):
    the form is POSTed, the query kept in the session, and the results shown on a plain GET.
    A link with ?q= (a postal code from the review page) is taken the same way.
    """
    no_store()
    if request.method == "POST" or "q" in request.args:
        text = request.form.get("q") if request.method == "POST" else request.args.get("q")
        session[SEARCH_KEY] = (text or "").strip()[:MAX_QUERY]
        return redirect(url_for(".search"))
    query = str(session.get(SEARCH_KEY) or "")
    results = None
    if query:
        page = max(request.args.get("page", 1, type=int) or 1, 1)
        results = db.paginate(search_passes(query), page=page, per_page=PER_PAGE, error_out=False)
        record(
            current_user,
            "pass.search",
            object_type="pass",
            details={"query": query, "page": page, "results": results.total},
        )
        db.session.commit()
    return render_template(
        "staff/passes/search.html",
        query=query,
        results=results,
        status_labels=STATUS_LABELS,
        max_query=MAX_QUERY,
    )


@bp.get("/<int:pass_id>")
@staff_required
def detail(pass_id: int) -> str:
    """A pass with its holders, children, validity, status and history (audited as pass.view)."""
    no_store()
    pass_ = _load(pass_id)
    record(current_user, "pass.view", pass_)
    db.session.commit()
    today = berlin_today()
    return render_template(
        "staff/passes/detail.html",
        pass_=pass_,
        ages=children_ages(pass_, today),
        items=history(pass_),
        replaced_by=_replaced_by(pass_),
        next_edition=next_edition(pass_) if pass_.status in ("active", "expired") else None,
        status_labels=STATUS_LABELS,
        today=today,
    )


def _action_page(pass_: Pass, form: FlaskForm, action: str, status: int = 200) -> tuple[str, int]:
    # Lazily translated messages become text, so the error summary shows them word for word.
    for field in form:
        field.errors = [str(e) for e in field.errors]
    return (
        render_template(
            "staff/passes/action.html",
            pass_=pass_,
            form=form,
            action=action,
            next_edition=next_edition(pass_),
            status_labels=STATUS_LABELS,
        ),
        status,
    )


def _refuse(pass_: Pass, form: FlaskForm, action: str, error: DomainError) -> tuple[str, int]:
    """Show a domain error on the form (a field's error when the service names the field)."""
    db.session.rollback()
    field = getattr(form, error.field, None) if error.field else None
    if field is not None:
        field.errors = [*field.errors, error.message]
    else:
        flash(error.message, "error")
    return _action_page(_load(pass_.id), form, action, error.status)


@bp.route("/<int:pass_id>/sperren", methods=["GET", "POST"])
@staff_required
def revoke(pass_id: int) -> Response | tuple[str, int]:
    """Revoke a pass with a reason (after confirmation)."""
    no_store()
    pass_ = _load(pass_id)
    form = RevokeForm()
    if pass_.status not in ("active", "expired"):
        flash(_("Dieser Familienpass ist bereits gesperrt oder ersetzt."), "error")
        return redirect(url_for(".detail", pass_id=pass_.id))
    if request.method == "POST":
        if not form.validate_on_submit():
            return _action_page(pass_, form, "revoke", 422)
        try:
            revoke_pass(pass_, current_user, reason=form.reason.data or "")
        except DomainError as error:
            return _refuse(pass_, form, "revoke", error)
        db.session.commit()
        flash(
            _("Der Familienpass %(number)s ist gesperrt.", number=pass_.grouped_number), "success"
        )
        return redirect(url_for(".detail", pass_id=pass_.id))
    return _action_page(pass_, form, "revoke")


@bp.route("/<int:pass_id>/ersetzen", methods=["GET", "POST"])
@staff_required
def replace(pass_id: int) -> Response | tuple[str, int]:
    """Replace a lost pass: a new number and QR code; the old ones stop working at once."""
    no_store()
    pass_ = _load(pass_id)
    form = ReplaceForm()
    if pass_.status != "active":
        flash(_("Nur ein gültiger Familienpass kann ersetzt werden."), "error")
        return redirect(url_for(".detail", pass_id=pass_.id))
    if request.method == "POST":
        if not form.validate_on_submit():
            return _action_page(pass_, form, "replace", 422)
        try:
            new = replace_pass(pass_, current_user, reason=form.reason.data)
        except DomainError as error:
            return _refuse(pass_, form, "replace", error)
        db.session.commit()
        flash(
            _(
                "Neuer Familienpass %(new)s ausgestellt; der Pass %(old)s gilt nicht mehr.",
                new=new.grouped_number,
                old=pass_.grouped_number,
            ),
            "success",
        )
        return redirect(url_for(".detail", pass_id=new.id))
    return _action_page(pass_, form, "replace")


@bp.route("/<int:pass_id>/verlaengern", methods=["GET", "POST"])
@staff_required
def extend(pass_id: int) -> Response | tuple[str, int]:
    """Extend a pass to the end of the next edition (after confirmation)."""
    no_store()
    pass_ = _load(pass_id)
    form = ExtendForm()
    target = next_edition(pass_)
    if pass_.status not in ("active", "expired"):
        flash(
            _("Ein gesperrter oder ersetzter Familienpass kann nicht verlängert werden."), "error"
        )
        return redirect(url_for(".detail", pass_id=pass_.id))
    if target is None:
        flash(
            _("Es gibt noch keine nächste Ausgabe, bis zu der der Pass verlängert werden könnte."),
            "error",
        )
        return redirect(url_for(".detail", pass_id=pass_.id))
    if request.method == "POST":
        if not form.validate_on_submit():
            return _action_page(pass_, form, "extend", 422)
        note = form.note.data or None
        note = note or _("Verlängert bis zum Ende der Ausgabe „%(name)s“", name=target.name)
        try:
            extend_pass(pass_, current_user, until=target.valid_until, note=note)
        except (Conflict, DomainError) as error:
            return _refuse(pass_, form, "extend", error)
        db.session.commit()
        from flask_babel import format_date

        flash(
            _(
                "Der Familienpass %(number)s gilt jetzt bis zum %(date)s.",
                number=pass_.grouped_number,
                date=format_date(target.valid_until, "long"),
            ),
            "success",
        )
        return redirect(url_for(".detail", pass_id=pass_.id))
    return _action_page(pass_, form, "extend")
