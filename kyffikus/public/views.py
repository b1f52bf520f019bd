"""Public pages: home, offer directory, providers, privacy, imprint, language switch."""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import ngettext
from flask_login import current_user
from werkzeug.wrappers import Response

from kyffikus import pagecache
from kyffikus.i18n import LANG_COOKIE, locale_code
from kyffikus.models.base import berlin_today
from kyffikus.public.forms import OfferFilterForm
from kyffikus.readonly import read_only
from kyffikus.services import directory
from kyffikus.services.directory import InvalidParameter
from kyffikus.web import safe_next

bp = Blueprint("public", __name__)

# The directory's wording (benefit, ages, limit, category name) as globals of every template,
# so imported macros see them too.
for _name, _helper in directory.template_helpers().items():
    bp.add_app_template_global(_helper, _name)


@bp.get("/")
@read_only
def home() -> str:
    """What Kyffikus is, who may apply, how to get the pass, how providers take part."""
    edition = directory.current_edition()
    offer_count, provider_count = directory.catalogue_size(edition)
    return render_template(
        "public/home.html",
        edition=edition,
        offer_count=offer_count,
        provider_count=provider_count,
    )


@bp.get("/angebote")
@read_only
def offers() -> tuple[str, int]:
    """The offer directory: search words, filters, sorting and pages, all kept in the URL."""
    # The same filters give everybody of the same role the same page until the catalogue
    # changes: a worker keeps it for a minute (kyffikus.pagecache).
    key = _directory_key()
    page = pagecache.cached_page(key)
    if page is not None:
        return page, 200
    # Edition, categories and towns change a few times a year: kept for a minute (see there).
    metadata = directory.listing_metadata()
    categories, edition = metadata.categories, metadata.edition
    form = OfferFilterForm(formdata=request.args)
    form.fill_choices(categories, metadata.towns)
    status = 200
    results = None
    filters = None
    try:
        filters = directory.parse_filters(request.args, categories)
    except InvalidParameter as exc:
        status = 400
        field = form._fields.get(exc.field or "")
        if field is not None:
            field.errors = [exc.message]
        else:
            form.form_errors.append(exc.message)
    else:
        results = directory.find_offers(filters, edition)
    return (
        pagecache.render_page(
            "public/offers.html",
            key if status == 200 else None,
            form=form,
            filters=filters,
            results=results,
            edition=edition,
        ),
        status,
    )


def _directory_key() -> tuple[Any, ...] | None:
    """What a directory page depends on: the query, the day, the language and the role."""
    role = current_user.role if current_user.is_authenticated else None
    return ("public/offers.html", request.full_path, berlin_today(), locale_code(), role)


@bp.get("/angebote/<int:offer_id>")
@read_only
def offer(offer_id: int) -> str:
    """One offer: benefit, conditions, ages, venues with addresses."""
    edition = directory.current_edition()
    found = directory.get_listed_offer(offer_id, edition)
    if found is None:
        abort(404)
    return render_template("public/offer.html", offer=found)


@bp.get("/anbieter-verzeichnis/<slug>")
@read_only
def provider(slug: str) -> str:
    """One provider: description, contact, venues with addresses, all its listed offers."""
    edition = directory.current_edition()
    found = directory.get_listed_provider(slug, edition)
    if found is None:
        abort(404)
    provider, offers = found
    return render_template(
        "public/provider.html", provider=provider, offers=offers, edition=edition
    )


def _duration(days: int) -> str:
    """A retention period in words: whole years as years, anything else in days."""
    if days >= 365 and days % 365 == 0:
        years = days // 365
        return ngettext("%(num)s Jahr", "%(num)s Jahre", years)
    return ngettext("%(num)s Tag", "%(num)s Tage", days)


@bp.get("/datenschutz")
def privacy() -> str:
    """The privacy notice (DSGVO), with the retention periods this installation uses."""
    config = current_app.config
    retention: dict[str, Any] = {
        "rejected": _duration(int(config["RETENTION_REJECTED_APPLICATION_DAYS"])),
        "expired": _duration(int(config["RETENTION_EXPIRED_PASS_DAYS"])),
        "redemptions": _duration(int(config["RETENTION_REDEMPTION_DAYS"])),
    }
    return render_template(
        "public/privacy.html", retention=retention, contact_email=_contact_email()
    )


@bp.get("/impressum")
def imprint() -> str:
    """The imprint."""
    return render_template("public/imprint.html", contact_email=_contact_email())


def _contact_email() -> str:
    """The programme's contact address: CONTACT_EMAIL if configured, else the sender of its mail."""
    configured = current_app.config.get("CONTACT_EMAIL")
    if configured:
        return str(configured)
    return parseaddr(current_app.config.get("MAIL_FROM", ""))[1]


@bp.get("/sprache/<lang>")
def set_language(lang: str) -> Response:
    """Switch the language and keep the choice in a cookie."""
    if lang not in current_app.config["LANGUAGES"]:
        lang = current_app.config["BABEL_DEFAULT_LOCALE"]
    response = redirect(safe_next(request.args.get("next"), url_for("public.home")) or "/")
    response.set_cookie(
        LANG_COOKIE,
        lang,
        max_age=365 * 24 * 3600,
        httponly=True,
        samesite="Lax",
        secure=current_app.config.get("SESSION_COOKIE_SECURE", False),
    )
    return response
