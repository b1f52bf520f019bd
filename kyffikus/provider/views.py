"""The provider's pages: check a pass, record redemptions, history, account, API tokens."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup

from kyffikus import pagecache
from kyffikus.authz import provider_required
from kyffikus.extensions import db, not_limited
from kyffikus.i18n import locale_code
from kyffikus.models.base import berlin_today, utcnow
from kyffikus.models.catalogue import Provider, Venue
from kyffikus.models.passes import Redemption
from kyffikus.provider import result_html
from kyffikus.provider.forms import (
    ApiTokenForm,
    CheckForm,
    ConfirmForm,
    ContactForm,
    HistoryFilterForm,
    RedeemForm,
    UndoForm,
    VenueNotesForm,
)
from kyffikus.provider.ratelimit import check_limits
from kyffikus.readonly import hot_sql, read_only
from kyffikus.services import DomainError, checks, redemptions
from kyffikus.services import apitokens as tokens_service
from kyffikus.services.provider_account import provider_users, update_contact, update_venue_notes
from kyffikus.web import no_store

bp = Blueprint("provider", __name__)

HISTORY_PAGE_SIZE = 50


def _provider() -> Provider:
    provider = current_user.provider
    if provider is None:  # the database forbids it; a guard keeps a broken row from leaking
        abort(403)
    return provider


def _provider_id() -> int:
    """The provider's id without loading the provider (the check needs no more)."""
    provider_id = current_user.provider_id
    if provider_id is None:  # as in _provider(): the database forbids it
        abort(403)
    return int(provider_id)


