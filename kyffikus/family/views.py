"""The family's pages: household, application, pass, redemptions, data rights."""

from __future__ import annotations

import json
import time
from datetime import date
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask_babel import gettext as _
from flask_login import current_user, logout_user
from sqlalchemy import select

from kyffikus.authz import family_required
from kyffikus.extensions import db
from kyffikus.family.forms import (
    ConfirmForm,
    DeleteAccountForm,
    HouseholdForm,
    SubmitApplicationForm,
)
from kyffikus.models.base import berlin_today
from kyffikus.models.passes import Pass, Redemption
from kyffikus.readonly import read_only
from kyffikus.services import Conflict, DomainError
from kyffikus.services.applications import (
    MAX_CHILDREN,
    NotEligible,
    active_pass,
    household_of,
    latest_application,
    locality_choices,
    notify_replaced,
    notify_submitted,
    open_application,
    submit_application,
    withdraw_application,
)
from kyffikus.services.applications import save_household as save_household_service
from kyffikus.services.eligibility import check_eligibility
from kyffikus.services.family_data import delete_family_account, export_family_data
from kyffikus.services.passes import (
    children_ages,
    current_pass,
    household_passes,
    pass_url,
    replace_pass,
)
from kyffikus.services.pdfcard import render_card
from kyffikus.services.qr import qr_etag, qr_png
from kyffikus.web import no_store, private_cache

bp = Blueprint("family", __name__)

QR_MAX_AGE = 86400
_LIST_FIELDS = ("adults", "children")


@bp.app_template_filter("isodate")
def isodate(value: Any) -> Any:
    """An ISO date string (as stored in JSON snapshots) as a date, for |dateformat."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    return value


def _household_or_none() -> Any:
    return household_of(current_user)


def own_pass_or_404(pass_id: int) -> Pass:
    """A pass of the logged-in family; any other pass is answered with 404."""
    pass_ = db.session.get(Pass, pass_id)
    if pass_ is None or pass_.household is None or pass_.household.user_id != current_user.id:
        abort(404)
    return pass_


def _attach_error(form: HouseholdForm, exc: DomainError) -> None:
    """Show a service's refusal on the field it concerns, or at the top of the form."""
    field = getattr(form, exc.field, None) if exc.field and exc.field not in _LIST_FIELDS else None
    if field is not None:
        field.errors = [*field.errors, exc.message]
    else:
        form.form_errors.append(exc.message)


@bp.get("/")
@family_required
def dashboard() -> str:
    """The family's overview: e-mail, household, application and pass, step by step."""
    no_store()
    household = _household_or_none()
    application = latest_application(household) if household else None
    pass_ = current_pass(household) if household else None
    return render_template(
        "family/dashboard.html",
        household=household,
        application=application,
        pass_=pass_,
        today=berlin_today(),
    )


@bp.route("/haushalt", methods=["GET", "POST"])
@family_required
def household() -> Any:
    """Describe the household: adults on the pass, children, address, consent."""
    no_store()
    existing = _household_or_none()
    form = HouseholdForm()
    if request.method == "GET" and existing is not None:
        form.fill_from(existing)
    if request.method == "POST" and form.add_child.data:
        # "Weiteres Kind": show one more empty row, nothing is saved or validated yet.
        if len(form.children.entries) < MAX_CHILDREN:
            form.children.append_entry()
        return _render_household(form, existing)
    if form.validate_on_submit():
        try:
            save_household_service(current_user, form.to_input(), household=existing)
        except DomainError as exc:
            db.session.rollback()
            _attach_error(form, exc)
            return _render_household(form, existing), exc.status
        db.session.commit()
        flash(_("Ihre Angaben sind gespeichert."), "success")
        return redirect(url_for("family.application"))
    status = 422 if request.method == "POST" else 200
    return _render_household(form, existing), status


def _render_household(form: HouseholdForm, existing: Any) -> str:
    pending = open_application(existing) if existing is not None else None
    return render_template(
        "family/household.html",
        form=form,
        locality_groups=locality_choices(),
        locked=pending is not None and pending.status == "submitted",
        has_pass=existing is not None and active_pass(existing) is not None,
        max_children=MAX_CHILDREN,
    )


@bp.get("/antrag")
@family_required
def application() -> Any:
    """The application: what will be sent, whether the rules are met, and its status."""
    no_store()
    household = _household_or_none()
    if household is None:
        flash(_("Bitte beschreiben Sie zuerst Ihren Haushalt."), "info")
        return redirect(url_for("family.household"))
    return _render_application(household)


