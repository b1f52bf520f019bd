"""The district office's pages: overview, catalogue, editions, localities, CSV, users, settings.

Every view checks the role on the server (staff_required / admin_required). Views parse a form,
call one service, commit once and redirect; a refused change re-renders the form with 422.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from kyffikus.authz import admin_required, staff_required
from kyffikus.extensions import db
from kyffikus.models import (
    Application,
    Category,
    Edition,
    Locality,
    Municipality,
    Offer,
    Pass,
    PostalCode,
    Provider,
    User,
    Venue,
    berlin_today,
)
from kyffikus.services import Conflict, DomainError, catalogue_csv, users_admin
from kyffikus.services import catalogue_admin as catalogue
from kyffikus.services.audit import record
from kyffikus.staff.forms import (
    ROLE_LABELS,
    CategoryForm,
    ConfirmForm,
    EditionForm,
    ImportForm,
    InviteForm,
    LocalityForm,
    MunicipalityForm,
    NewEditionForm,
    OfferForm,
    PostalCodeForm,
    ProviderForm,
    RoleForm,
    SettingsForm,
    UserSearchForm,
    VenueForm,
)
from kyffikus.web import no_store, safe_next

bp = Blueprint("staff", __name__)

T = TypeVar("T")

PAGE_SIZE = 50
# More pages than any list has; a bigger ?page= would overflow the database's OFFSET.
MAX_PAGE = 100_000


def _page_number() -> int:
    """The ?page= argument as a page from 1 to MAX_PAGE; anything else is page 1."""
    return max(1, min(request.args.get("page", 1, type=int) or 1, MAX_PAGE))


def _paginate(statement: Select[Any]) -> Any:
    """The ?page= page of a list, PAGE_SIZE rows."""
    return db.paginate(statement, page=_page_number(), per_page=PAGE_SIZE, error_out=False)


def _filtered(
    statement: Select[Any],
    q: str,
    columns: tuple[Any, ...],
    published: Any,
    state: str,
    hidden_state: str,
) -> Select[Any]:
    """Rows where a column contains q (any case; % and _ are literal) and of a published state.

    state "veroeffentlicht" keeps the published rows, state hidden_state the unpublished ones.
    """
    if q:
        pattern = (
            "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        statement = statement.where(
            or_(*(func.lower(column).like(pattern, escape="\\") for column in columns))
        )
    if state == "veroeffentlicht":
        statement = statement.where(published.is_(True))
    elif state == hidden_state:
        statement = statement.where(published.is_(False))
    return statement


@bp.app_template_global("has_endpoint")
def has_endpoint(name: str) -> bool:
    """Whether an endpoint exists: link to other staff areas only once they are there."""
    return name in current_app.view_functions


@bp.context_processor
def _staff_helpers() -> dict[str, Any]:
    """Words for roles on the staff pages."""
    return {"role_labels": ROLE_LABELS}


# ---- helpers ----------------------------------------------------------------------------------


def _show_errors(form: FlaskForm, errors: dict[str, list[str]]) -> None:
    """Put a service's problems on the form's fields (or on the form when no field fits)."""
    for name, messages in errors.items():
        field = form._fields.get(name)
        if field is not None:
            field.errors = list(field.errors) + list(messages)
        else:
            form.form_errors.extend(messages)


@contextmanager
def _savepoint() -> Iterator[None]:
    """Run a service call in a savepoint: a refusal undoes what it wrote, and only that.

    A unique constraint that fires because someone saved the same key a moment ago becomes a
    Conflict with a message instead of an error page.
    """
    try:
        with db.session.begin_nested():
            yield
    except IntegrityError as exc:
        raise Conflict(
            _(
                "Die Angaben widersprechen einem Eintrag, der gerade gespeichert wurde. Bitte prüfen Sie sie und versuchen Sie es noch einmal."
            )
        ) from exc


def _refused(form: FlaskForm, exc: DomainError) -> None:
    """Show a refused change on the form; nothing of it stays in the database."""
    if isinstance(exc, catalogue.CatalogueInvalid):
        _show_errors(form, exc.errors)
    elif exc.field and exc.field in form._fields:
        _show_errors(form, {exc.field: [exc.message]})
    else:
        form.form_errors.append(exc.message)


def _form_view(
    form: FlaskForm, save: Callable[[], T], done: Callable[[T], Response], **page: Any
) -> Any:
    """A staff form page (staff/form.html): a valid submit is saved, committed and done.

    save runs in a savepoint and returns what done needs to flash and redirect; a refused
    change stays on the form, shown with status 422. page: title, back_url, back_label, ...
    """
    if form.validate_on_submit():
        try:
            with _savepoint():
                saved = save()
        except DomainError as exc:
            _refused(form, exc)
        else:
            db.session.commit()
            return done(saved)
    status = 422 if form.errors or form.form_errors else 200
    return render_template("staff/form.html", form=form, **page), status


def _form_back(
    form: FlaskForm, save: Callable[[], object], saved: str, title: str, back_url: str, **page: Any
) -> Any:
    """A staff form page whose saving flashes saved and goes back where its back link points."""
    return _form_view(
        form, save, lambda _result: _go(back_url, saved), title=title, back_url=back_url, **page
    )


def _go(target: str, message: str, category: str = "success") -> Response:
    """Flash the message and redirect to target."""
    flash(message, category)
    return redirect(target)


def _button_action(change: Callable[[], object]) -> bool:
    """Run a button's change in a savepoint and commit it; a refusal is flashed as an error."""
    try:
        with _savepoint():
            change()
    except DomainError as exc:
        flash(exc.message, "error")
        return False
    db.session.commit()
    return True


