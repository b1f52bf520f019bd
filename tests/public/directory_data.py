"""A small catalogue with known answers for the directory tests (pages and API), and helpers.

Imported by tests/public/test_directory.py and tests/api/test_catalogue_api.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask

from kyffikus.extensions import db
from kyffikus.models import Category, Offer, Provider, Venue, berlin_today

REPO = Path(__file__).resolve().parents[2]
CATALOGUE_FILE = REPO / "kyffikus" / "data" / "catalogue.jsonl"
EN_PO = REPO / "kyffikus" / "translations" / "en" / "LC_MESSAGES" / "messages.po"


@dataclass
class SmallCatalogue:
    """The offers by short name (o1..o7) and the providers (alpha, beta, gamma)."""

    offers: dict[str, Offer]
    providers: dict[str, Provider]

    def ids(self, *names: str) -> set[int]:
        """The ids of the named offers."""
        return {self.offers[n].id for n in names}

    def name_of(self, offer_id: int) -> str:
        """The short name of an offer id."""
        return next(n for n, o in self.offers.items() if o.id == offer_id)


def build_small_catalogue(
    make_edition: Callable[..., Any],
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
) -> SmallCatalogue:
    """Three providers, seven offers; o1-o4 are listed, o5-o7 are not (see the comments)."""
    today = berlin_today()
    current = make_edition(
        valid_from=today - timedelta(days=30), valid_until=today + timedelta(days=300)
    )
    old = make_edition(
        valid_from=today - timedelta(days=800), valid_until=today - timedelta(days=400)
    )
    categories = {
        slug: Category(slug=slug, name_de=de, name_en=en, position=i)
        for i, (slug, de, en) in enumerate(
            [
                ("sport", "Sport", "Sports"),
                ("freizeit", "Freizeit", "Leisure"),
                ("kultur", "Kultur", "Culture"),
            ]
        )
    }
    db.session.add_all(categories.values())
    db.session.flush()

    alpha = make_provider(name="Alpha Bad")  # venue in Sondershausen
    beta = make_provider(name="Beta Museum", is_sample=True)
    beta.venues[0].town = "Artern"
    beta.venues[0].postal_code = "06556"
    beta.venues[0].accessibility = "Stufenloser Zugang über den Hof."
    gamma = make_provider(name="Gamma Verein", published=False)
    db.session.flush()

    def offer(provider: Provider, category: str, edition: Any = current, **fields: Any) -> Offer:
        made = make_offer(provider, edition=edition, **fields)
        made.category = categories[category]
        return made

    offers = {
        "o1": offer(
            alpha,
            "sport",
            title="Schwimmen für Familien",
            description="Eintritt ins Hallenbad.",
            discount_kind="percent",
            discount_value=10,
        ),
        "o2": offer(
            alpha,
            "freizeit",
            title="Kinder frei im Freibad",
            description="Im Sommer.",
            discount_kind="children_free",
            discount_value=None,
            min_age=3,
            max_age=12,
        ),
        "o3": offer(
            beta,
            "kultur",
            title="Museumsnacht",
            description="Führung mit Taschenlampe, 100%_sicher.",
            discount_kind="amount",
            discount_value=2,
            min_age=6,
        ),
        "o4": offer(
            beta,
            "kultur",
            title="Über den Dächern",
            description="Turmbesteigung.",
            discount_kind="children_free",
            discount_value=1,
            max_age=5,
        ),
        # Not listed: an unpublished offer, an offer of an unpublished provider, an old edition's.
        "o5": offer(beta, "kultur", title="Versteckte Führung", published=False),
        "o6": offer(gamma, "sport", title="Gamma Training"),
        "o7": offer(alpha, "sport", edition=old, title="Altes Schwimmen"),
    }
    db.session.flush()
    return SmallCatalogue(offers=offers, providers={"alpha": alpha, "beta": beta, "gamma": gamma})


def add_bulk_offers(
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
    edition: Any,
    providers: int,
    per_provider: int,
) -> None:
    """More providers (two venues each) with more offers, for the query-count test."""
    for p in range(providers):
        provider = make_provider(name=f"Massenanbieter {p}")
        provider.venues.append(Venue(key="second", name="Zweitstandort", town=f"Ort {p}"))
        db.session.flush()
        for _ in range(per_provider):
            make_offer(provider, edition=edition)


def catalogue_offers() -> list[dict[str, Any]]:
    """The offer lines of the shipped catalogue file, with their provider's line merged in."""
    providers: dict[str, dict[str, Any]] = {}
    offers: list[dict[str, Any]] = []
    for line in CATALOGUE_FILE.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["kind"] == "provider":
            providers[record["slug"]] = record
        elif record["kind"] == "offer":
            offers.append(record)
    for record in offers:
        provider = providers[record["provider"]]
        venues = {v["key"]: v for v in provider["venues"]}
        record["provider_name"] = provider["name"]
        record["towns"] = {venues[k]["town"] for k in record["venues"]}
    return offers


