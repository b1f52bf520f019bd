"""German by default; English by the visible switch (a cookie) and by Accept-Language."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from kyffikus.i18n import LANG_COOKIE
from tests.public.directory_data import EN_PO, REPO, build_small_catalogue, use_compiled_english

PUBLIC_TEMPLATES = REPO / "templates" / "public"


@pytest.fixture(autouse=True)
def _english(app: Flask) -> None:
    use_compiled_english(app)


def html_of(client: FlaskClient, url: str, **headers: str) -> str:
    """The page's HTML (status 200)."""
    response = client.get(url, headers=headers)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_german_by_default(client: FlaskClient) -> None:
    html = html_of(client, "/angebote")

    assert '<html lang="de">' in html
    assert "Angebote für Familien" in html
    assert 'href="/sprache/en?next=' in html  # the visible switch


@pytest.mark.parametrize("header", ["en", "en-GB,en;q=0.9", "fr-FR,en;q=0.8,de;q=0.5"])
def test_english_by_accept_language(client: FlaskClient, header: str) -> None:
    html = html_of(client, "/angebote", **{"Accept-Language": header})

    assert '<html lang="en">' in html
    assert "Offers for families" in html
    assert "Angebote für Familien" not in html


@pytest.mark.parametrize("header", ["fr", "de-DE,de;q=0.9,en;q=0.5", "*", "x" * 300])
def test_german_when_the_browser_prefers_it_or_neither(client: FlaskClient, header: str) -> None:
    html = html_of(client, "/angebote", **{"Accept-Language": header})

    assert '<html lang="de">' in html


def test_switch_sets_a_cookie_and_returns_to_the_page(client: FlaskClient) -> None:
    response = client.get("/sprache/en?next=/angebote%3Fage%3D4")

    assert response.status_code == 302
    assert response.headers["Location"] == "/angebote?age=4"
    cookie = client.get_cookie(LANG_COOKIE)
    assert cookie is not None
    assert cookie.value == "en"
    assert cookie.http_only
    assert "Offers for families" in html_of(client, "/angebote")


def test_the_switch_wins_over_the_browser(client: FlaskClient) -> None:
    client.get("/sprache/de")

    assert "Angebote für Familien" in html_of(client, "/angebote", **{"Accept-Language": "en"})


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example", "javascript:alert(1)"]
)
def test_switch_never_redirects_elsewhere(client: FlaskClient, target: str) -> None:
    response = client.get("/sprache/en", query_string={"next": target})

    assert response.headers["Location"] == "/"


def test_unknown_language_falls_back_to_german(client: FlaskClient) -> None:
    client.get("/sprache/xx")

    assert client.get_cookie(LANG_COOKIE).value == "de"  # type: ignore[union-attr]


def test_english_directory_names_categories_and_benefits_in_english(
    client: FlaskClient,
    make_edition: Callable[..., Any],
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
) -> None:
    small = build_small_catalogue(make_edition, make_provider, make_offer)
    client.get("/sprache/en")

    html = html_of(client, "/angebote")
    offer = html_of(client, f"/angebote/{small.offers['o3'].id}")

    assert '<option value="kultur">Culture</option>' in html
    assert "All categories" in html
    assert "Example" in html  # the sample badge
    assert "Entries marked “Example” are examples, not real offers." in html
    assert "€2.00 off" in offer
    assert "For children aged 6 and over" in offer
    assert "Museumsnacht" in offer  # the catalogue's own text stays German


def test_english_form_errors_and_api_messages(
    client: FlaskClient,
    make_edition: Callable[..., Any],
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
) -> None:
    build_small_catalogue(make_edition, make_provider, make_offer)
    headers = {"Accept-Language": "en"}

    page = client.get("/angebote?age=abc", headers=headers)
    api = client.get("/api/v1/offers?age=abc", headers=headers)

    assert page.status_code == 400
    assert "The age must be a whole number from 0 to 17." in page.get_data(as_text=True)
    assert api.get_json()["error"]["message"] == "The age must be a whole number from 0 to 17."


@pytest.mark.parametrize("url", ["/", "/datenschutz", "/impressum", "/angebote"])
def test_public_pages_exist_in_english(client: FlaskClient, url: str) -> None:
    german = html_of(client, url)
    english = html_of(client, url, **{"Accept-Language": "en"})

    assert '<html lang="en">' in english
    assert english != german


def test_english_catalogue_translates_the_public_pages() -> None:
    """Every string of the public templates has an English translation in the shipped catalogue."""
    with EN_PO.open("rb") as source:
        catalog = read_po(source, locale="en")
    wanted: set[str] = set()
    for path in PUBLIC_TEMPLATES.glob("*.html"):
        text = path.read_text(encoding="utf-8")
        wanted.update(re.findall(r"_\('([^']+)'", text))
        wanted.update(re.findall(r'_\("([^"]+)"', text))
    untranslated = sorted(w for w in wanted if not (catalog.get(w) and catalog.get(w).string))

    assert len(wanted) > 100
    assert untranslated == []