def _render_application(household: Any, *, result: Any = None, status: int = 200) -> Any:
    application = latest_application(household)
    if result is None:
        result = check_eligibility(household, berlin_today())
    can_submit = (
        active_pass(household) is None
        and (application is None or application.status != "submitted")
        and result.eligible
        and current_user.email_confirmed_at is not None
    )
    return (
        render_template(
            "family/application.html",
            household=household,
            application=application,
            result=result,
            can_submit=can_submit,
            has_pass=active_pass(household) is not None,
            submit_form=SubmitApplicationForm(),
            withdraw_form=ConfirmForm(),
        ),
        status,
    )


@bp.post("/antrag")
@family_required
def submit() -> Any:
    """Send the application (refused with the reasons when a rule is not met)."""
    no_store()
    household = _household_or_none()
    if household is None:
        return redirect(url_for("family.household"))
    form = SubmitApplicationForm()
    if not form.validate_on_submit():
        flash(_("Das Formular ist abgelaufen. Bitte versuchen Sie es noch einmal."), "error")
        return _render_application(household, status=400)
    try:
        application = submit_application(household, current_user)
    except NotEligible as exc:
        db.session.rollback()
        flash(
            _("Ihr Antrag kann nicht abgeschickt werden: Nicht alle Voraussetzungen sind erfüllt."),
            "error",
        )
        return _render_application(household, result=exc.result, status=422)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _render_application(household, status=exc.status)
    db.session.commit()
    if application.status == "approved":
        flash(_("Ihr Antrag ist genehmigt. Ihr Familienpass ist fertig."), "success")
    else:
        flash(
            _("Ihr Antrag ist abgeschickt. Wir melden uns per E-Mail, sobald er geprüft ist."),
            "success",
        )
    if notify_submitted(application) is False:
        flash(
            _(
                "Die Bestätigung per E-Mail konnte gerade nicht gesendet werden. Ihr Antrag ist trotzdem eingegangen."
            ),
            "warning",
        )
    if application.status == "approved":
        return redirect(url_for("family.pass_page"))
    return redirect(url_for("family.application"))


@bp.post("/antrag/zurueckziehen")
@family_required
def withdraw() -> Any:
    """Withdraw the application while it is being reviewed."""
    household = _household_or_none()
    pending = open_application(household) if household is not None else None
    form = ConfirmForm()
    if pending is None or not form.validate_on_submit():
        abort(404 if pending is None else 400)
    try:
        withdraw_application(pending, current_user)
    except Conflict as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("family.application"))
    db.session.commit()
    flash(
        _("Ihr Antrag ist zurückgezogen. Sie können Ihre Angaben ändern und ihn neu stellen."),
        "success",
    )
    return redirect(url_for("family.application"))


@bp.get("/pass")
@family_required
@read_only
def pass_page() -> Any:
    """The pass on the phone: QR code, number, validity and names, large and high-contrast."""
    no_store()
    household = _household_or_none()
    pass_ = current_pass(household) if household is not None else None
    if pass_ is None:
        flash(_("Sie haben noch keinen Familienpass."), "info")
        return redirect(url_for("family.dashboard"))
    today = berlin_today()
    return render_template(
        "family/pass.html", pass_=pass_, ages=children_ages(pass_, today), today=today
    )


def _qr_etag(session_user: str, pass_id: int) -> str:
    config = current_app.config
    return qr_etag(config["SECRET_KEY"], session_user, pass_id, config["BASE_URL"])


def _qr_response(response: Response, etag: str) -> Response:
    private_cache()
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"private, max-age={QR_MAX_AGE}"
    return response


@bp.get("/pass/<int:pass_id>/qr.png")
@family_required
@read_only
def pass_qr(pass_id: int) -> Response:
    """The QR image of the family's own pass; cached privately, 304 for a known ETag."""
    pass_ = own_pass_or_404(pass_id)
    etag = _qr_etag(current_user.get_id(), pass_.id)
    if request.if_none_match.contains(etag):
        return _qr_response(Response(status=304), etag)
    return _qr_response(Response(qr_png(pass_url(pass_)), mimetype="image/png"), etag)


