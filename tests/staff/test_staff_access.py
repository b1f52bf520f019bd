"""Every staff page of the catalogue, localities, users and settings checks the role on the server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models import AuditEntry, Category, Locality, Municipality, Offer, Provider
from tests.conftest import login_as, post_form

ROLES = ("anonymous", "family", "provider", "staff", "admin")
ADMIN_ONLY = {"staff.settings"}

# Every GET page of the staff blueprint, with the objects its URL needs.
PAGES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "staff.dashboard": lambda o: {},
    "staff.providers": lambda o: {},
    "staff.provider_new": lambda o: {},
    "staff.provider_detail": lambda o: {"provider_id": o["provider"].id},
    "staff.provider_edit": lambda o: {"provider_id": o["provider"].id},
    "staff.venue_new": lambda o: {"provider_id": o["provider"].id},
    "staff.venue_edit": lambda o: {"venue_id": o["provider"].venues[0].id},
    "staff.offers": lambda o: {},
    "staff.offer_new": lambda o: {"provider_id": o["provider"].id},
    "staff.offer_edit": lambda o: {"offer_id": o["offer"].id},
    "staff.offer_preview": lambda o: {"offer_id": o["offer"].id},
    "staff.categories": lambda o: {},
    "staff.category_new": lambda o: {},
    "staff.category_edit": lambda o: {"category_id": o["offer"].category_id},
    "staff.editions": lambda o: {},
    "staff.edition_new": lambda o: {},
    "staff.edition_edit": lambda o: {"edition_id": o["offer"].edition_id},
    "staff.localities": lambda o: {},
    "staff.municipality_edit": lambda o: {"municipality_id": o["municipality"].id},
    "staff.locality_edit": lambda o: {"locality_id": o["locality"].id},
    "staff.postal_code_edit": lambda o: {"code": "06578"},
    "staff.csv_import": lambda o: {},
    "staff.export_providers": lambda o: {},
    "staff.export_offers": lambda o: {},
    "staff.users": lambda o: {},
    "staff.user_invite": lambda o: {},
    "staff.user_detail": lambda o: {"user_id": o["provider_user"].id},
    "staff.settings": lambda o: {},
}

# Every POST action, with the form it sends (refused before anything changes).
ACTIONS: dict[str, Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]] = {
    "staff.provider_publish": lambda o: ({"provider_id": o["provider"].id}, {"published": "0"}),
    "staff.provider_delete": lambda o: ({"provider_id": o["provider"].id}, {}),
    "staff.venue_delete": lambda o: ({"venue_id": o["provider"].venues[0].id}, {}),
    "staff.offer_publish": lambda o: ({"offer_id": o["offer"].id}, {"published": "0"}),
    "staff.offer_delete": lambda o: ({"offer_id": o["offer"].id}, {}),
    "staff.category_delete": lambda o: ({"category_id": o["offer"].category_id}, {}),
    "staff.user_deactivate": lambda o: ({"user_id": o["provider_user"].id}, {}),
    "staff.user_reactivate": lambda o: ({"user_id": o["provider_user"].id}, {}),
    "staff.user_send_reset": lambda o: ({"user_id": o["provider_user"].id}, {}),
    "staff.user_role": lambda o: ({"user_id": o["provider_user"].id}, {"role": "admin"}),
    "staff.provider_new": lambda o: ({}, {"name": "Eingeschleust"}),
    "staff.settings": lambda o: ({}, {"auto_approve": "y"}),
    "staff.csv_import": lambda o: ({}, {"kind": "providers", "content": "slug;name\nx;X\n"}),
}


@pytest.fixture
def objects(
    app: Flask, localities: None, make_user: Any, make_provider: Any, make_offer: Any
) -> dict[str, Any]:
    """A provider with a venue and an offer, users of every role, a municipality and a locality."""
    provider = make_provider()
    offer = make_offer(provider)
    users = {role: make_user(role) for role in ("family", "staff", "admin")}
    users["provider"] = make_user("provider", provider=provider)
    municipality = db.session.scalars(select(Municipality).order_by(Municipality.id)).first()
    locality = db.session.scalars(select(Locality).order_by(Locality.id)).first()
    return {
        "provider": provider,
        "offer": offer,
        "users": users,
        "provider_user": users["provider"],
        "municipality": municipality,
        "locality": locality,
    }


def _client_as(app: Flask, role: str, objects: dict[str, Any]) -> FlaskClient:
    client = app.test_client()
    if role != "anonymous":
        login_as(client, objects["users"][role])
    return client


def _url(app: Flask, endpoint: str, values: dict[str, Any]) -> str:
    with app.test_request_context():
        return url_for(endpoint, **values)


def test_every_staff_page_of_this_blueprint_is_in_the_table(app: Flask) -> None:
    """A new page must be added to the access table (and so be checked)."""
    get_endpoints = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("staff.") and "GET" in (rule.methods or set())
    }
    post_endpoints = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("staff.") and "POST" in (rule.methods or set())
    }
    assert get_endpoints == set(PAGES)
    assert post_endpoints <= set(ACTIONS) | set(PAGES)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", sorted(PAGES))
def test_page_access_by_role(app: Flask, objects: dict[str, Any], endpoint: str, role: str) -> None:
    """Anonymous: login; family and provider: 403; staff: 200 except admin pages; admin: 200."""
    url = _url(app, endpoint, PAGES[endpoint](objects))
    response = _client_as(app, role, objects).get(url)
    if role == "anonymous":
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/konto/anmelden")
    elif role in ("family", "provider") or role == "staff" and endpoint in ADMIN_ONLY:
        assert response.status_code == 403
    else:
        assert response.status_code == 200, response.get_data(as_text=True)[:2000]
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("role", ["anonymous", "family", "provider"])
@pytest.mark.parametrize("endpoint", sorted(ACTIONS))
def test_actions_refused_for_non_staff(
    app: Flask, objects: dict[str, Any], endpoint: str, role: str
) -> None:
    """POSTs with a valid CSRF token are refused for non-staff, and nothing changes."""
    values, data = ACTIONS[endpoint](objects)
    url = _url(app, endpoint, values)
    client = _client_as(app, role, objects)
    audit_before = db.session.scalar(select(db.func.count()).select_from(AuditEntry))
    providers_before = db.session.scalar(select(db.func.count()).select_from(Provider))
    # A token bound to this session: the login form for anonymous users, the logout form else.
    token_page = "/konto/anmelden" if role == "anonymous" else "/"
    response = post_form(client, url, data, token_from=token_page)
    if role == "anonymous":
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/konto/anmelden")
    else:
        assert response.status_code == 403
    db.session.expire_all()
    assert db.session.scalar(select(db.func.count()).select_from(AuditEntry)) == audit_before
    assert db.session.scalar(select(db.func.count()).select_from(Provider)) == providers_before
    assert db.session.get(Offer, objects["offer"].id).published is True
    assert objects["provider_user"].active is True
    assert objects["provider_user"].role == "provider"


@pytest.mark.parametrize("endpoint", ["staff.user_role", "staff.settings"])
def test_admin_actions_refused_for_staff(
    app: Flask, objects: dict[str, Any], endpoint: str
) -> None:
    """Staff cannot change roles or settings, even with a hand-made request."""
    values, data = ACTIONS[endpoint](objects)
    client = _client_as(app, "staff", objects)
    response = post_form(client, _url(app, endpoint, values), data, token_from="/verwaltung/")
    assert response.status_code == 403
    db.session.expire_all()
    assert objects["provider_user"].role == "provider"
    from kyffikus.services.settings import get_setting

    assert get_setting("auto_approve") is False


def test_dashboard_links_to_every_area(app: Flask, objects: dict[str, Any]) -> None:
    """The overview links to the catalogue areas, and to other staff areas that exist."""
    client = _client_as(app, "admin", objects)
    html = client.get("/verwaltung/").get_data(as_text=True)
    for endpoint in (
        "staff.providers",
        "staff.offers",
        "staff.editions",
        "staff.categories",
        "staff.localities",
        "staff.csv_import",
        "staff.users",
        "staff.settings",
    ):
        assert f'href="{_url(app, endpoint, {})}"' in html
    for endpoint in (
        "review.queue",
        "staff_passes.search",
        "staff_stats.dashboard",
        "staff_audit.index",
    ):
        if endpoint in app.view_functions:
            assert f'href="{_url(app, endpoint, {})}"' in html
    # Staff do not see the admin-only settings.
    staff_html = _client_as(app, "staff", objects).get("/verwaltung/").get_data(as_text=True)
    assert _url(app, "staff.settings", {}) not in staff_html
    assert db.session.scalar(select(db.func.count()).select_from(Category)) >= 1