def _publish_button(
    change: Callable[[bool], object], published_message: str, hidden_message: str, default: str
) -> Response:
    """Publish (published=1) or unpublish (published=0) from a button, then back to next."""
    published = request.form.get("published") == "1"
    change(published)
    db.session.commit()
    flash(published_message if published else hidden_message, "success")
    return _back(default)


def _back(default: str) -> Response:
    """Redirect to the form's safe `next` or the default."""
    return redirect(safe_next(request.form.get("next"), default) or default)


def _posted(model: type[T], ident: int) -> T:
    """The object a button posts to, once the token is checked (a bad one is 400, before 404).

    Buttons post only a CSRF token (the global CSRFProtect checks it too).
    """
    if not ConfirmForm().validate_on_submit():
        abort(400)
    return db.get_or_404(model, ident)


def _choices_editions() -> list[SelectChoice]:
    editions = db.session.scalars(select(Edition).order_by(Edition.number.desc()))
    return [SelectChoice(e.id, f"{e.number}: {e.name}") for e in editions]  # type: ignore[arg-type]


def _choices_categories() -> list[SelectChoice]:
    categories = db.session.scalars(select(Category).order_by(Category.position, Category.name_de))
    return [SelectChoice(c.id, c.name_de) for c in categories]  # type: ignore[arg-type]


def _choices_providers(blank: str) -> list[SelectChoice]:
    providers = db.session.scalars(select(Provider).order_by(Provider.name))
    return [SelectChoice(0, blank)] + [SelectChoice(p.id, p.name) for p in providers]  # type: ignore[arg-type]


# ---- overview ---------------------------------------------------------------------------------


@bp.get("/")
@staff_required
def dashboard() -> str:
    """The staff overview: every area with quick counts."""
    today = berlin_today()
    edition = catalogue.current_edition(today)

    def count(statement: Any) -> int:
        return int(db.session.scalar(statement) or 0)

    counts = {
        "providers": count(select(func.count()).select_from(Provider)),
        "providers_published": count(select(func.count()).where(Provider.published.is_(True))),
        "editions": count(select(func.count()).select_from(Edition)),
        "categories": count(select(func.count()).select_from(Category)),
        "localities": count(select(func.count()).where(Locality.active.is_(True))),
        "municipalities": count(select(func.count()).where(Municipality.active.is_(True))),
        "applications_waiting": count(
            select(func.count()).where(Application.status == "submitted")
        ),
        "passes_active": count(select(func.count()).where(Pass.status == "active")),
        "offers_published": 0,
        "offers_draft": 0,
    }
    if edition is not None:
        counts["offers_published"] = count(
            select(func.count()).where(Offer.edition_id == edition.id, Offer.published.is_(True))
        )
        counts["offers_draft"] = count(
            select(func.count()).where(Offer.edition_id == edition.id, Offer.published.is_(False))
        )
    return render_template(
        "staff/dashboard.html",
        edition=edition,
        counts=counts,
        users=users_admin.role_counts(),
    )


# ---- providers and venues ---------------------------------------------------------------------


