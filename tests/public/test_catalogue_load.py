"""Loading the catalogue and the localities: counts, idempotence, and refusal of broken files."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from kyffikus.models import (
    Category,
    Edition,
    Locality,
    Municipality,
    Offer,
    OutsideLocality,
    PostalCode,
    Provider,
    Venue,
)
from kyffikus.services.catalogue_load import (
    CATALOGUE_FILE,
    LOCALITIES_FILE,
    CatalogueFileError,
    load_catalogue,
)

EXPECTED = {
    Edition: 1,
    Category: 5,
    Provider: 34,
    Venue: 39,
    Offer: 47,
    PostalCode: 9,
    Municipality: 28,
    Locality: 53,
    OutsideLocality: 2,
}

# Layout of the shipped file: line 1 edition, 2-6 categories, 7-40 providers, 41-87 offers.
PROVIDER_LINE = 40
OFFER_LINE = 45


def count(db_session: Any, model: type[Any]) -> int:
    """Rows of a model in the test's database."""
    return int(db_session.scalar(select(func.count()).select_from(model)))


def broken_copy(
    tmp_path: Path, line: int, kind: str, change: Callable[[dict[str, Any]], None]
) -> Path:
    """A copy of the catalogue with one line changed (after checking it is a line of that kind)."""
    lines = CATALOGUE_FILE.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[line - 1])
    assert record["kind"] == kind, f"line {line} of the shipped file is a {record['kind']}"
    change(record)
    lines[line - 1] = json.dumps(record, ensure_ascii=False)
    path = tmp_path / "catalogue.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_fills_catalogue_and_localities(db_session: Any) -> None:
    report = load_catalogue()

    for model, expected in EXPECTED.items():
        assert count(db_session, model) == expected, model.__name__
    assert report.added["provider"] == 34
    assert report.added["offer"] == 47
    assert report.added["category"] == 5
    assert report.total_updated == 0


def test_loaded_rows_keep_their_details(db_session: Any) -> None:
    load_catalogue()

    offers = {o.key: o for o in db_session.scalars(select(Offer))}
    denkmal = offers["denkmal-mehrkindfamilienkarte"]
    assert (denkmal.discount_kind, denkmal.discount_value) == ("children_free", None)
    assert denkmal.edition.number == 1
    assert denkmal.category.slug == "erlebnis"
    baby = offers["wipperwelle-babyschwimmen"]
    assert (baby.min_age, baby.max_age, baby.redemption_limit) == (0, 3, "per_edition")
    assert baby.discount_value == Decimal("20")
    assert len(offers["klangwerk-probestunde"].venues) == 3
    assert {v.key for v in offers["wipperwelle-familienkarte"].venues} == {"hallenbad", "freibad"}

    providers = {p.slug: p for p in db_session.scalars(select(Provider))}
    assert not providers["kyffhaeuser-denkmal"].is_sample
    assert providers["familienbad-wipperwelle"].is_sample
    assert sum(not p.is_sample for p in providers.values()) == 11

    shared = db_session.get(PostalCode, "06578")
    assert shared.shared
    assert "Bilzingsleben" in shared.note_de
    oldisleben = db_session.scalars(select(Locality).where(Locality.name == "Oldisleben")).one()
    assert (oldisleben.postal_code, oldisleben.municipality.name) == ("06578", "An der Schmücke")


def test_second_load_adds_and_changes_nothing(db_session: Any) -> None:
    load_catalogue()
    db_session.flush()
    db_session.expire_all()  # compare with what the database returns, not the objects in memory

    report = load_catalogue()

    assert report.total_added == 0
    assert report.total_updated == 0
    for model, expected in EXPECTED.items():
        assert count(db_session, model) == expected, model.__name__


def test_changed_line_updates_the_existing_row(db_session: Any, tmp_path: Path) -> None:
    load_catalogue()
    db_session.flush()

    def rename(record: dict[str, Any]) -> None:
        record["title"] = "15 % Ermäßigung auf den Eintritt"

    report = load_catalogue(broken_copy(tmp_path, OFFER_LINE, "offer", rename))

    assert report.total_added == 0
    assert report.updated["offer"] == 1
    assert report.total_updated == 1
    assert count(db_session, Offer) == 47


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        record[field] = value

    return change


def _set_discount(record: dict[str, Any]) -> None:
    record["discount"] = {"kind": "percent", "value": 150}


def _bad_venue_postal_code(record: dict[str, Any]) -> None:
    record["venues"][0]["postal_code"] = "9970"


def _ages_reversed(record: dict[str, Any]) -> None:
    record["min_age"], record["max_age"] = 12, 6


