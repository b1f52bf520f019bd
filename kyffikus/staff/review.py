"""Staff: the application queue (list, detail, approve, reject), counter entry and card printing.

Looking at an application (names, children, address) is a staff view of personal data and is
audited as "application.view"; the list, which shows names, as "application.list".
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import BooleanField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length

from kyffikus.authz import staff_required
from kyffikus.extensions import db
from kyffikus.family.forms import HouseholdForm
from kyffikus.family.views import pdf_response
from kyffikus.models import Application, Locality, Pass
from kyffikus.services import Conflict, DomainError
from kyffikus.services.applications import (
    MAX_CHILDREN,
    MAX_REASON,
    NotEligible,
    approve_application,
    enter_at_counter,
    locality_choices,
    notify_decision,
    pass_of,
    queue_summary,
    reject_application,
    review_query,
    waiting_days,
)
from kyffikus.services.audit import record
from kyffikus.web import no_store

bp = Blueprint("review", __name__)

PER_PAGE = 25
STATUS_FILTERS = ("submitted", "approved", "rejected", "withdrawn", "alle")
AGE_FILTERS = (3, 7, 14, 30)


class ApproveForm(FlaskForm):
    """Approve (a button)."""

    submit = SubmitField(_l("Genehmigen und Pass ausstellen"))


class RejectForm(FlaskForm):
    """Reject with a reason the family reads."""

    reason = TextAreaField(
        _l("Begründung für die Familie"),
        validators=[
            InputRequired(_l("Bitte geben Sie einen Grund an, den die Familie lesen kann.")),
            Length(max=MAX_REASON, message=_l("Höchstens %(max)d Zeichen.")),
        ],
        description=_l("Die Familie sieht diesen Text in ihrem Konto und in der E-Mail."),
    )
    submit = SubmitField(_l("Ablehnen"))


class CounterForm(HouseholdForm):
    """The household form as staff fill it in at the counter."""

    consent = BooleanField(
        _l("Die Familie hat die Datenschutzerklärung erhalten und der Verarbeitung zugestimmt."),
        validators=[DataRequired(_l("Bitte bestätigen Sie die Einwilligung der Familie."))],
    )
    submit = SubmitField(_l("Antrag erfassen"))


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdecimal() and len(value) < 10 else None


@bp.get("/")
@staff_required
def queue() -> str:
    """The applications, oldest submitted first; filters: status, locality, age."""
    no_store()
    status = request.args.get("status", "submitted")
    if status not in STATUS_FILTERS:
        status = "submitted"
    locality_id = _int_arg("ort")
    older = _int_arg("alter")
    if older not in AGE_FILTERS:
        older = None
    page = _int_arg("page") or 1
    query = review_query(
        status=None if status == "alle" else status, locality_id=locality_id, older_than_days=older
    )
    result = db.paginate(query, page=page, per_page=PER_PAGE, error_out=False)
    if result.items:
        record(
            current_user,
            "application.list",
            object_type="application",
            details={"ids": [a.id for a in result.items]},
        )
        db.session.commit()
    localities = db.session.scalars(
        select(Locality).where(Locality.active.is_(True)).order_by(Locality.name)
    ).all()
    return render_template(
        "staff/review/queue.html",
        result=result,
        status=status,
        locality_id=locality_id,
        older=older,
        localities=localities,
        age_filters=AGE_FILTERS,
        summary=queue_summary(),
        waiting_days=waiting_days,
    )


def _load(application_id: int) -> Application:
    application = db.session.get(Application, application_id)
    if application is None:
        abort(404)
    return application


def _render_detail(
    application: Application, *, reject_form: RejectForm | None = None, status: int = 200
) -> Any:
    return (
        render_template(
            "staff/review/detail.html",
            application=application,
            pass_=pass_of(application),
            approve_form=ApproveForm(),
            reject_form=reject_form or RejectForm(),
        ),
        status,
    )


@bp.get("/<int:application_id>")
@staff_required
def detail(application_id: int) -> Any:
    """One application as submitted, its eligibility check and the decision buttons."""
    no_store()
    application = _load(application_id)
    record(current_user, "application.view", application)
    db.session.commit()
    return _render_detail(application)


@bp.post("/<int:application_id>/genehmigen")
@staff_required
def approve(application_id: int) -> Any:
    """Approve and issue the pass; a second approval answers 409 with a clear message."""
    no_store()
    application = _load(application_id)
    if not ApproveForm().validate_on_submit():
        abort(400)
    try:
        pass_ = approve_application(application, current_user)
    except Conflict as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _render_detail(_load(application_id), status=409)
    db.session.commit()
    flash(
        _(
            "Antrag genehmigt. Familienpass %(number)s ist ausgestellt.",
            number=pass_.grouped_number,
        ),
        "success",
    )
    if notify_decision(application) is False:
        flash(_("Die E-Mail an die Familie konnte nicht gesendet werden."), "warning")
    return redirect(url_for(".detail", application_id=application.id))


@bp.post("/<int:application_id>/ablehnen")
@staff_required
def reject(application_id: int) -> Any:
    """Reject with a reason the family sees."""
    no_store()
    application = _load(application_id)
    form = RejectForm()
    if not form.validate_on_submit():
        return _render_detail(application, reject_form=form, status=422)
    try:
        reject_application(application, current_user, form.reason.data or "")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _render_detail(_load(application_id), reject_form=form, status=exc.status)
    db.session.commit()
    flash(_("Antrag abgelehnt. Die Familie sieht die Begründung."), "success")
    if notify_decision(application) is False:
        flash(_("Die E-Mail an die Familie konnte nicht gesendet werden."), "warning")
    return redirect(url_for(".detail", application_id=application.id))


@bp.route("/schalter", methods=["GET", "POST"])
@staff_required
def counter() -> Any:
    """Enter an application at the counter for a family without e-mail; approve and print at once."""
    no_store()
    form = CounterForm()
    result = None
    if request.method == "POST" and form.add_child.data:
        if len(form.children.entries) < MAX_CHILDREN:
            form.children.append_entry()
        return _render_counter(form)
    if form.validate_on_submit():
        try:
            application, pass_ = enter_at_counter(current_user, form.to_input())
        except NotEligible as exc:
            db.session.rollback()
            result = exc.result
            form.form_errors.append(
                _("Die Familie erfüllt nicht alle Voraussetzungen; der Antrag wurde nicht erfasst.")
            )
            return _render_counter(form, result=result), exc.status
        except DomainError as exc:
            db.session.rollback()
            field = (
                getattr(form, exc.field, None)
                if exc.field not in (None, "adults", "children")
                else None
            )
            if field is not None:
                field.errors = [*field.errors, exc.message]
            else:
                form.form_errors.append(exc.message)
            return _render_counter(form), exc.status
        db.session.commit()
        if pass_ is not None:
            flash(
                _(
                    "Antrag erfasst und genehmigt. Familienpass %(number)s ist ausgestellt.",
                    number=pass_.grouped_number,
                ),
                "success",
            )
        else:
            flash(
                _(
                    "Antrag erfasst. Er ist als mögliches Duplikat markiert und wartet auf Ihre Entscheidung."
                ),
                "warning",
            )
        return redirect(url_for(".detail", application_id=application.id))
    status = 422 if request.method == "POST" else 200
    return _render_counter(form), status


def _render_counter(form: CounterForm, *, result: Any = None) -> str:
    return render_template(
        "staff/review/counter.html",
        form=form,
        result=result,
        locality_groups=locality_choices(),
        max_children=MAX_CHILDREN,
    )


@bp.get("/pass/<int:pass_id>/karte.pdf")
@staff_required
def card(pass_id: int) -> Response:
    """The printable card of any pass, for printing at the counter (audited)."""
    no_store()
    pass_ = db.session.get(Pass, pass_id)
    if pass_ is None:
        abort(404)
    record(current_user, "pass.print", pass_)
    db.session.commit()
    return pdf_response(pass_)