@bp.get("/anbieter")
@staff_required
def providers() -> str:
    """Providers, searchable by name, filterable by published state."""
    q = (request.args.get("q") or "").strip()[:200]
    state = request.args.get("status", "")
    statement = _filtered(
        select(Provider).order_by(Provider.name),
        q,
        (Provider.name, Provider.slug),
        Provider.published,
        state,
        "verborgen",
    )
    return render_template("staff/providers.html", page=_paginate(statement), q=q, state=state)


@bp.route("/anbieter/neu", methods=["GET", "POST"])
@staff_required
def provider_new() -> Any:
    """Add a provider."""
    form = ProviderForm()
    return _form_view(
        form,
        lambda: catalogue.create_provider(form.data, current_user),
        lambda provider: _go(
            url_for("staff.provider_detail", provider_id=provider.id),
            _("Der Anbieter „%(name)s“ wurde angelegt.", name=provider.name),
        ),
        title=_("Neuer Anbieter"),
        back_url=url_for("staff.providers"),
        back_label=_("Zurück zu den Anbietern"),
    )


@bp.get("/anbieter/<int:provider_id>")
@staff_required
def provider_detail(provider_id: int) -> str:
    """A provider with its venues, offers per edition and accounts."""
    provider = db.get_or_404(Provider, provider_id)
    offers = db.session.scalars(
        select(Offer)
        .where(Offer.provider_id == provider.id)
        .join(Offer.edition)
        .options(
            selectinload(Offer.venues), selectinload(Offer.edition), selectinload(Offer.category)
        )
        .order_by(Edition.number.desc(), Offer.title)
    ).all()
    return render_template("staff/provider_detail.html", provider=provider, offers=offers)


@bp.route("/anbieter/<int:provider_id>/bearbeiten", methods=["GET", "POST"])
@staff_required
def provider_edit(provider_id: int) -> Any:
    """Change a provider."""
    provider = db.get_or_404(Provider, provider_id)
    form = ProviderForm(obj=provider)
    return _form_back(
        form,
        lambda: catalogue.update_provider(provider, form.data, current_user),
        _("Die Angaben wurden gespeichert."),
        _("%(name)s bearbeiten", name=provider.name),
        url_for("staff.provider_detail", provider_id=provider.id),
        back_label=_("Zurück zum Anbieter"),
    )


@bp.post("/anbieter/<int:provider_id>/veroeffentlichen")
@staff_required
def provider_publish(provider_id: int) -> Response:
    """Publish (published=1) or unpublish (published=0) a provider."""
    provider = _posted(Provider, provider_id)
    return _publish_button(
        lambda published: catalogue.set_provider_published(provider, published, current_user),
        _("„%(name)s“ steht jetzt im Verzeichnis.", name=provider.name),
        _("„%(name)s“ ist nicht mehr im Verzeichnis.", name=provider.name),
        url_for("staff.provider_detail", provider_id=provider.id),
    )


@bp.post("/anbieter/<int:provider_id>/loeschen")
@staff_required
def provider_delete(provider_id: int) -> Response:
    """Delete a provider without offers, accounts or redemptions."""
    provider = _posted(Provider, provider_id)
    name = provider.name
    if not _button_action(lambda: catalogue.delete_provider(provider, current_user)):
        return redirect(url_for("staff.provider_detail", provider_id=provider_id))
    return _go(url_for("staff.providers"), _("Der Anbieter „%(name)s“ wurde gelöscht.", name=name))


@bp.route("/anbieter/<int:provider_id>/standorte/neu", methods=["GET", "POST"])
@staff_required
def venue_new(provider_id: int) -> Any:
    """Add a venue to a provider."""
    provider = db.get_or_404(Provider, provider_id)
    form = VenueForm()
    return _form_back(
        form,
        lambda: catalogue.create_venue(provider, form.data, current_user),
        _("Der Standort wurde angelegt."),
        _("Neuer Standort für %(name)s", name=provider.name),
        url_for("staff.provider_detail", provider_id=provider.id),
        back_label=_("Zurück zum Anbieter"),
    )


@bp.route("/standorte/<int:venue_id>/bearbeiten", methods=["GET", "POST"])
@staff_required
def venue_edit(venue_id: int) -> Any:
    """Change a venue."""
    venue = db.get_or_404(Venue, venue_id)
    form = VenueForm(obj=venue)
    return _form_back(
        form,
        lambda: catalogue.update_venue(venue, form.data, current_user),
        _("Der Standort wurde gespeichert."),
        _("Standort „%(name)s“ bearbeiten", name=venue.name),
        url_for("staff.provider_detail", provider_id=venue.provider_id),
        back_label=_("Zurück zum Anbieter"),
    )


