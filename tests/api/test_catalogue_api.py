"""The public catalogue API: filters, stable pagination, details, bad parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.public.directory_data import (
    BAD_PARAMETERS,
    FILTER_CASES,
    SmallCatalogue,
    add_bulk_offers,
    build_small_catalogue,
)


@pytest.fixture
def small(
    make_edition: Callable[..., Any],
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
) -> SmallCatalogue:
    """Seven offers of three providers; o1-o4 are listed."""
    return build_small_catalogue(make_edition, make_provider, make_offer)


def get_json(
    client: FlaskClient, url: str, params: dict[str, Any] | None = None, status: int = 200
) -> Any:
    """GET a JSON answer and check its status and content type."""
    response = client.get(url, query_string=params or {})
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    return response.get_json()


@pytest.mark.parametrize(
    ("params", "expected"), FILTER_CASES, ids=[str(c[0]) for c in FILTER_CASES]
)
def test_offer_filters_match_the_pages(
    client: FlaskClient, small: SmallCatalogue, params: dict[str, str], expected: set[str]
) -> None:
    body = get_json(client, "/api/v1/offers", params)

    assert {small.name_of(i["id"]) for i in body["items"]} == expected
    assert body["total"] == len(expected)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["alpha", "beta"]),
        ({"category": "kultur"}, ["beta"]),
        ({"town": "Sondershausen"}, ["alpha"]),
        ({"age": "13"}, ["alpha", "beta"]),
        ({"age": "0", "category": "sport"}, ["alpha"]),
        ({"q": "gamma"}, []),
        ({"q": "dächern"}, ["beta"]),
        ({"free_for_children": "true", "sort": "town"}, ["beta", "alpha"]),
    ],
)
def test_provider_filters(
    client: FlaskClient, small: SmallCatalogue, params: dict[str, str], expected: list[str]
) -> None:
    body = get_json(client, "/api/v1/providers", params)

    assert [i["slug"] for i in body["items"]] == [small.providers[n].slug for n in expected]


def test_provider_item_lists_only_listed_offers(client: FlaskClient, small: SmallCatalogue) -> None:
    items = get_json(client, "/api/v1/providers")["items"]
    by_slug = {i["slug"]: i for i in items}
    beta = by_slug[small.providers["beta"].slug]

    assert {o["id"] for o in beta["offers"]} == small.ids("o3", "o4")
    assert beta["is_sample"] is True
    assert beta["venues"][0]["town"] == "Artern"
    assert {o["id"] for o in by_slug[small.providers["alpha"].slug]["offers"]} == small.ids(
        "o1", "o2"
    )


@pytest.mark.parametrize("url", ["/api/v1/offers", "/api/v1/providers"])
@pytest.mark.parametrize("sort", ["name", "town"])
@pytest.mark.parametrize("per_page", ["1", "7", "100"])
def test_pagination_is_complete_stable_and_without_duplicates(
    client: FlaskClient,
    small: SmallCatalogue,
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
    url: str,
    sort: str,
    per_page: str,
) -> None:
    add_bulk_offers(
        make_provider, make_offer, small.offers["o1"].edition, providers=6, per_provider=4
    )
    everything = get_json(client, url, {"sort": sort, "per_page": "100"})
    key = "id" if url.endswith("offers") else "slug"

    pages = -(-everything["total"] // int(per_page))
    seen: list[Any] = []
    for page in range(1, pages + 2):  # one past the last page: empty
        body = get_json(client, url, {"sort": sort, "per_page": per_page, "page": str(page)})
        assert body["pages"] == pages
        again = get_json(client, url, {"sort": sort, "per_page": per_page, "page": str(page)})
        assert body == again
        assert body["page"] == page
        assert body["per_page"] == int(per_page)
        assert body["total"] == everything["total"]
        seen.extend(i[key] for i in body["items"])

    assert body["items"] == []
    assert len(seen) == len(set(seen)) == everything["total"]
    assert seen == [i[key] for i in everything["items"]]
    assert everything["total"] == (28 if url.endswith("offers") else 8)
    assert everything["pages"] == 1


def test_offer_detail(client: FlaskClient, small: SmallCatalogue) -> None:
    offer = small.offers["o4"]
    body = get_json(client, f"/api/v1/offers/{offer.id}")

    assert body["id"] == offer.id
    assert body["title"] == "Über den Dächern"
    assert body["provider"] == {
        "slug": small.providers["beta"].slug,
        "name": "Beta Museum",
        "is_sample": True,
    }
    assert body["category"] == {"slug": "kultur", "name_de": "Kultur", "name_en": "Culture"}
    assert body["discount"] == {"kind": "children_free", "value": 1.0, "label": "1 Kind frei"}
    assert (body["min_age"], body["max_age"]) == (None, 5)
    assert body["venues"][0]["postal_code"] == "06556"
    assert body["url"] == f"/angebote/{offer.id}"
    assert body["edition"]["valid_from"] == offer.edition.valid_from.isoformat()


def test_provider_detail(client: FlaskClient, small: SmallCatalogue) -> None:
    alpha = small.providers["alpha"]
    body = get_json(client, f"/api/v1/providers/{alpha.slug}")

    assert body["name"] == "Alpha Bad"
    assert [o["id"] for o in body["offers"]] == [small.offers["o2"].id, small.offers["o1"].id]
    assert body["venues"][0]["town"] == "Sondershausen"


@pytest.mark.parametrize("name", ["o5", "o6", "o7"])
def test_unlisted_offer_is_json_404(client: FlaskClient, small: SmallCatalogue, name: str) -> None:
    body = get_json(client, f"/api/v1/offers/{small.offers[name].id}", status=404)

    assert body["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/offers/0",
        "/api/v1/offers/4294967296",
        "/api/v1/offers/99999999999999999999999",
        "/api/v1/offers/-3",
        "/api/v1/providers/gibt-es-nicht",
        "/api/v1/providers/UPPER",
        "/api/v1/providers/x%00y",
    ],
)
def test_unknown_ids_and_slugs_are_json_404(
    client: FlaskClient, small: SmallCatalogue, url: str
) -> None:
    body = get_json(client, url, status=404)

    assert body["error"]["code"] == "not_found"
    assert body["error"]["message"]


def test_unpublished_provider_is_json_404(client: FlaskClient, small: SmallCatalogue) -> None:
    get_json(client, f"/api/v1/providers/{small.providers['gamma'].slug}", status=404)


BAD_API_PARAMETERS = [
    *BAD_PARAMETERS,
    ({"per_page": "0"}, "per_page"),
    ({"per_page": "101"}, "per_page"),
    ({"per_page": "viele"}, "per_page"),
    # The API is strict: what the OpenAPI document does not allow is refused.
    ({"free_for_children": "1"}, "free_for_children"),
    ({"category": ""}, "category"),
    ({"age": " 5"}, "age"),
    ({"sort": "NAME"}, "sort"),
    ({"sort": ""}, "sort"),
]


@pytest.mark.parametrize("url", ["/api/v1/offers", "/api/v1/providers"])
@pytest.mark.parametrize(
    ("params", "field"),
    BAD_API_PARAMETERS,
    ids=[f"{c[1]}-{len(str(c[0]))}" for c in BAD_API_PARAMETERS],
)
def test_bad_parameters_answer_400_naming_the_field(
    client: FlaskClient, small: SmallCatalogue, url: str, params: dict[str, str], field: str
) -> None:
    body = get_json(client, url, params, status=400)

    assert body["error"]["code"] == "invalid_parameter"
    assert body["error"]["field"] == field
    assert body["error"]["message"]


def test_five_thousand_character_search_is_refused_clearly(
    client: FlaskClient, small: SmallCatalogue
) -> None:
    body = get_json(client, "/api/v1/offers", {"q": "ä" * 5000}, status=400)

    assert body["error"]["message"] == "Der Suchbegriff ist zu lang (höchstens 200 Zeichen)."


def test_without_any_edition_the_lists_are_empty(client: FlaskClient) -> None:
    body = get_json(client, "/api/v1/offers")

    assert body == {"items": [], "page": 1, "per_page": 20, "total": 0, "pages": 0}
    assert get_json(client, "/api/v1/providers")["items"] == []
