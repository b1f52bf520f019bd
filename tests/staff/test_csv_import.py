"""CSV import (dry run, all rows or none) and export (the same format, round trip) of the catalogue."""

from __future__ import annotations

import html
import io
import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from kyffikus.extensions import db
from kyffikus.models import AuditEntry, Category, Edition, Offer, Provider, Venue
from kyffikus.services import catalogue_admin, catalogue_csv
from tests.conftest import csrf_token

PROVIDER_HEADER = (
    "slug;name;description;contact_name;email;phone;website;published;sample;"
    "venue_key;venue_name;venue_street;venue_postal_code;venue_town;venue_lat;venue_lon;venue_accessibility"
)
GOOD_PROVIDERS = "\n".join(
    [
        PROVIDER_HEADER,
        "kyffhaeuser-therme;Kyffhäuser-Therme;Bad mit Sauna;;info@therme.example.de;034671 5120;https://therme.example.de;ja;nein;"
        "main;Kyffhäuser-Therme;Am Wiesenweg 1;06567;Bad Frankenhausen;51,3564;11,0984;stufenloser Zugang",
        "kyffhaeuser-therme;Kyffhäuser-Therme;Bad mit Sauna;;info@therme.example.de;034671 5120;https://therme.example.de;ja;nein;"
        "sauna;Saunawelt;Am Wiesenweg 1;06567;Bad Frankenhausen;;;",
        "barbarossahoehle;Barbarossahöhle;Höhle im Kyffhäuser;;;;;ja;ja;main;Barbarossahöhle;Mühlen 6;06567;Rottleben;;;",
    ]
)
OFFER_HEADER = (
    "edition;key;provider;category;title;description;discount_kind;discount_value;"
    "conditions;min_age;max_age;redemption_limit;published;venues"
)