@bp.post("/standorte/<int:venue_id>/loeschen")
@staff_required
def venue_delete(venue_id: int) -> Response:
    """Delete a venue no offer uses."""
    venue = _posted(Venue, venue_id)
    provider_id = venue.provider_id
    if _button_action(lambda: catalogue.delete_venue(venue, current_user)):
        flash(_("Der Standort wurde gelöscht."), "success")
    return redirect(url_for("staff.provider_detail", provider_id=provider_id))


# ---- offers -----------------------------------------------------------------------------------


@bp.get("/angebote")
@staff_required
def offers() -> str:
    """Offers of one edition (the current one by default), filterable by state and text."""
    editions = db.session.scalars(select(Edition).order_by(Edition.number.desc())).all()
    edition = None
    raw_edition = request.args.get("auflage", "")
    if raw_edition.isdecimal() and len(raw_edition) <= 9:
        edition = next((e for e in editions if e.number == int(raw_edition)), None)
    if edition is None:
        edition = catalogue.current_edition(berlin_today())
    q = (request.args.get("q") or "").strip()[:200]
    state = request.args.get("status", "")
    page = None
    if edition is not None:
        statement = (
            select(Offer)
            .join(Offer.provider)
            .where(Offer.edition_id == edition.id)
            .options(selectinload(Offer.provider), selectinload(Offer.category))
            .order_by(Provider.name, Offer.title)
        )
        columns = (Offer.title, Provider.name, Offer.key)
        page = _paginate(_filtered(statement, q, columns, Offer.published, state, "entwurf"))
    return render_template(
        "staff/offers.html",
        page=page,
        editions=editions,
        edition=edition,
        q=q,
        state=state,
    )


def _offer_form(provider: Provider, offer: Offer | None = None) -> OfferForm:
    form = OfferForm(obj=offer)
    form.edition_id.choices = _choices_editions()
    form.category_id.choices = _choices_categories()
    form.venues.choices = [
        SelectChoice(v.id, f"{v.name} ({v.town})")  # type: ignore[arg-type]
        for v in provider.venues
    ]
    if request.method == "GET":
        if offer is not None:
            form.venues.data = [v.id for v in offer.venues]
        else:
            latest = catalogue.current_edition(berlin_today())
            form.edition_id.data = latest.id if latest else None
            form.venues.data = [v.id for v in provider.venues] if len(provider.venues) == 1 else []
    return form


def _offer_values(form: OfferForm) -> dict[str, Any]:
    values = dict(form.data)
    values.pop("csrf_token", None)
    return values


@bp.route("/anbieter/<int:provider_id>/angebote/neu", methods=["GET", "POST"])
@staff_required
def offer_new(provider_id: int) -> Any:
    """Add an offer of a provider."""
    provider = db.get_or_404(Provider, provider_id)
    form = _offer_form(provider)
    return _form_view(
        form,
        lambda: catalogue.create_offer(provider, _offer_values(form), current_user),
        lambda offer: _go(
            url_for("staff.offer_preview", offer_id=offer.id),
            _("Das Angebot „%(title)s“ wurde angelegt.", title=offer.title),
        ),
        title=_("Neues Angebot von %(name)s", name=provider.name),
        back_url=url_for("staff.provider_detail", provider_id=provider.id),
        back_label=_("Zurück zum Anbieter"),
        intro=None
        if provider.venues
        else _(
            "Legen Sie zuerst einen Standort an; jedes Angebot gilt an mindestens einem Standort."
        ),
    )


@bp.route("/angebote/<int:offer_id>/bearbeiten", methods=["GET", "POST"])
@staff_required
def offer_edit(offer_id: int) -> Any:
    """Change an offer."""
    offer = db.get_or_404(Offer, offer_id)
    form = _offer_form(offer.provider, offer)
    return _form_back(
        form,
        lambda: catalogue.update_offer(offer, _offer_values(form), current_user),
        _("Das Angebot wurde gespeichert."),
        _("Angebot „%(title)s“ bearbeiten", title=offer.title),
        url_for("staff.offer_preview", offer_id=offer.id),
        back_label=_("Zurück zur Vorschau"),
    )


