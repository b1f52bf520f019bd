"""The public offer directory: filters, sorting, pages, details, sample marking, query count."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from kyffikus.extensions import db
from tests.public.directory_data import (
    BAD_PARAMETERS,
    FILTER_CASES,
    SmallCatalogue,
    add_bulk_offers,
    build_small_catalogue,
    catalogue_offers,
)

SAMPLE_LINE = "Einträge mit der Markierung „Beispiel“ sind Beispiele und keine echten Angebote."
CARD_LINK = re.compile(r'<h3><a href="/angebote/(\d+)">')


@pytest.fixture
def small(
    make_edition: Callable[..., Any],
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
) -> SmallCatalogue:
    """Seven offers of three providers; o1-o4 are listed."""
    return build_small_catalogue(make_edition, make_provider, make_offer)


def listed_ids(client: FlaskClient, params: dict[str, str]) -> list[int]:
    """The offer ids on the directory page, in order."""
    response = client.get("/angebote", query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return [int(i) for i in CARD_LINK.findall(response.get_data(as_text=True))]


@pytest.mark.parametrize(
    ("params", "expected"), FILTER_CASES, ids=[str(c[0]) for c in FILTER_CASES]
)
def test_every_filter_and_combination_lists_exactly_the_expected_offers(
    client: FlaskClient, small: SmallCatalogue, params: dict[str, str], expected: set[str]
) -> None:
    ids = listed_ids(client, params)

    assert len(ids) == len(set(ids))
    assert {small.name_of(i) for i in ids} == expected


def test_sort_by_name_is_provider_then_title(client: FlaskClient, small: SmallCatalogue) -> None:
    names = [small.name_of(i) for i in listed_ids(client, {"sort": "name"})]

    # Alpha Bad: "Kinder frei ...", "Schwimmen ..."; Beta Museum: "Museumsnacht", "Über ..."
    assert names == ["o2", "o1", "o3", "o4"]
    assert [small.name_of(i) for i in listed_ids(client, {})] == names


def test_sort_by_town_puts_artern_before_sondershausen(
    client: FlaskClient, small: SmallCatalogue
) -> None:
    names = [small.name_of(i) for i in listed_ids(client, {"sort": "town"})]

    assert names == ["o3", "o4", "o2", "o1"]


def test_filter_state_stays_in_the_form(client: FlaskClient, small: SmallCatalogue) -> None:
    html = client.get(
        "/angebote?q=frei&category=kultur&town=artern&age=4&free_for_children=true&sort=town"
    ).get_data(as_text=True)

    assert 'value="frei"' in html
    assert re.search(r'<option selected value="kultur">|<option value="kultur" selected>', html)
    # The town is matched case-insensitively and shown as the list spells it.
    assert re.search(r'<option selected value="Artern">|<option value="Artern" selected>', html)
    assert re.search(r'<option selected value="4">|<option value="4" selected>', html)
    assert re.search(r'<option selected value="town">|<option value="town" selected>', html)
    assert re.search(r'<input checked id="free_for_children"[^>]*value="true"', html)
    assert 'method="get"' in html


def test_pages_of_twenty_keep_the_filters_in_their_links(
    client: FlaskClient,
    small: SmallCatalogue,
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
) -> None:
    provider = make_provider(name="Zeta Sport")
    for n in range(23):
        make_offer(provider, edition=small.offers["o1"].edition, title=f"Kurs {n:02d} für Familien")

    first = client.get("/angebote?q=familien")
    html = first.get_data(as_text=True)
    second_ids = listed_ids(client, {"q": "familien", "page": "2"})

    assert len(CARD_LINK.findall(html)) == 20
    assert len(second_ids) == 4  # 24 matches: o1 and the 23 courses
    assert "24 Angebote gefunden" in html
    assert 'href="/angebote?q=familien&amp;page=2"' in html
    first_ids = [int(i) for i in CARD_LINK.findall(html)]
    assert not set(first_ids) & set(second_ids)


def test_page_after_the_last_is_empty_not_an_error(
    client: FlaskClient, small: SmallCatalogue
) -> None:
    response = client.get("/angebote?page=5")

    assert response.status_code == 200
    assert "Auf dieser Seite gibt es keine Angebote mehr." in response.get_data(as_text=True)


def test_no_match_says_so(client: FlaskClient, small: SmallCatalogue) -> None:
    html = client.get("/angebote?q=zeppelin").get_data(as_text=True)

    assert "0 Angebote gefunden" in html
    assert "Kein Angebot passt zu Ihrer Suche." in html


@pytest.mark.parametrize(
    ("params", "field"), BAD_PARAMETERS, ids=[f"{c[1]}-{len(str(c[0]))}" for c in BAD_PARAMETERS]
)
def test_bad_filter_values_answer_400_with_a_message_on_the_form(
    client: FlaskClient, small: SmallCatalogue, params: dict[str, str], field: str
) -> None:
    response = client.get("/angebote", query_string=params)
    html = response.get_data(as_text=True)

    assert response.status_code == 400
    assert "Bitte prüfen Sie Ihre Angaben" in html
    if field != "page":  # the page number is no field of the form; its error is in the summary
        assert f'id="{field}-error"' in html
    assert not CARD_LINK.findall(html)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"age": "abc"}, "Das Alter muss eine ganze Zahl von 0 bis 17 sein."),
        ({"category": "abenteuer"}, "Diese Kategorie gibt es nicht."),
        ({"page": "-1"}, "Die Seitenzahl muss eine ganze Zahl ab 1 sein."),
        ({"q": "x" * 201}, "Der Suchbegriff ist zu lang (höchstens 200 Zeichen)."),
    ],
)
def test_bad_filter_messages_are_clear(
    client: FlaskClient, small: SmallCatalogue, params: dict[str, str], message: str
) -> None:
    assert message in client.get("/angebote", query_string=params).get_data(as_text=True)


def test_offer_page_shows_benefit_ages_limit_and_venue(
    client: FlaskClient, small: SmallCatalogue
) -> None:
    offer = small.offers["o3"]
    response = client.get(f"/angebote/{offer.id}")
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert "<h1" in html
    assert "Museumsnacht" in html
    assert 'href="/anbieter-verzeichnis/' + small.providers["beta"].slug + '"' in html
    assert "2,00\xa0€ Ermäßigung" in html
    assert "Für Kinder ab 6 Jahren" in html
    assert "Einmal pro Tag und Pass" in html
    assert "Markt 1, 06556 Artern" in html
    assert "Stufenloser Zugang über den Hof." in html


@pytest.mark.parametrize("name", ["o5", "o6", "o7"])
def test_unlisted_offers_are_404(client: FlaskClient, small: SmallCatalogue, name: str) -> None:
    assert client.get(f"/angebote/{small.offers[name].id}").status_code == 404


@pytest.mark.parametrize(
    "url", ["/angebote/999999", "/angebote/99999999999999999999", "/angebote/-1", "/angebote/abc"]
)
def test_unknown_offer_ids_are_404(client: FlaskClient, small: SmallCatalogue, url: str) -> None:
    response = client.get(url)

    assert response.status_code == 404
    assert "Diese Seite gibt es nicht." in response.get_data(as_text=True)


def test_provider_page_lists_venues_and_all_listed_offers(
    client: FlaskClient, small: SmallCatalogue
) -> None:
    beta = small.providers["beta"]
    response = client.get(f"/anbieter-verzeichnis/{beta.slug}")
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert {small.name_of(int(i)) for i in CARD_LINK.findall(html)} == {"o3", "o4"}
    assert "Markt 1, 06556 Artern" in html
    assert "Stufenloser Zugang über den Hof." in html
    assert "Versteckte Führung" not in html


@pytest.mark.parametrize("slug", ["gibt-es-nicht", "GROSS", "a" * 200, "..%2f", "x%00y"])
def test_unknown_or_unpublished_providers_are_404(
    client: FlaskClient, small: SmallCatalogue, slug: str
) -> None:
    assert client.get(f"/anbieter-verzeichnis/{slug}").status_code == 404
    assert client.get(f"/anbieter-verzeichnis/{small.providers['gamma'].slug}").status_code == 404


def test_sample_entries_carry_a_badge_and_each_page_one_explaining_line(
    client: FlaskClient, small: SmallCatalogue
) -> None:
    directory = client.get("/angebote?sort=name").get_data(as_text=True)
    cards = directory.split("<article")[1:]
    by_name = {
        small.name_of(int(CARD_LINK.search("<h3>" + c.split("<h3>", 1)[1]).group(1))): c
        for c in cards
    }

    assert "badge-sample" in by_name["o3"]
    assert ">Beispiel<" in by_name["o3"]
    assert "badge-sample" not in by_name["o1"]
    for url in (
        "/angebote",
        f"/angebote/{small.offers['o3'].id}",
        f"/angebote/{small.offers['o1'].id}",
        f"/anbieter-verzeichnis/{small.providers['beta'].slug}",
    ):
        assert client.get(url).get_data(as_text=True).count(SAMPLE_LINE) == 1, url


@contextmanager
def counted_selects() -> Iterator[list[str]]:
    """Collect the SELECT statements sent to the database while the block runs."""
    statements: list[str] = []

    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", _count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", _count)


def _selects_for(client: FlaskClient, url: str) -> int:
    db.session.expunge_all()  # as in a fresh request: nothing already loaded
    with counted_selects() as statements:
        response = client.get(url)
    assert response.status_code == 200
    return len(statements)


@pytest.mark.parametrize(
    "url",
    [
        "/angebote",
        "/angebote?q=familien+kurs&age=6&sort=town",
        "/angebote?category=sport&free_for_children=true&page=2",
        "/api/v1/offers?per_page=100",
        "/api/v1/providers?per_page=100&sort=town",
    ],
)
def test_directory_makes_a_fixed_number_of_queries(
    app: Flask,
    client: FlaskClient,
    small: SmallCatalogue,
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
    url: str,
) -> None:
    before = _selects_for(client, url)
    add_bulk_offers(
        make_provider, make_offer, small.offers["o1"].edition, providers=12, per_provider=4
    )
    after = _selects_for(client, url)

    assert before == after
    assert after <= 7


def test_offer_and_provider_pages_make_a_fixed_number_of_queries(
    client: FlaskClient,
    small: SmallCatalogue,
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
) -> None:
    alpha = small.providers["alpha"]
    urls = [f"/angebote/{small.offers['o1'].id}", f"/anbieter-verzeichnis/{alpha.slug}"]
    before = [_selects_for(client, u) for u in urls]
    for _ in range(15):
        make_offer(alpha, edition=small.offers["o1"].edition)
    after = [_selects_for(client, u) for u in urls]

    assert before == after
    assert max(after) <= 5


# ---- the real catalogue -----------------------------------------------------------------------


def _oracle(params: dict[str, Any]) -> list[tuple[str, str]]:
    """Which offers of the data file match, worked out in plain Python from the file itself."""
    words = str(params.get("q", "")).lower().split()
    found = []
    for o in catalogue_offers():
        text = [o["title"].lower(), o["description"].lower(), o["provider_name"].lower()]
        if not all(any(w in t for t in text) for w in words):
            continue
        if "category" in params and o["category"] != params["category"]:
            continue
        if "town" in params and params["town"] not in o["towns"]:
            continue
        if "age" in params:
            age = int(params["age"])
            if (o["min_age"] is not None and o["min_age"] > age) or (
                o["max_age"] is not None and o["max_age"] < age
            ):
                continue
        if params.get("free_for_children") == "true" and o["discount"]["kind"] != "children_free":
            continue
        found.append((o["provider"], o["title"]))
    return sorted(found)


def _listed_pairs(client: FlaskClient, params: dict[str, Any]) -> list[tuple[str, str]]:
    response = client.get("/api/v1/offers", query_string={**params, "per_page": 100})
    assert response.status_code == 200
    return sorted((i["provider"]["slug"], i["title"]) for i in response.get_json()["items"])


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": "kinder frei"},
        {"q": "Barbarossahöhle"},
        {"category": "kultur", "free_for_children": "true"},
        {"town": "Sondershausen"},
        {"town": "Oldisleben"},
        {"age": "0"},
        {"age": "8", "category": "sport"},
        {"q": "probetraining", "age": "5"},
    ],
)
def test_real_catalogue_matches_the_data_file(
    client: FlaskClient, catalogue: Any, params: dict[str, Any]
) -> None:
    assert _listed_pairs(client, params) == _oracle(params)


def test_real_catalogue_known_offers(client: FlaskClient, catalogue: Any) -> None:
    everything = client.get("/api/v1/offers?per_page=100").get_json()
    kultur_free = _listed_pairs(client, {"category": "kultur", "free_for_children": "true"})
    html = client.get("/angebote?q=Barbarossah%C3%B6hle").get_data(as_text=True)

    assert everything["total"] == 47
    assert ("zuckerfabrik-oldisleben", "Kinder frei im Museum") in kultur_free
    assert ("puppentheater-wurzelkind", "1 Kind frei bei jeder Vorstellung") in kultur_free
    assert "1 Kind frei bei der Höhlenführung" in html
    assert "1 Angebot gefunden" in html


def test_real_directory_pages_stay_small(client: FlaskClient, catalogue: Any) -> None:
    for url in (
        "/angebote",
        "/angebote?sort=town&page=3",
        "/anbieter-verzeichnis/musikschule-klangwerk",
    ):
        response = client.get(url)
        assert response.status_code == 200
        assert len(response.data) < 150_000, url
        assert 'name="viewport"' in response.get_data(as_text=True)