def count(model: Any) -> int:
    """Rows of a model."""
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def upload(
    client: FlaskClient,
    text: str | bytes,
    kind: str,
    action: str = "check",
    filename: str = "daten.csv",
) -> Any:
    """POST a CSV file to the import page."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return client.post(
        "/verwaltung/import",
        data={
            "csrf_token": csrf_token(client, "/verwaltung/import"),
            "kind": kind,
            "action": action,
            "file": (io.BytesIO(data), filename),
        },
        content_type="multipart/form-data",
    )


def problems(response: Any) -> list[tuple[str, str, str]]:
    """(row, column, message) of every problem row in the result table."""
    text = response.get_data(as_text=True)
    rows = re.findall(
        r'<tr>\s*<th scope="row" class="num">([^<]*)</th>\s*<td><code>([^<]*)</code></td>\s*<td>([^<]*)</td>',
        text,
    )
    return [(html.unescape(r).strip(), html.unescape(c), html.unescape(m)) for r, c, m in rows]


@pytest.fixture
def staff_client(client: FlaskClient, make_user: Any, login: Any) -> FlaskClient:
    """The test client logged in as staff."""
    login(make_user("staff"))
    return client


@pytest.fixture
def sport(app: Flask) -> Category:
    """The category Sport."""
    category = Category(slug="sport", name_de="Sport", name_en="Sports", position=1)
    db.session.add(category)
    db.session.flush()
    return category


@pytest.fixture
def edition(make_edition: Any) -> Edition:
    """Edition 7."""
    return make_edition(number=7, valid_from=date(2026, 1, 1), valid_until=date(2027, 12, 31))


# ---- reading ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "separator"),
    [("", ";"), ("\ufeff", ";"), ("", ","), ("\ufeff", ",")],
    ids=["semicolon", "semicolon-bom", "comma", "comma-bom"],
)
def test_good_provider_import_writes_all_rows(
    staff_client: FlaskClient, prefix: str, separator: str
) -> None:
    """UTF-8 with or without BOM, ; or , separated: every provider and venue is written and audited."""
    text = GOOD_PROVIDERS
    if separator == ",":
        # Cells with commas must be quoted in a comma file.
        text = "\n".join(
            ",".join(f'"{cell}"' if "," in cell else cell for cell in line.split(";"))
            for line in text.splitlines()
        )
    response = upload(staff_client, prefix + text, "providers", action="import")
    assert response.status_code == 302, problems(staff_client.get("/verwaltung/import"))
    therme = db.session.scalars(select(Provider).where(Provider.slug == "kyffhaeuser-therme")).one()
    assert therme.name == "Kyffhäuser-Therme"
    assert therme.website == "https://therme.example.de"
    assert sorted(v.key for v in therme.venues) == ["main", "sauna"]
    main = next(v for v in therme.venues if v.key == "main")
    assert main.latitude == Decimal("51.3564")
    assert main.accessibility == "stufenloser Zugang"
    hoehle = db.session.scalars(select(Provider).where(Provider.slug == "barbarossahoehle")).one()
    assert hoehle.is_sample is True
    assert db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "catalogue.import_providers")
    ).one().details == {
        "rows": 3,
        "created": 5,
        "updated": 0,
    }
    assert (
        len(list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == "venue.create"))))
        == 3
    )
    followed = staff_client.get("/verwaltung/import")
    assert "Import abgeschlossen: 5 neu, 0 geändert, 0 unverändert." in html.unescape(
        followed.get_data(as_text=True)
    )


def test_dry_run_lists_every_problem_and_writes_nothing(
    staff_client: FlaskClient, make_provider: Any
) -> None:
    """Every bad row is listed with row number, column and message; nothing is written."""
    make_provider(name="Schon da")
    text = "\n".join(
        [
            PROVIDER_HEADER,
            "gut;Gut;;;;;https://gut.example.de;ja;nein;main;Gut;;99706;Sondershausen;;;",
            "schlecht-url;Schlecht;;;;;www.ohne-schema.de;ja;nein;main;Schlecht;;99706;Sondershausen;;;",
            "ohne-name;;;;;;;ja;nein;;;;;;;;",
            "plz;Plz;;;;;;ja;nein;main;Plz;;9970;Sondershausen;;;",
            "janein;Janein;;;;;;vielleicht;nein;main;Janein;;99706;Sondershausen;;;",
            "koordinaten;Koord;;;;;;ja;nein;main;Koord;;99706;Sondershausen;51,3;;",
            "gut;Gut anders;;;;;https://gut.example.de;ja;nein;zwei;Zwei;;99706;Sondershausen;;;",
            "mail;Mail;;;keine-mail;;;ja;nein;main;Mail;;99706;;;;",
        ]
    )
    before = count(Provider), count(Venue), count(AuditEntry)
    response = upload(staff_client, text, "providers")
    assert response.status_code == 422
    found = problems(response)
    assert (
        "3",
        "website",
        "Die Webseite muss eine Adresse sein, die mit http:// oder https:// beginnt.",
    ) in found
    assert ("4", "name", "Der Name darf nicht leer sein.") in found
    assert ("5", "venue_postal_code", "Die Postleitzahl hat genau fünf Ziffern.") in found
    assert ("6", "published", "„vielleicht“ ist kein Ja/Nein-Wert (ja oder nein).") in found
    assert ("7", "venue_lat", "Breite und Länge gibt es nur zusammen (beide oder keine).") in found
    assert any(r == "8" and c == "name" and "Weicht von Zeile 2 ab" in m for r, c, m in found)
    assert ("9", "email", "„keine-mail“ ist keine gültige E-Mail-Adresse.") in found
    assert ("9", "venue_town", "Der Ort darf nicht leer sein.") in found
    assert not any(r == "2" for r, _c, _m in found)
    assert (count(Provider), count(Venue), count(AuditEntry)) == before


def test_one_bad_row_writes_nothing(staff_client: FlaskClient) -> None:
    """An import (not a dry run) of a file with one bad row writes no row at all."""
    text = GOOD_PROVIDERS + "\nkaputt;Kaputt;;;;;ftp://kaputt.example.de;ja;nein;;;;;;;;\n"
    before = count(Provider), count(Venue), count(AuditEntry)
    response = upload(staff_client, text, "providers", action="import")
    assert response.status_code == 422
    assert problems(response) == [
        (
            "5",
            "website",
            "Die Webseite muss eine Adresse sein, die mit http:// oder https:// beginnt.",
        )
    ]
    assert "es wurde nichts gespeichert" in html.unescape(response.get_data(as_text=True))
    assert (count(Provider), count(Venue), count(AuditEntry)) == before


def test_failure_while_writing_rolls_back_every_row(
    staff_client: FlaskClient, monkeypatch: Any
) -> None:
    """If writing fails after some rows (a race, a constraint), the rows written so far are undone."""
    real = catalogue_admin.create_venue
    calls = {"n": 0}

    def flaky(provider: Provider, values: dict[str, Any], by: Any) -> Venue:
        calls["n"] += 1
        if calls["n"] == 3:
            from kyffikus.services import Conflict

            raise Conflict("Simulierter Fehler beim Schreiben.")
        return real(provider, values, by)

    monkeypatch.setattr(catalogue_admin, "create_venue", flaky)
    before = count(Provider), count(Venue), count(AuditEntry)
    response = upload(staff_client, GOOD_PROVIDERS, "providers", action="import")
    assert response.status_code == 422
    assert calls["n"] == 3
    assert ("–", "-", "Simulierter Fehler beim Schreiben.") in problems(response)
    assert (count(Provider), count(Venue), count(AuditEntry)) == before


def test_dry_run_then_import_from_the_checked_content(staff_client: FlaskClient) -> None:
    """A clean dry run offers a button that imports exactly the checked file."""
    response = upload(staff_client, GOOD_PROVIDERS, "providers")
    assert response.status_code == 200
    text = html.unescape(response.get_data(as_text=True))
    assert "Probelauf ohne Fehler" in text
    assert "Beim Import: 5 neu, 0 geändert, 0 unverändert" in text
    assert count(Provider) == 0
    content = html.unescape(
        re.search(r'name="content" value="([^"]*)"', response.get_data(as_text=True)).group(1)
    )
    assert content == GOOD_PROVIDERS
    response = staff_client.post(
        "/verwaltung/import",
        data={
            "csrf_token": csrf_token(staff_client, "/verwaltung/import"),
            "kind": "providers",
            "content": content,
            "action": "import",
        },
    )
    assert response.status_code == 302
    assert count(Provider) == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"Name;Ort\nx;y\n", "Unbekannte Spalte"),
        (b"slug;name\n", "Die Datei enthält keine Datenzeilen."),
        (b"", "Bitte w"),
        ("slug;name\nkyff;Kyffhäuser\n".encode("latin-1"), "nicht in UTF-8 gespeichert"),
        (b"name;slug;name\nA;a;A\n", "zweimal in der Kopfzeile"),
    ],
    ids=["unknown-columns", "no-rows", "empty", "latin-1", "duplicate-column"],
)
def test_broken_files_get_a_clear_message(
    staff_client: FlaskClient, data: bytes, message: str
) -> None:
    """Broken files: 422 and a message that says what is wrong."""
    response = upload(staff_client, data, "providers")
    assert response.status_code == 422
    assert message in html.unescape(response.get_data(as_text=True))
    assert count(Provider) == 0


def test_missing_columns_leave_fields_alone(staff_client: FlaskClient, make_provider: Any) -> None:
    """A file with only some columns changes only those: no description is wiped, no state flipped."""
    provider = _provider(
        make_provider, "Alter Name", "therme", phone="034671 5120", published=False
    )
    response = upload(
        staff_client, "slug;name\ntherme;Neuer Name\nneu;Ganz neu\n", "providers", action="import"
    )
    assert response.status_code == 302
    assert provider.name == "Neuer Name"
    assert provider.description == "Ein Anbieter für Tests."
    assert provider.phone == "034671 5120"
    assert provider.published is False
    new = db.session.scalars(select(Provider).where(Provider.slug == "neu")).one()
    assert (new.published, new.is_sample, new.description) == (True, False, "")


# ---- offers -----------------------------------------------------------------------------------


def _provider(make_provider: Any, name: str, slug: str, **fields: Any) -> Provider:
    provider = make_provider(name=name, **fields)
    provider.slug = slug
    db.session.flush()
    return provider


def _offers_setup(make_provider: Any) -> Provider:
    provider = _provider(make_provider, "Kyffhäuser-Therme", "therme")
    db.session.add(
        Venue(provider=provider, key="sauna", name="Saunawelt", town="Bad Frankenhausen")
    )
    db.session.flush()
    return provider


def test_good_offer_import(
    staff_client: FlaskClient, make_provider: Any, sport: Category, edition: Edition
) -> None:
    """Offers are written with their venues, values and ages; re-importing changes nothing."""
    _offers_setup(make_provider)
    text = "\n".join(
        [
            OFFER_HEADER,
            "7;schwimmen;therme;sport;Schwimmen für Familien;Zwei Stunden;percent;20;nur am Wochenende;3;12;per_day;ja;main|sauna",
            "7;sauna-kinder;therme;sport;Kinder in die Sauna;;children_free;;;;;per_edition;nein;sauna",
            "7;familienkarte;therme;sport;Familienkarte;;family_price;19,90;;;;unlimited;ja;main",
        ]
    )
    response = upload(staff_client, text, "offers", action="import")
    assert response.status_code == 302, problems(response)
    offers = {
        o.key: o for o in db.session.scalars(select(Offer).where(Offer.edition_id == edition.id))
    }
    assert set(offers) == {"schwimmen", "sauna-kinder", "familienkarte"}
    assert offers["schwimmen"].discount_value == Decimal("20")
    assert (offers["schwimmen"].min_age, offers["schwimmen"].max_age) == (3, 12)
    assert sorted(v.key for v in offers["schwimmen"].venues) == ["main", "sauna"]
    assert offers["sauna-kinder"].published is False
    assert offers["sauna-kinder"].discount_value is None
    assert offers["familienkarte"].discount_value == Decimal("19.90")
    response = upload(staff_client, text, "offers")
    assert "Beim Import: 0 neu, 0 geändert, 3 unverändert" in html.unescape(
        response.get_data(as_text=True)
    )


def test_offer_import_without_optional_columns_keeps_values(
    staff_client: FlaskClient,
    make_provider: Any,
    make_offer: Any,
    sport: Category,
    edition: Edition,
) -> None:
    """An offers file without published, ages or conditions leaves those of existing offers alone."""
    provider = _offers_setup(make_provider)
    offer = make_offer(
        provider, edition=edition, key="schwimmen", min_age=3, max_age=12, conditions="Sonntags"
    )
    text = "edition;key;provider;category;title;discount_kind;discount_value;venues\n"
    text += "7;schwimmen;therme;sport;Schwimmen neu;percent;15;main\n"
    response = upload(staff_client, text, "offers", action="import")
    assert response.status_code == 302, problems(response)
    db.session.refresh(offer)
    assert offer.title == "Schwimmen neu"
    assert offer.discount_value == Decimal("15")
    assert offer.published is True
    assert (offer.min_age, offer.max_age, offer.conditions) == (3, 12, "Sonntags")


def test_offer_dry_run_lists_every_problem(
    staff_client: FlaskClient, make_provider: Any, sport: Category, edition: Edition
) -> None:
    """Each broken rule of an offer row is reported with its row and column; nothing is written."""
    provider = _offers_setup(make_provider)
    other = _provider(make_provider, "Andere", "andere")
    text = "\n".join(
        [
            OFFER_HEADER,
            "7;gut;therme;sport;Gut;;percent;10;;;;per_day;ja;main",
            "7;prozent;therme;sport;Zu viel;;percent;150;;;;per_day;ja;main",
            "7;alter;therme;sport;Alter;;amount;5;;10;5;per_day;ja;main",
            "7;fremd;therme;sport;Fremd;;percent;10;;;;per_day;ja;main|nirgends",
            "8;ausgabe;unbekannt;tanz;Ausgabe;;other;;;;;immer;ja;main",
            "7;gut;therme;sport;Doppelt;;percent;10;;;;per_day;ja;main",
            "7;;therme;sport;;;other;3;;;;per_day;ja;",
            "7;kinder;therme;sport;Kinder;;children_free;1,5;;;;per_day;ja;main",
        ]
    )
    before = count(Offer), count(AuditEntry)
    response = upload(staff_client, text, "offers", action="import")
    assert response.status_code == 422
    found = problems(response)
    assert ("3", "discount_value", "Ein Prozentsatz liegt zwischen 1 und 100.") in found
    assert ("4", "max_age", "Das Höchstalter (5) liegt unter dem Mindestalter (10).") in found
    assert ("5", "venues", "therme hat keinen Standort „nirgends“.") in found
    assert ("6", "edition", "Eine Ausgabe mit der Nummer 8 gibt es nicht.") in found
    assert (
        "6",
        "provider",
        "Unbekannter Anbieter „unbekannt“; importieren Sie zuerst die Anbieter.",
    ) in found
    assert ("6", "category", "Unbekannte Kategorie „tanz“.") in found
    assert (
        "6",
        "redemption_limit",
        "Bitte wählen Sie, wie oft das Angebot genutzt werden kann.",
    ) in found
    assert ("7", "key", "Das Angebot „gut“ steht schon in Zeile 2.") in found
    assert ("8", "venues", "Darf nicht leer sein.") in found
    assert ("8", "title", "Der Titel darf nicht leer sein.") in found
    assert any(
        r == "8" and c == "discount_value" and "bleibt der Wert leer" in m for r, c, m in found
    )
    assert any(r == "9" and c == "discount_value" and "ganze Zahl ab 1" in m for r, c, m in found)
    assert not any(r == "2" for r, _c, _m in found)
    assert (count(Offer), count(AuditEntry)) == before
    # A venue of another provider is named like an unknown one: it is not this provider's.
    response = upload(
        staff_client,
        OFFER_HEADER + f"\n7;x;therme;sport;X;;percent;10;;;;per_day;ja;{other.venues[0].key}x",
        "offers",
    )
    assert ("2", "venues", f"therme hat keinen Standort „{other.venues[0].key}x“.") in problems(
        response
    )
    assert provider.offers == []


# ---- export and round trip ----------------------------------------------------------------------


def test_export_round_trip(staff_client: FlaskClient, catalogue: Any) -> None:
    """Exported files import cleanly; after changes in the database, importing them restores it."""
    providers_csv = staff_client.get("/verwaltung/export/anbieter.csv")
    assert providers_csv.status_code == 200
    assert providers_csv.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="anbieter.csv"' in providers_csv.headers["Content-Disposition"]
    offers_csv = staff_client.get("/verwaltung/export/angebote.csv")
    providers_text = providers_csv.get_data(as_text=True)
    offers_text = offers_csv.get_data(as_text=True)
    assert providers_text.startswith("\ufeffslug;name;")
    assert offers_text.startswith("\ufeffedition;key;provider;")
    n_offers = count(Offer)
    assert offers_text.count("\r\n") == n_offers + 1

    # As they are: nothing to change.
    for kind, text in (("providers", providers_text), ("offers", offers_text)):
        response = upload(staff_client, text.encode("utf-8"), kind)
        assert response.status_code == 200, problems(response)
        page = html.unescape(response.get_data(as_text=True))
        assert "Beim Import: 0 neu, 0 geändert" in page, kind

    # Change a provider and an offer, then import the export again: both are restored.
    provider = db.session.scalars(select(Provider).order_by(Provider.id)).first()
    offer = db.session.scalars(select(Offer).order_by(Offer.id)).first()
    old_name, old_title, old_value = provider.name, offer.title, offer.discount_value
    provider.name = "Umbenannt"
    offer.title = "Anders"
    db.session.flush()
    assert (
        upload(staff_client, providers_text.encode(), "providers", action="import").status_code
        == 302
    )
    assert upload(staff_client, offers_text.encode(), "offers", action="import").status_code == 302
    db.session.expire_all()
    assert provider.name == old_name
    assert offer.title == old_title
    assert offer.discount_value == old_value
    assert count(Offer) == n_offers
    # And the export is the same as before.
    assert (
        staff_client.get("/verwaltung/export/anbieter.csv").get_data(as_text=True) == providers_text
    )
    assert staff_client.get("/verwaltung/export/angebote.csv").get_data(as_text=True) == offers_text


def test_export_defuses_formulas_and_round_trips_them(
    staff_client: FlaskClient, make_provider: Any
) -> None:
    """Cells that a spreadsheet would run as a formula get a leading quote; the import removes it."""
    _provider(make_provider, '=HYPERLINK("x")', "formel", phone="+49 3632 1234")
    text = staff_client.get("/verwaltung/export/anbieter.csv").get_data(as_text=True)
    assert "'=HYPERLINK" in text
    assert "'+49 3632 1234" in text
    provider = db.session.scalars(select(Provider).where(Provider.slug == "formel")).one()
    provider.phone = "0"
    db.session.flush()
    assert upload(staff_client, text, "providers", action="import").status_code == 302
    db.session.expire_all()
    assert provider.phone == "+49 3632 1234"
    assert provider.name == '=HYPERLINK("x")'


def test_export_one_edition(
    staff_client: FlaskClient, make_provider: Any, make_offer: Any, make_edition: Any
) -> None:
    """?auflage=N exports only that edition; an unknown one is 404, a bad one 400."""
    provider = make_provider()
    first = make_offer(provider, edition=make_edition(number=11))
    second = make_offer(provider, edition=make_edition(number=12))
    text = staff_client.get("/verwaltung/export/angebote.csv?auflage=12").get_data(as_text=True)
    assert second.key in text
    assert first.key not in text
    assert staff_client.get("/verwaltung/export/angebote.csv?auflage=99").status_code == 404
    assert staff_client.get("/verwaltung/export/angebote.csv?auflage=zwölf").status_code == 400


def test_service_round_trip_without_http(app: Flask, catalogue: Any) -> None:
    """The services alone: export, then a dry run of the same text finds nothing to change."""
    with app.test_request_context():
        for kind, text in (
            ("providers", catalogue_csv.export_providers()),
            ("offers", catalogue_csv.export_offers()),
        ):
            result = catalogue_csv.run_import(kind, text, None, dry_run=True)
            assert result.ok, result.problems
            assert (result.created, result.updated) == (0, 0)
            assert result.unchanged > 0
            assert result.written is False