@bp.get("/angebote/<int:offer_id>/vorschau")
@staff_required
def offer_preview(offer_id: int) -> str:
    """An offer as families will see it, with its state and actions."""
    offer = db.get_or_404(Offer, offer_id)
    copied_from = db.session.get(Offer, offer.copied_from_id) if offer.copied_from_id else None
    return render_template("staff/offer_preview.html", offer=offer, copied_from=copied_from)


@bp.post("/angebote/<int:offer_id>/veroeffentlichen")
@staff_required
def offer_publish(offer_id: int) -> Response:
    """Publish (published=1) or unpublish (published=0) an offer."""
    offer = _posted(Offer, offer_id)
    return _publish_button(
        lambda published: catalogue.set_offer_published(offer, published, current_user),
        _("„%(title)s“ ist veröffentlicht.", title=offer.title),
        _("„%(title)s“ ist nicht mehr veröffentlicht.", title=offer.title),
        url_for("staff.offer_preview", offer_id=offer.id),
    )


@bp.post("/angebote/<int:offer_id>/loeschen")
@staff_required
def offer_delete(offer_id: int) -> Response:
    """Delete an offer that was never redeemed."""
    offer = _posted(Offer, offer_id)
    provider_id = offer.provider_id
    if not _button_action(lambda: catalogue.delete_offer(offer, current_user)):
        return redirect(url_for("staff.offer_preview", offer_id=offer_id))
    return _go(
        url_for("staff.provider_detail", provider_id=provider_id),
        _("Das Angebot wurde gelöscht."),
    )


# ---- categories -------------------------------------------------------------------------------


@bp.get("/kategorien")
@staff_required
def categories() -> str:
    """The categories with their number of offers."""
    rows = db.session.execute(
        select(Category, func.count(Offer.id))
        .outerjoin(Offer, Offer.category_id == Category.id)
        .group_by(Category.id)
        .order_by(Category.position, Category.name_de)
    ).all()
    return render_template("staff/categories.html", rows=rows)


@bp.route("/kategorien/neu", methods=["GET", "POST"])
@staff_required
def category_new() -> Any:
    """Add a category."""
    form = CategoryForm()
    return _form_back(
        form,
        lambda: catalogue.create_category(form.data, current_user),
        _("Die Kategorie wurde angelegt."),
        _("Neue Kategorie"),
        url_for("staff.categories"),
        back_label=_("Zurück zu den Kategorien"),
    )


@bp.route("/kategorien/<int:category_id>/bearbeiten", methods=["GET", "POST"])
@staff_required
def category_edit(category_id: int) -> Any:
    """Change a category."""
    category = db.get_or_404(Category, category_id)
    form = CategoryForm(obj=category)
    return _form_back(
        form,
        lambda: catalogue.update_category(category, form.data, current_user),
        _("Die Kategorie wurde gespeichert."),
        _("Kategorie „%(name)s“ bearbeiten", name=category.name_de),
        url_for("staff.categories"),
        back_label=_("Zurück zu den Kategorien"),
    )


@bp.post("/kategorien/<int:category_id>/loeschen")
@staff_required
def category_delete(category_id: int) -> Response:
    """Delete a category without offers."""
    category = _posted(Category, category_id)
    if _button_action(lambda: catalogue.delete_category(category, current_user)):
        flash(_("Die Kategorie wurde gelöscht."), "success")
    return redirect(url_for("staff.categories"))


# ---- editions ---------------------------------------------------------------------------------


@bp.get("/auflagen")
@staff_required
def editions() -> str:
    """The editions with their numbers of published and draft offers."""
    rows = db.session.execute(
        select(
            Edition,
            func.count(Offer.id).filter(Offer.published.is_(True)),
            func.count(Offer.id).filter(Offer.published.is_(False)),
        )
        .outerjoin(Offer, Offer.edition_id == Edition.id)
        .group_by(Edition.id)
        .order_by(Edition.number.desc())
    ).all()
    return render_template("staff/editions.html", rows=rows, today=berlin_today())


def _edition_created(created: tuple[Edition, int]) -> Response:
    """Say how many offers a new edition took over as drafts, and show them."""
    edition, copied = created
    return _go(
        url_for("staff.offers", auflage=edition.number, status="entwurf"),
        _(
            "Die Ausgabe %(number)d wurde angelegt; %(count)d Angebote wurden als Entwürfe übernommen.",
            number=edition.number,
            count=copied,
        ),
    )