def qr_not_modified() -> Response | None:
    """A repeat of the QR image with this session's ETag: 304 before any query (see qr_etag)."""
    if request.endpoint != "family.pass_qr" or not request.if_none_match:
        return None
    session_user = session.get("_user_id")
    login_at = session.get("login_at")
    if not isinstance(session_user, str) or not isinstance(login_at, int | float):
        return None
    # Past the family session's absolute limit the full path runs (and ends the session).
    limit = current_app.config["FAMILY_SESSION_ABSOLUTE"].total_seconds()
    if time.time() - login_at > limit:
        return None
    pass_id = (request.view_args or {}).get("pass_id")
    if not isinstance(pass_id, int):
        return None
    etag = _qr_etag(session_user, pass_id)
    # Only this exact tag: "If-None-Match: *" goes the full way (ownership is checked there).
    if request.if_none_match.star_tag or not request.if_none_match.contains(etag):
        return None
    return _qr_response(Response(status=304), etag)


@bp.record_once
def _install_qr_not_modified(state: BlueprintSetupState) -> None:
    # First of the app's before_request hooks: ahead of the session limits, which load the user.
    state.app.before_request_funcs.setdefault(None, []).insert(0, qr_not_modified)


@bp.get("/pass/<int:pass_id>/karte.pdf")
@family_required
def pass_pdf(pass_id: int) -> Response:
    """The printable card (ID-1, front and back) of the family's own pass."""
    no_store()
    pass_ = own_pass_or_404(pass_id)
    return pdf_response(pass_)


def pdf_response(pass_: Pass) -> Response:
    """A PDF card as a download (shared with the staff's counter page); only for a valid pass."""
    if pass_.status != "active":
        abort(409, description=_("Nur ein gültiger Familienpass kann gedruckt werden."))
    response = Response(render_card(pass_), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="familienpass-{pass_.number}.pdf"'
    return response


@bp.route("/pass/verloren", methods=["GET", "POST"])
@family_required
def replace() -> Any:
    """A lost pass: issue a new number and QR code; the old ones stop working at once."""
    no_store()
    household = _household_or_none()
    pass_ = active_pass(household) if household is not None else None
    if pass_ is None:
        flash(_("Sie haben keinen gültigen Familienpass, der ersetzt werden könnte."), "info")
        return redirect(url_for("family.dashboard"))
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            new = replace_pass(pass_, current_user, reason=form.reason.data or None)
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "error")
            return render_template("family/replace.html", form=form, pass_=pass_), exc.status
        db.session.commit()
        flash(
            _(
                "Ihr neuer Familienpass ist fertig. Der alte Pass und sein QR-Code gelten nicht mehr."
            ),
            "success",
        )
        if notify_replaced(new) is False:
            flash(_("Die Bestätigung per E-Mail konnte gerade nicht gesendet werden."), "warning")
        return redirect(url_for("family.pass_page"))
    status = 422 if request.method == "POST" else 200
    return render_template("family/replace.html", form=form, pass_=pass_), status


@bp.get("/einloesungen")
@family_required
def redemptions() -> str:
    """Where and when the family's passes were used."""
    no_store()
    household = _household_or_none()
    passes = household_passes(household) if household is not None else []
    rows: list[Redemption] = []
    if passes:
        rows = list(
            db.session.scalars(
                select(Redemption)
                .where(Redemption.pass_id.in_([p.id for p in passes]))
                .order_by(Redemption.redeemed_at.desc())
                .limit(500)
            )
        )
    numbers = {p.id: p.grouped_number for p in passes}
    return render_template("family/redemptions.html", rows=rows, numbers=numbers)


@bp.get("/daten")
@family_required
def data_rights() -> str:
    """Download all data, or delete the account."""
    no_store()
    return render_template("family/data.html", form=DeleteAccountForm())


@bp.get("/daten/export.json")
@family_required
def export() -> Response:
    """Everything stored about the family, as a JSON download."""
    no_store()
    data = export_family_data(current_user)
    body = json.dumps(data, ensure_ascii=False, indent=2)
    response = Response(body, mimetype="application/json")
    response.headers["Content-Disposition"] = 'attachment; filename="kyffikus-meine-daten.json"'
    return response


@bp.post("/daten/loeschen")
@family_required
def delete_account() -> Any:
    """Delete the account (password required): pass revoked, personal data removed."""
    no_store()
    form = DeleteAccountForm()
    if not form.validate_on_submit():
        return render_template("family/data.html", form=form), 422
    try:
        delete_family_account(current_user, form.password.data or "")
    except DomainError as exc:
        db.session.rollback()
        form.password.errors = [*form.password.errors, exc.message]
        return render_template("family/data.html", form=form), exc.status
    db.session.commit()
    logout_user()
    session.clear()
    flash(
        _("Ihr Konto und Ihre Angaben sind gelöscht. Ihr Familienpass gilt nicht mehr."), "success"
    )
    return redirect(url_for("public.home"))
