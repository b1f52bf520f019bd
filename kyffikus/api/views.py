"""The JSON API (v1): the public catalogue and the OpenAPI document.

The providers' routes (checks, redemptions) live in kyffikus/api/checks.py with their own
blueprint under the same /api/v1 prefix. Every route is described in kyffikus/api/openapi.py.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, url_for
from flask import request as flask_request
from flask_babel import gettext as _
from flask_sqlalchemy.pagination import Pagination
from werkzeug.wrappers import Response

from kyffikus.api.openapi import build_document
from kyffikus.extensions import csrf
from kyffikus.models.catalogue import Category, Edition, Offer, Provider, Venue
from kyffikus.services import directory
from kyffikus.services.directory import InvalidParameter
from kyffikus.web import json_error

bp = Blueprint("api", __name__)
csrf.exempt(bp)  # Bearer tokens, not cookies, authenticate API writes: no CSRF surface.


# ---- representations ----------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def venue_json(venue: Venue) -> dict[str, Any]:
    """A venue with its address and accessibility notes."""
    return {
        "id": venue.id,
        "name": venue.name,
        "street": venue.street,
        "postal_code": venue.postal_code,
        "town": venue.town,
        "latitude": _number(venue.latitude),
        "longitude": _number(venue.longitude),
        "accessibility": venue.accessibility,
    }


def _category_json(category: Category) -> dict[str, Any]:
    return {"slug": category.slug, "name_de": category.name_de, "name_en": category.name_en}


def _edition_json(edition: Edition) -> dict[str, Any]:
    return {
        "number": edition.number,
        "name": edition.name,
        "valid_from": edition.valid_from.isoformat(),
        "valid_until": edition.valid_until.isoformat(),
    }


def offer_json(offer: Offer, edition: Edition) -> dict[str, Any]:
    """A listed offer with provider, category, discount, ages, limit, venues and edition."""
    return {
        "id": offer.id,
        "title": offer.title,
        "description": offer.description,
        "provider": {
            "slug": offer.provider.slug,
            "name": offer.provider.name,
            "is_sample": offer.provider.is_sample,
        },
        "category": _category_json(offer.category),
        "discount": {
            "kind": offer.discount_kind,
            "value": _number(offer.discount_value),
            "label": directory.discount_label(offer),
        },
        "conditions": offer.conditions,
        "min_age": offer.min_age,
        "max_age": offer.max_age,
        "redemption_limit": offer.redemption_limit,
        "venues": [venue_json(v) for v in offer.venues],
        "edition": _edition_json(edition),
        "is_sample": offer.provider.is_sample,
        "url": url_for("public.offer", offer_id=offer.id),
    }


def provider_json(provider: Provider, offers: list[Offer]) -> dict[str, Any]:
    """A published provider with its venues and its listed offers (as references)."""
    return {
        "slug": provider.slug,
        "name": provider.name,
        "description": provider.description,
        "website": provider.website,
        "email": provider.email,
        "phone": provider.phone,
        "is_sample": provider.is_sample,
        "venues": [venue_json(v) for v in provider.venues],
        "offers": [
            {"id": o.id, "title": o.title, "url": url_for("public.offer", offer_id=o.id)}
            for o in offers
        ],
        "url": url_for("public.provider", slug=provider.slug),
    }


def _page_json(page: Pagination, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "items": items,
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
        "pages": page.pages,
    }


def _parse() -> directory.DirectoryFilters:
    return directory.parse_filters(
        flask_request.args, directory.list_categories(), strict=True, allow_per_page=True
    )


def _invalid(exc: InvalidParameter) -> Response:
    return json_error(400, exc.code, exc.message, field=exc.field)


# ---- routes ---------------------------------------------------------------------------------------


@bp.get("/offers")
def list_offers() -> Response:
    """Listed offers with the directory's filters, sorted and paginated."""
    try:
        filters = _parse()
    except InvalidParameter as exc:
        return _invalid(exc)
    edition = directory.current_edition()
    page = directory.find_offers(filters, edition)
    items = [offer_json(o, edition) for o in page.items] if edition else []
    return jsonify(_page_json(page, items))


@bp.get("/offers/<int:offer_id>")
def get_offer(offer_id: int) -> Response:
    """One listed offer."""
    edition = directory.current_edition()
    offer = directory.get_listed_offer(offer_id, edition)
    if offer is None or edition is None:
        return json_error(404, "not_found", _("Dieses Angebot gibt es nicht."))
    return jsonify(offer_json(offer, edition))


@bp.get("/providers")
def list_providers() -> Response:
    """Published providers with at least one listed offer matching the filters."""
    try:
        filters = _parse()
    except InvalidParameter as exc:
        return _invalid(exc)
    edition = directory.current_edition()
    page = directory.find_providers(filters, edition)
    offers = directory.listed_offers_of(page.items, edition)
    items = [provider_json(p, offers[p.id]) for p in page.items]
    return jsonify(_page_json(page, items))


@bp.get("/providers/<slug>")
def get_provider(slug: str) -> Response:
    """One published provider with its venues and listed offers."""
    found = directory.get_listed_provider(slug, directory.current_edition())
    if found is None:
        return json_error(404, "not_found", _("Diesen Anbieter gibt es nicht."))
    provider, offers = found
    return jsonify(provider_json(provider, offers))


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document of this API."""
    return jsonify(build_document([c.slug for c in directory.list_categories()]))