@bp.route("/auflagen/neu", methods=["GET", "POST"])
@staff_required
def edition_new() -> Any:
    """Add an edition; the previous edition's offers become drafts of it."""
    form = NewEditionForm(
        data=catalogue.next_edition_defaults() if request.method == "GET" else None
    )
    return _form_view(
        form,
        lambda: catalogue.create_edition(
            form.data, current_user, copy_offers=bool(form.data.get("copy_offers"))
        ),
        _edition_created,
        title=_("Neue Ausgabe"),
        intro=_(
            "Pässe, die in einer Ausgabe ausgestellt werden, gelten bis zu ihrem Ende. Die übernommenen Angebote sind Entwürfe: prüfen Sie sie und veröffentlichen Sie sie einzeln."
        ),
        back_url=url_for("staff.editions"),
        back_label=_("Zurück zu den Ausgaben"),
    )


@bp.route("/auflagen/<int:edition_id>/bearbeiten", methods=["GET", "POST"])
@staff_required
def edition_edit(edition_id: int) -> Any:
    """Change an edition's number, name or dates."""
    edition = db.get_or_404(Edition, edition_id)
    form = EditionForm(obj=edition)
    return _form_back(
        form,
        lambda: catalogue.update_edition(edition, form.data, current_user),
        _("Die Ausgabe wurde gespeichert."),
        _("Ausgabe %(number)d bearbeiten", number=edition.number),
        url_for("staff.editions"),
        intro=_("Schon ausgestellte Pässe behalten ihr Gültigkeitsdatum."),
        back_label=_("Zurück zu den Ausgaben"),
    )


# ---- municipalities, localities, postal codes -------------------------------------------------


@bp.get("/orte")
@staff_required
def localities() -> str:
    """Municipalities with their localities, and the postal codes with their notes."""
    municipalities = db.session.scalars(
        select(Municipality)
        .options(selectinload(Municipality.localities))
        .order_by(Municipality.name)
    ).all()
    codes = db.session.scalars(select(PostalCode).order_by(PostalCode.code)).all()
    return render_template("staff/localities.html", municipalities=municipalities, codes=codes)


@bp.route("/gemeinden/neu", methods=["GET", "POST"])
@bp.route("/gemeinden/<int:municipality_id>/bearbeiten", methods=["GET", "POST"])
@staff_required
def municipality_edit(municipality_id: int | None = None) -> Any:
    """Add or change a municipality."""
    current = db.get_or_404(Municipality, municipality_id) if municipality_id else None
    form = MunicipalityForm(obj=current)
    return _form_back(
        form,
        lambda: catalogue.save_municipality(current, form.data, current_user),
        _("Die Gemeinde wurde gespeichert."),
        _("Gemeinde „%(name)s“ bearbeiten", name=current.name) if current else _("Neue Gemeinde"),
        url_for("staff.localities"),
        back_label=_("Zurück zu den Orten"),
    )


@bp.route("/orte/neu", methods=["GET", "POST"])
@bp.route("/orte/<int:locality_id>/bearbeiten", methods=["GET", "POST"])
@staff_required
def locality_edit(locality_id: int | None = None) -> Any:
    """Add or change a locality (name, postal code, municipality, active)."""
    current = db.get_or_404(Locality, locality_id) if locality_id else None
    form = LocalityForm(obj=current)
    form.municipality_id.choices = [
        SelectChoice(m.id, m.name)  # type: ignore[arg-type]
        for m in db.session.scalars(select(Municipality).order_by(Municipality.name))
    ]
    if (
        request.method == "GET"
        and current is None
        and request.args.get("gemeinde", "").isdecimal()
        and len(request.args["gemeinde"]) <= 9
    ):
        form.municipality_id.data = int(request.args["gemeinde"])
    return _form_back(
        form,
        lambda: catalogue.save_locality(current, form.data, current_user),
        _("Der Ort wurde gespeichert."),
        _("Ort „%(name)s“ bearbeiten", name=current.name) if current else _("Neuer Ort"),
        url_for("staff.localities"),
        back_label=_("Zurück zu den Orten"),
    )