def use_compiled_english(app: Flask) -> None:
    """Compile the English catalogue if `make translations` has not, and drop cached catalogues."""
    from flask_babel import get_domain

    mo = EN_PO.with_suffix(".mo")
    if not mo.exists() or mo.stat().st_mtime < EN_PO.stat().st_mtime:
        with EN_PO.open("rb") as source:
            catalog = read_po(source, locale="en")
        partial = mo.with_name(f"messages.mo.{os.getpid()}")
        with partial.open("wb") as target:
            write_mo(target, catalog, use_fuzzy=True)
        os.replace(partial, mo)  # atomic, so parallel workers never read half a file
    with app.app_context():
        get_domain().cache.clear()


# (query parameters, the listed offers expected) for the small catalogue; the same cases run
# against the HTML directory and the JSON API.
FILTER_CASES: list[tuple[dict[str, str], set[str]]] = [
    ({}, {"o1", "o2", "o3", "o4"}),
    # search words: title, description, provider name; all words must match; case-insensitive
    ({"q": "familien"}, {"o1"}),
    ({"q": "HALLENBAD"}, {"o1"}),
    ({"q": "beta"}, {"o3", "o4"}),
    ({"q": "kinder frei"}, {"o2"}),
    ({"q": "frei kinder alpha"}, {"o2"}),
    ({"q": "kinder museum"}, set()),
    ({"q": "über"}, {"o4"}),
    ({"q": "ÜBER DÄCHERN"}, {"o4"}),
    ({"q": "100%"}, {"o3"}),
    ({"q": "%"}, {"o3"}),
    ({"q": "_"}, {"o3"}),
    ({"q": "versteckte"}, set()),
    ({"q": "gamma"}, set()),
    ({"q": "   "}, {"o1", "o2", "o3", "o4"}),
    # category
    ({"category": "kultur"}, {"o3", "o4"}),
    ({"category": "sport"}, {"o1"}),
    # town of a venue
    ({"town": "Artern"}, {"o3", "o4"}),
    ({"town": "artern"}, {"o3", "o4"}),
    ({"town": "Sondershausen"}, {"o1", "o2"}),
    ({"town": "Nirgendwo"}, set()),
    # age: min_age <= age <= max_age, a missing bound is open
    ({"age": "0"}, {"o1", "o4"}),
    ({"age": "4"}, {"o1", "o2", "o4"}),
    ({"age": "5"}, {"o1", "o2", "o4"}),
    ({"age": "6"}, {"o1", "o2", "o3"}),
    ({"age": "12"}, {"o1", "o2", "o3"}),
    ({"age": "13"}, {"o1", "o3"}),
    ({"age": "17"}, {"o1", "o3"}),
    # children free
    ({"free_for_children": "true"}, {"o2", "o4"}),
    ({"free_for_children": "false"}, {"o1", "o2", "o3", "o4"}),
    # combinations
    ({"category": "kultur", "free_for_children": "true"}, {"o4"}),
    ({"town": "Sondershausen", "age": "13"}, {"o1"}),
    ({"q": "kinder", "town": "Artern"}, set()),
    ({"category": "kultur", "age": "6"}, {"o3"}),
    ({"q": "beta", "free_for_children": "true", "age": "2"}, {"o4"}),
    (
        {
            "q": "frei",
            "category": "freizeit",
            "town": "Sondershausen",
            "age": "3",
            "free_for_children": "true",
        },
        {"o2"},
    ),
]

# Bad parameters for both channels: (parameters, the field named in the error).
BAD_PARAMETERS: list[tuple[dict[str, str], str]] = [
    ({"category": "abenteuer"}, "category"),
    ({"age": "abc"}, "age"),
    ({"age": "99"}, "age"),
    ({"age": "18"}, "age"),
    ({"age": "-1"}, "age"),
    ({"age": "3.5"}, "age"),
    ({"page": "-1"}, "page"),
    ({"page": "0"}, "page"),
    ({"page": "zwei"}, "page"),
    ({"page": "99999999999999999999"}, "page"),
    ({"q": "x" * 201}, "q"),
    ({"q": "a" * 5000}, "q"),
    ({"q": "nul\x00byte"}, "q"),
    ({"sort": "preis"}, "sort"),
    ({"free_for_children": "vielleicht"}, "free_for_children"),
    ({"town": "x" * 121}, "town"),
]