@pytest.mark.parametrize(
    ("line", "kind", "change", "field"),
    [
        pytest.param(OFFER_LINE, "offer", _set("category", "abenteuer"), "category", id="category"),
        pytest.param(
            OFFER_LINE, "offer", _set("provider", "gibt-es-nicht"), "provider", id="provider"
        ),
        pytest.param(OFFER_LINE, "offer", _set("venues", ["nirgends"]), "venues", id="venue"),
        pytest.param(OFFER_LINE, "offer", _set_discount, "discount.value", id="percent"),
        pytest.param(OFFER_LINE, "offer", _set("limit", "weekly"), "limit", id="limit"),
        pytest.param(OFFER_LINE, "offer", _ages_reversed, "max_age", id="ages"),
        pytest.param(OFFER_LINE, "offer", _set("titel", "Tippfehler"), "titel", id="unknown-field"),
        pytest.param(
            OFFER_LINE,
            "offer",
            _set("key", "possen-erlebnispark-ermaessigung"),
            "key",
            id="duplicate-key",
        ),
        pytest.param(
            PROVIDER_LINE, "provider", _bad_venue_postal_code, "venues[1].postal_code", id="plz"
        ),
        pytest.param(PROVIDER_LINE, "provider", _set("sample", "ja"), "sample", id="sample"),
        pytest.param(1, "edition", _set("valid_from", "2026-13-01"), "valid_from", id="date"),
    ],
)
def test_broken_field_is_refused_and_nothing_is_loaded(
    db_session: Any,
    tmp_path: Path,
    line: int,
    kind: str,
    change: Callable[[dict[str, Any]], None],
    field: str,
) -> None:
    path = broken_copy(tmp_path, line, kind, change)

    with pytest.raises(CatalogueFileError) as caught:
        load_catalogue(path)

    assert [(e.line, e.field) for e in caught.value.errors] == [(line, field)]
    assert count(db_session, Provider) == 0
    assert count(db_session, Locality) == 0


def test_unknown_category_message_names_line_and_field(db_session: Any, tmp_path: Path) -> None:
    path = broken_copy(tmp_path, OFFER_LINE, "offer", _set("category", "abenteuer"))

    with pytest.raises(CatalogueFileError) as caught:
        load_catalogue(path)

    assert [str(e) for e in caught.value.errors] == [
        f"Zeile {OFFER_LINE}, Feld category: Unbekannte Kategorie „abenteuer“."
    ]


def test_json_syntax_error_is_refused_and_nothing_is_loaded(
    db_session: Any, tmp_path: Path
) -> None:
    lines = CATALOGUE_FILE.read_text(encoding="utf-8").splitlines()
    lines[OFFER_LINE - 1] = lines[OFFER_LINE - 1].rstrip("}")  # an unclosed object
    path = tmp_path / "catalogue.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(CatalogueFileError) as caught:
        load_catalogue(path)

    assert [(e.line, e.field) for e in caught.value.errors] == [(OFFER_LINE, "json")]
    assert count(db_session, Provider) == 0
    assert count(db_session, Offer) == 0


def test_all_errors_are_reported_together(db_session: Any, tmp_path: Path) -> None:
    lines = CATALOGUE_FILE.read_text(encoding="utf-8").splitlines()
    unknown = json.loads(lines[OFFER_LINE - 1]) | {"category": "abenteuer"}
    lines[OFFER_LINE - 1] = json.dumps(unknown, ensure_ascii=False)
    lines[60 - 1] = "{nicht json"
    lines.insert(3, "")  # a blank line 4 moves everything after it down by one
    path = tmp_path / "catalogue.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(CatalogueFileError) as caught:
        load_catalogue(path)

    assert [(e.line, e.field) for e in caught.value.errors] == [
        (4, "json"),
        (OFFER_LINE + 1, "category"),
        (60 + 1, "json"),
    ]
    assert count(db_session, Provider) == 0


def test_broken_localities_file_loads_nothing(db_session: Any, tmp_path: Path) -> None:
    doc = json.loads(LOCALITIES_FILE.read_text(encoding="utf-8"))
    doc["municipalities"][0]["localities"][0]["postal_code"] = "12345"
    path = tmp_path / "localities.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")

    with pytest.raises(CatalogueFileError) as caught:
        load_catalogue(localities_path=path)

    assert [(e.file, e.field) for e in caught.value.errors] == [
        ("localities.json", "municipalities[1].localities[1].postal_code")
    ]
    assert count(db_session, Provider) == 0
    assert count(db_session, Municipality) == 0