@bp.route("/postleitzahlen/<code>/bearbeiten", methods=["GET", "POST"])
@staff_required
def postal_code_edit(code: str) -> Any:
    """Say whether a postal code is shared with another district (06578) and what families read."""
    postal_code = db.get_or_404(PostalCode, code)
    form = PostalCodeForm(obj=postal_code)
    return _form_back(
        form,
        lambda: catalogue.update_postal_code(postal_code, form.data, current_user),
        _("Die Postleitzahl wurde gespeichert."),
        _("Postleitzahl %(code)s", code=postal_code.code),
        url_for("staff.localities"),
        back_label=_("Zurück zu den Orten"),
    )


# ---- CSV import and export --------------------------------------------------------------------


@bp.route("/import", methods=["GET", "POST"])
@staff_required
def csv_import() -> Any:
    """Import providers or offers from CSV: a dry run first, then all rows or none."""
    form = ImportForm()
    result = None
    content = None
    status = 200
    if form.validate_on_submit():
        upload = form.file.data
        raw: bytes | str | None = None
        if isinstance(upload, FileStorage) and upload.filename:
            raw = upload.read()
        elif form.content.data:
            raw = form.content.data
        if not raw:
            form.file.errors = [_("Bitte wählen Sie eine CSV-Datei aus.")]
            status = 422
        else:
            dry_run = request.form.get("action") != "import"
            try:
                with _savepoint():
                    content = catalogue_csv.decode(raw)
                    result = catalogue_csv.run_import(
                        form.kind.data, content, current_user, dry_run=dry_run
                    )
            except DomainError as exc:
                form.file.errors = [exc.message]
                status = 422
            else:
                if result.written:
                    db.session.commit()
                    flash(
                        _(
                            "Import abgeschlossen: %(created)d neu, %(updated)d geändert, %(unchanged)d unverändert.",
                            created=result.created,
                            updated=result.updated,
                            unchanged=result.unchanged,
                        ),
                        "success",
                    )
                    return redirect(url_for("staff.csv_import"))
                if result.problems:
                    status = 422
    elif request.method == "POST":
        status = 422
    return (
        render_template(
            "staff/import.html",
            form=form,
            result=result,
            content=content,
            provider_columns=catalogue_csv.PROVIDER_COLUMNS,
            offer_columns=catalogue_csv.OFFER_COLUMNS,
        ),
        status,
    )