def render_check(
    result: checks.CheckResult | None = None,
    code: str | None = None,
    *,
    form: CheckForm | None = None,
    just_redeemed: Redemption | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The check page, with a result on top when there is one (also used by /v/<token>).

    The page around the result is the same for every check: it is kept rendered per language
    (kyffikus.pagecache) unless the number form shows an error; the result is rendered each time.
    """
    no_store()
    pagecache.reuse_csrf_token()

    def result_slot() -> Markup:
        if result is None:
            return Markup("")
        undo = None
        if just_redeemed is not None and redemptions.can_undo(just_redeemed, utcnow()):
            undo = result_html.Undo(
                url=url_for("provider.undo", redemption_id=just_redeemed.id),
                until=redemptions.undo_deadline(just_redeemed),
            )
        return result_html.render(
            result,
            code,
            csrf=generate_csrf(),
            redeem_url=url_for("provider.redeem"),
            just_redeemed=just_redeemed,
            undo=undo,
        )

    key = None
    if form is None or not form.errors:
        key = ("provider/check.html", locale_code(), current_user.role, result is not None)
    page = pagecache.render_page(
        "provider/check.html",
        key,
        {"result_html": result_slot},
        form=form,
        has_result=result is not None,
    )
    return page, status


@bp.get("/pruefen")
@provider_required
def check() -> Any:
    """The check page for the till: camera scan or typed pass number."""
    return render_check()


@bp.post("/pruefen/ergebnis")
@not_limited  # its budgets are counted by count_check, not by Flask-Limiter
@hot_sql
@provider_required
@check_limits
@read_only
def check_result() -> Any:
    """Check a scanned or typed code and show the result (POST: the code is a secret, never in a URL)."""
    form = CheckForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            flash(_("Das Formular ist abgelaufen. Bitte prüfen Sie den Pass noch einmal."), "error")
        return render_check(form=form, status=400)
    code = form.code.data.strip()
    result = checks.check_pass(code, _provider_id(), berlin_today())
    if result.reason == "typo":
        form.code.errors.append(checks.status_message(result))
    return render_check(result, code, form=form)


@bp.post("/einloesen")
@provider_required
@check_limits
def redeem() -> Any:
    """Record a redemption of one of this provider's offers for the checked pass."""
    form = RedeemForm()
    provider = _provider()
    code = (form.code.data or "").strip()
    if not form.validate_on_submit():
        if not code or len(code) > checks.MAX_CODE_LENGTH:
            abort(400)
        for errors in (form.adults.errors, form.children.errors):
            for error in errors:
                flash(error, "error")
        if form.csrf_token.errors or form.offer_id.errors or form.idempotency_key.errors:
            flash(_("Das Formular war unvollständig. Bitte versuchen Sie es erneut."), "error")
        return render_check(checks.check_pass(code, provider, berlin_today()), code, status=400)
    offer = redemptions.own_offer(provider.id, form.offer_id.data)
    if offer is None:
        abort(404)
    today = berlin_today()
    result = checks.check_pass(code, provider, today)
    if result.pass_ is None:
        return render_check(result, code, status=422)
    try:
        redemption = redemptions.redeem_offer(
            result.pass_,
            offer,
            form.adults.data,
            form.children.data,
            current_user,
            form.idempotency_key.data,
            today,
        )
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return render_check(checks.check_pass(code, provider, today), code, status=exc.status)
    flash(_("Einlösung gespeichert: %(offer)s.", offer=offer.title), "success")
    return render_check(checks.check_pass(code, provider, today), code, just_redeemed=redemption)


@bp.post("/einloesungen/<int:redemption_id>/rueckgaengig")
@provider_required
@check_limits
def undo(redemption_id: int) -> Any:
    """Undo one of this provider's redemptions within the undo window."""
    form = UndoForm()
    if not form.validate_on_submit():
        abort(400)
    provider = _provider()
    redemption = redemptions.own_redemption(provider.id, redemption_id)
    if redemption is None:
        abort(404)
    try:
        redemptions.undo_redemption(redemption, current_user, utcnow())
        db.session.commit()
        flash(_("Die Einlösung wurde rückgängig gemacht."), "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    code = (form.code.data or "").strip()
    if code:
        return render_check(checks.check_pass(code, provider, berlin_today()), code)
    return redirect(url_for(".history"))


def _history_filters() -> tuple[HistoryFilterForm, redemptions.HistoryFilter, list[Any]]:
    provider = _provider()
    offers = redemptions.provider_offers(provider.id)
    form = HistoryFilterForm(formdata=request.args)
    form.offer.choices = [("", _("Alle Angebote"))] + [(str(o.id), o.title) for o in offers]
    if request.args and not form.validate():
        return form, redemptions.HistoryFilter(), offers
    filters = redemptions.HistoryFilter(
        date_from=form.date_from.data, date_to=form.date_to.data, offer_id=form.offer_id
    )
    return form, filters, offers


@bp.get("/einloesungen")
@provider_required
def history() -> Any:
    """The provider's redemptions: newest first, filters, monthly totals, pagination."""
    no_store()
    provider = _provider()
    form, filters, _offers = _history_filters()
    page = db.paginate(
        redemptions.history_select(provider.id, filters),
        # Bounded: a huge ?page= would overflow the database's OFFSET.
        page=max(1, min(request.args.get("page", 1, type=int) or 1, 100_000)),
        per_page=HISTORY_PAGE_SIZE,
        max_per_page=100,
        error_out=False,
    )
    totals = redemptions.monthly_totals(provider.id, filters)
    csv_args = {
        k: v for k, v in request.args.items() if k in ("date_from", "date_to", "offer") and v
    }
    return render_template(
        "provider/history.html",
        form=form,
        page=page,
        totals=totals,
        csv_args=csv_args,
        now=utcnow(),
        can_undo=redemptions.can_undo,
        undo_form=UndoForm(formdata=None),
        number_hint=checks.number_hint,
    )


@bp.get("/einloesungen.csv")
@provider_required
def history_csv() -> Response:
    """The history as CSV for a spreadsheet (UTF-8 with BOM, semicolons), streamed."""
    provider = _provider()
    form, filters, _offers = _history_filters()
    if form.errors:
        abort(400)
    filename = f"einloesungen-{berlin_today().isoformat()}.csv"
    response = Response(
        stream_with_context(redemptions.iter_csv(provider.id, filters)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
    no_store()
    return response


def _render_account(
    contact_form: ContactForm | None = None,
    token_form: ApiTokenForm | None = None,
    venue_forms: dict[int, VenueNotesForm] | None = None,
    new_token: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    no_store()
    provider = _provider()
    if contact_form is None:
        contact_form = ContactForm(formdata=None, obj=provider)
    forms = {
        v.id: VenueNotesForm(formdata=None, obj=v, prefix=f"venue-{v.id}") for v in provider.venues
    }
    forms.update(venue_forms or {})
    return (
        render_template(
            "provider/account.html",
            provider=provider,
            contact_form=contact_form,
            token_form=token_form or ApiTokenForm(formdata=None),
            venue_forms=forms,
            users=provider_users(provider.id),
            tokens=tokens_service.provider_tokens(provider.id),
            new_token=new_token,
            confirm_form=ConfirmForm(formdata=None),
        ),
        status,
    )


@bp.route("/konto", methods=["GET", "POST"])
@provider_required
def account() -> Any:
    """The provider's account: contact details, venues, people, API tokens."""
    form = ContactForm()
    if request.method == "GET":
        return _render_account()
    if not form.validate_on_submit():
        return _render_account(contact_form=form, status=400)
    diff = update_contact(
        _provider(),
        {k: form[k].data for k in ("contact_name", "email", "phone", "website")},
        current_user,
    )
    db.session.commit()
    flash(
        _("Die Kontaktdaten wurden gespeichert.") if diff else _("Es gab nichts zu ändern."),
        "success",
    )
    return redirect(url_for(".account"))


@bp.post("/konto/orte/<int:venue_id>")
@provider_required
def venue_notes(venue_id: int) -> Any:
    """Save a venue's accessibility notes."""
    provider = _provider()
    venue = db.session.get(Venue, venue_id) if 0 < venue_id <= redemptions.MAX_DB_INT else None
    if venue is None or venue.provider_id != provider.id:
        abort(404)
    form = VenueNotesForm(prefix=f"venue-{venue.id}")
    if not form.validate_on_submit():
        return _render_account(venue_forms={venue.id: form}, status=400)
    update_venue_notes(venue, form.accessibility.data, current_user)
    db.session.commit()
    flash(_("Die Hinweise für %(venue)s wurden gespeichert.", venue=venue.name), "success")
    return redirect(url_for(".account", _anchor=f"venue-{venue.id}"))


@bp.post("/konto/api-schluessel")
@provider_required
def token_create() -> Any:
    """Create an API token; the secret is shown once, on this response only."""
    form = ApiTokenForm()
    if not form.validate_on_submit():
        return _render_account(token_form=form, status=400)
    try:
        _token, raw = tokens_service.create_token(current_user, form.name.data)
    except DomainError as exc:
        db.session.rollback()
        form.name.errors.append(exc.message)
        return _render_account(token_form=form, status=exc.status)
    db.session.commit()
    return _render_account(new_token=raw)


@bp.post("/konto/api-schluessel/<int:token_id>/widerrufen")
@provider_required
def token_revoke(token_id: int) -> Any:
    """Revoke an API token of this provider."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    token = tokens_service.own_token(_provider().id, token_id)
    if token is None:
        abort(404)
    tokens_service.revoke_token(token, current_user, utcnow())
    db.session.commit()
    flash(_("Der Schlüssel „%(name)s“ wurde widerrufen.", name=token.name), "success")
    return redirect(url_for(".account", _anchor="api-schluessel"))