def _csv_response(text: str, filename: str) -> Response:
    no_store()
    response = Response(text, mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/export/anbieter.csv")
@staff_required
def export_providers() -> Response:
    """Every provider with its venues as CSV (the import's format)."""
    return _csv_response(catalogue_csv.export_providers(), "anbieter.csv")


@bp.get("/export/angebote.csv")
@staff_required
def export_offers() -> Response:
    """The offers of one edition (?auflage=N) or of all editions as CSV (the import's format)."""
    edition = None
    raw = request.args.get("auflage", "")
    if raw:
        if not raw.isdecimal() or len(raw) > 9:
            abort(400, _("Die Ausgabe ist eine Nummer."))
        edition = db.session.scalars(select(Edition).where(Edition.number == int(raw))).first()
        if edition is None:
            abort(404)
    name = f"angebote-auflage-{edition.number}.csv" if edition else "angebote.csv"
    return _csv_response(catalogue_csv.export_offers(edition), name)


# ---- users ------------------------------------------------------------------------------------


@bp.get("/benutzer")
@staff_required
def users() -> str:
    """Accounts, searchable by e-mail address (or provider name), role and state."""
    no_store()
    form = UserSearchForm(formdata=request.args)
    q = (form.q.data or "").strip()[:254]
    role = form.role.data if form.role.data in ROLE_LABELS else None
    state = {"active": True, "inactive": False}.get(form.state.data or "")
    statement = users_admin.search_users(q, role, state).options(selectinload(User.provider))
    return render_template("staff/users.html", form=form, page=_paginate(statement))


@bp.route("/benutzer/einladen", methods=["GET", "POST"])
@staff_required
def user_invite() -> Any:
    """Invite a provider account (staff) or a staff or admin account (admins)."""
    form = InviteForm()
    form.role.choices = [
        SelectChoice(r, ROLE_LABELS[r]) for r in users_admin.invitable_roles(current_user)
    ]
    form.provider_id.choices = _choices_providers(_("– kein Anbieter –"))
    if request.method == "GET":
        form.role.data = "provider"
        if request.args.get("anbieter", "").isdecimal() and len(request.args["anbieter"]) <= 9:
            form.provider_id.data = int(request.args["anbieter"])
    return _form_view(
        form,
        lambda: users_admin.invite(
            form.email.data or "",
            form.role.data or "",
            db.session.get(Provider, form.provider_id.data) if form.provider_id.data else None,
            current_user,
        ),
        lambda user: _go(
            url_for("staff.user_detail", user_id=user.id),
            _("Die Einladung wurde an %(email)s geschickt.", email=user.email),
        ),
        title=_("Konto einladen"),
        intro=_(
            "Die Person bekommt eine E-Mail mit einem Link, über den sie ihr Passwort festlegt."
        ),
        back_url=url_for("staff.users"),
        back_label=_("Zurück zu den Benutzern"),
        submit_label=_("Einladung senden"),
    )


@bp.get("/benutzer/<int:user_id>")
@staff_required
def user_detail(user_id: int) -> str:
    """One account with the actions the current user may take."""
    no_store()
    user = db.get_or_404(User, user_id)
    if user.role == "family":
        # A family's account is personal data: staff reads are logged.
        record(current_user, "user.view", user)
        db.session.commit()
    role_form = RoleForm()
    role_form.role.data = user.role if user.role != "family" else "staff"
    role_form.provider_id.choices = _choices_providers(_("– kein Anbieter –"))
    role_form.provider_id.data = user.provider_id or 0
    return render_template(
        "staff/user_detail.html",
        user=user,
        role_form=role_form,
        may_manage=users_admin.may_manage(current_user, user),
        may_change_role=users_admin.may_change_role(current_user, user),
    )


def _user_action(user_id: int, action: Callable[[User, User], object], success: str) -> Response:
    """Run one account action (target, by) from a button; refusals are shown as a message."""
    user = _posted(User, user_id)
    if _button_action(lambda: action(user, current_user)):
        flash(success, "success")
    return redirect(url_for("staff.user_detail", user_id=user_id))


@bp.post("/benutzer/<int:user_id>/deaktivieren")
@staff_required
def user_deactivate(user_id: int) -> Response:
    """Deactivate an account: it cannot log in and its sessions end at once."""
    return _user_action(
        user_id,
        users_admin.deactivate,
        _("Das Konto wurde deaktiviert; alle Sitzungen sind beendet."),
    )


@bp.post("/benutzer/<int:user_id>/freischalten")
@staff_required
def user_reactivate(user_id: int) -> Response:
    """Let a deactivated account log in again."""
    return _user_action(user_id, users_admin.reactivate, _("Das Konto ist wieder freigeschaltet."))


@bp.post("/benutzer/<int:user_id>/passwort-zuruecksetzen")
@staff_required
def user_send_reset(user_id: int) -> Response:
    """Mail the user a link to set a new password."""
    return _user_action(
        user_id,
        users_admin.send_reset,
        _("Ein Link zum Zurücksetzen des Passworts wurde per E-Mail geschickt."),
    )


@bp.post("/benutzer/<int:user_id>/rolle")
@admin_required
def user_role(user_id: int) -> Response:
    """Change an account's role (admins only)."""
    user = db.get_or_404(User, user_id)
    form = RoleForm()
    form.provider_id.choices = _choices_providers("")
    if not form.validate_on_submit():
        abort(400)
    provider = db.session.get(Provider, form.provider_id.data) if form.provider_id.data else None
    if _button_action(
        lambda: users_admin.change_role(user, form.role.data or "", provider, current_user)
    ):
        flash(
            _("Die Rolle ist jetzt „%(role)s“.", role=ROLE_LABELS.get(user.role, user.role)),
            "success",
        )
    return redirect(url_for("staff.user_detail", user_id=user_id))


# ---- settings ---------------------------------------------------------------------------------


def _settings_saved(diff: dict[str, Any]) -> Response:
    """Say whether the settings changed, and show them again."""
    if diff:
        return _go(url_for("staff.settings"), _("Die Einstellungen wurden gespeichert."))
    return _go(url_for("staff.settings"), _("Es wurde nichts geändert."), "info")


@bp.route("/einstellungen", methods=["GET", "POST"])
@admin_required
def settings() -> Any:
    """Settings admins may change: auto-approval, families in the district, staff 2FA."""
    form = SettingsForm(data=users_admin.current_settings() if request.method == "GET" else None)
    return _form_view(
        form,
        lambda: users_admin.change_settings(form.data, current_user),
        _settings_saved,
        title=_("Einstellungen"),
        back_url=url_for("staff.dashboard"),
        back_label=_("Zurück zur Übersicht"),
    )
