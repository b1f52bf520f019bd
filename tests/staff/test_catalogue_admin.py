"""Staff keep the catalogue: providers, venues, offers, categories, editions and localities."""

from __future__ import annotations

import html
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from kyffikus.extensions import db
from kyffikus.models import (
    AuditEntry,
    Category,
    Edition,
    Locality,
    Municipality,
    Offer,
    PostalCode,
    Provider,
    Venue,
)
from kyffikus.services.catalogue_admin import slugify
from tests.conftest import post_form


def count(model: Any) -> int:
    """Rows of a model."""
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def page_text(response: Any) -> str:
    """The response's HTML with entities decoded, for looking for messages."""
    return html.unescape(response.get_data(as_text=True))


def audits(action: str, object_id: Any = None) -> list[AuditEntry]:
    """Audit entries of an action (and object), oldest first."""
    query = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
    if object_id is not None:
        query = query.where(AuditEntry.object_id == str(object_id))
    return list(db.session.scalars(query))


@pytest.fixture
def staff_client(client: FlaskClient, make_user: Any, login: Any) -> FlaskClient:
    """The test client logged in as staff."""
    login(make_user("staff"))
    return client


@pytest.fixture
def provider(make_provider: Any) -> Provider:
    """A provider with one venue."""
    return make_provider(name="Kyffhäuser-Therme")


@pytest.fixture
def edition(make_edition: Any) -> Edition:
    """Edition 1, 2026/2027."""
    return make_edition(number=1, valid_from=date(2026, 1, 1), valid_until=date(2027, 12, 31))


@pytest.fixture
def category(app: Flask) -> Category:
    """The category Sport."""
    category = Category(slug="sport", name_de="Sport", name_en="Sports", position=1)
    db.session.add(category)
    db.session.flush()
    return category


def offer_form(
    provider: Provider, edition: Edition, category: Category, **changes: Any
) -> dict[str, Any]:
    """A valid offer form; keyword arguments replace fields."""
    data: dict[str, Any] = {
        "title": "Familientag mit Rabatt",
        "key": "",
        "edition_id": str(edition.id),
        "category_id": str(category.id),
        "description": "Ein Tag für die ganze Familie.",
        "discount_kind": "percent",
        "discount_value": "20",
        "conditions": "",
        "min_age": "",
        "max_age": "",
        "redemption_limit": "per_day",
        "venues": [str(v.id) for v in provider.venues],
        "published": "y",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


# ---- slugs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Kyffhäuser-Therme", "kyffhaeuser-therme"),
        ("Museum Zuckerfabrik Oldisleben", "museum-zuckerfabrik-oldisleben"),
        ("Großer Spaß für Öl & Übermut", "grosser-spass-fuer-oel-uebermut"),
        ("  Café  ", "cafe"),
    ],
)
def test_slug_transliterates_umlauts(name: str, slug: str) -> None:
    """Umlaute become ae/oe/ue, ß becomes ss, everything else a dash."""
    assert slugify(name) == slug


# ---- providers --------------------------------------------------------------------------------


def test_create_provider_writes_audit_with_new_values(staff_client: FlaskClient) -> None:
    """A new provider gets a slug from its name; the audit entry holds the new values."""
    response = post_form(
        staff_client,
        "/verwaltung/anbieter/neu",
        {
            "name": "Erlebnisbad Günserode",
            "description": "Ein Bad.",
            "website": "https://bad.example.de",
            "email": "Info@Bad.Example.de",
            "published": "y",
        },
    )
    assert response.status_code == 302
    provider = db.session.scalars(
        select(Provider).where(Provider.name == "Erlebnisbad Günserode")
    ).one()
    assert provider.slug == "erlebnisbad-guenserode"
    assert provider.email == "info@bad.example.de"
    assert provider.published is True
    (entry,) = audits("provider.create", provider.id)
    assert entry.details["name"] == {"old": None, "new": "Erlebnisbad Günserode"}
    assert entry.details["website"] == {"old": None, "new": "https://bad.example.de"}


def test_second_provider_with_same_name_gets_a_free_slug(
    staff_client: FlaskClient, provider: Provider
) -> None:
    """Two providers of the same name get different slugs."""
    post_form(staff_client, "/verwaltung/anbieter/neu", {"name": provider.name})
    slugs = set(db.session.scalars(select(Provider.slug).where(Provider.name == provider.name)))
    assert len(slugs) == 2
    assert "kyffhaeuser-therme" in slugs


def test_update_provider_audits_old_and_new(staff_client: FlaskClient, provider: Provider) -> None:
    """Editing records exactly the changed fields with old and new values."""
    old_name = provider.name
    response = post_form(
        staff_client,
        f"/verwaltung/anbieter/{provider.id}/bearbeiten",
        {
            "name": "Kyffhäuser-Therme Bad Frankenhausen",
            "slug": provider.slug,
            "phone": "034671 5120",
            "published": "y",
        },
    )
    assert response.status_code == 302
    (entry,) = audits("provider.update", provider.id)
    assert entry.details["name"] == {"old": old_name, "new": "Kyffhäuser-Therme Bad Frankenhausen"}
    assert entry.details["phone"] == {"old": None, "new": "034671 5120"}
    assert "slug" not in entry.details


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": ""}, "Bitte geben Sie den Namen an."),
        ({"name": "Bad", "website": "www.bad.example.de"}, "mit http:// oder https:// beginnt"),
        ({"name": "Bad", "website": "javascript:alert(1)"}, "mit http:// oder https:// beginnt"),
        ({"name": "Bad", "website": "ftp://bad.example.de"}, "mit http:// oder https:// beginnt"),
        ({"name": "Bad", "email": "kein-at-zeichen"}, "keine gültige E-Mail-Adresse"),
        ({"name": "Bad", "slug": "Groß Schreibung"}, "kein gültiger Schlüssel"),
        ({"name": "x" * 201}, "Höchstens 200 Zeichen erlaubt."),
    ],
    ids=[
        "empty-name",
        "url-without-scheme",
        "javascript-url",
        "ftp-url",
        "bad-email",
        "bad-slug",
        "long-name",
    ],
)
def test_bad_provider_input_is_refused_and_nothing_written(
    staff_client: FlaskClient, data: dict[str, str], message: str
) -> None:
    """Bad provider input: 422, a clear message, no provider and no audit entry."""
    providers, entries = count(Provider), count(AuditEntry)
    response = post_form(staff_client, "/verwaltung/anbieter/neu", data)
    assert response.status_code == 422
    assert message in page_text(response)
    assert count(Provider) == providers
    assert count(AuditEntry) == entries


def test_taken_slug_is_refused(staff_client: FlaskClient, provider: Provider) -> None:
    """A slug of another provider is refused with a message naming it."""
    response = post_form(
        staff_client, "/verwaltung/anbieter/neu", {"name": "Neu", "slug": provider.slug}
    )
    assert response.status_code == 422
    assert f"„{provider.slug}“ gehört schon einem anderen Anbieter" in page_text(response)


def test_race_on_a_unique_key_is_a_message_not_an_error(
    staff_client: FlaskClient, provider: Provider, monkeypatch: Any
) -> None:
    """If another save takes the slug between check and write, the database refuses: 422, a message."""
    from kyffikus.services import catalogue_admin

    monkeypatch.setattr(catalogue_admin, "validate_provider", lambda values, current=None: {})
    providers = count(Provider)
    response = post_form(
        staff_client, "/verwaltung/anbieter/neu", {"name": "Neu", "slug": provider.slug}
    )
    assert response.status_code == 422
    assert "widersprechen einem Eintrag, der gerade gespeichert wurde" in page_text(response)
    assert count(Provider) == providers
    assert db.session.get(Provider, provider.id) is not None  # earlier rows are untouched


def test_publish_toggle_is_audited(staff_client: FlaskClient, provider: Provider) -> None:
    """Unpublish and publish again: two audit entries with old and new values."""
    url = f"/verwaltung/anbieter/{provider.id}/veroeffentlichen"
    token_page = f"/verwaltung/anbieter/{provider.id}"
    assert (
        post_form(staff_client, url, {"published": "0"}, token_from=token_page).status_code == 302
    )
    assert provider.published is False
    assert (
        post_form(staff_client, url, {"published": "1"}, token_from=token_page).status_code == 302
    )
    assert provider.published is True
    (off,) = audits("provider.unpublish", provider.id)
    assert off.details == {"published": {"old": True, "new": False}}
    assert len(audits("provider.publish", provider.id)) == 1


def test_publish_needs_post(staff_client: FlaskClient, provider: Provider) -> None:
    """Nothing changes state on GET."""
    response = staff_client.get(f"/verwaltung/anbieter/{provider.id}/veroeffentlichen")
    assert response.status_code == 405
    assert provider.published is True


def test_provider_with_offers_cannot_be_deleted(
    staff_client: FlaskClient, provider: Provider, make_offer: Any
) -> None:
    """Deleting a provider that has offers is refused with advice; deleting an empty one works."""
    make_offer(provider)
    response = post_form(
        staff_client,
        f"/verwaltung/anbieter/{provider.id}/loeschen",
        {},
        token_from="/verwaltung/",
        follow_redirects=True,
    )
    assert "kann nicht gelöscht werden" in page_text(response)
    assert db.session.get(Provider, provider.id) is not None

    empty = Provider(slug="leer", name="Leer")
    db.session.add(empty)
    db.session.flush()
    response = post_form(
        staff_client, f"/verwaltung/anbieter/{empty.id}/loeschen", {}, token_from="/verwaltung/"
    )
    assert response.status_code == 302
    assert db.session.scalars(select(Provider).where(Provider.slug == "leer")).first() is None
    assert audits("provider.delete", empty.id)[0].details["name"] == {"old": "Leer", "new": None}


# ---- venues -----------------------------------------------------------------------------------


def test_create_and_edit_venue(staff_client: FlaskClient, provider: Provider) -> None:
    """A venue gets a key from its name; coordinates take a decimal comma."""
    response = post_form(
        staff_client,
        f"/verwaltung/anbieter/{provider.id}/standorte/neu",
        {
            "name": "Außenbecken Süd",
            "town": "Bad Frankenhausen",
            "postal_code": "06567",
            "latitude": "51,3564",
            "longitude": "11,0984",
        },
    )
    assert response.status_code == 302
    venue = db.session.scalars(select(Venue).where(Venue.name == "Außenbecken Süd")).one()
    assert venue.key == "aussenbecken-sued"
    assert venue.latitude == Decimal("51.3564")
    assert audits("venue.create", venue.id)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"name": "Halle", "town": "Artern", "postal_code": "0655"},
            "Die Postleitzahl hat genau fünf Ziffern.",
        ),
        ({"name": "Halle", "town": ""}, "Bitte geben Sie den Ort an."),
        (
            {"name": "Halle", "town": "Artern", "latitude": "51,3"},
            "Breite und Länge gibt es nur zusammen",
        ),
        (
            {"name": "Halle", "town": "Artern", "latitude": "abc", "longitude": "1"},
            "Bitte geben Sie eine Zahl ein",
        ),
        (
            {"name": "Markt", "key": "main", "town": "Artern"},
            "hat schon einen Standort mit dem Schlüssel „main“",
        ),
    ],
)
def test_bad_venue_input(
    staff_client: FlaskClient, provider: Provider, data: dict[str, str], message: str
) -> None:
    """Bad venue input: 422, a clear message, nothing written."""
    venues = count(Venue)
    response = post_form(staff_client, f"/verwaltung/anbieter/{provider.id}/standorte/neu", data)
    assert response.status_code == 422
    assert message in page_text(response)
    assert count(Venue) == venues


# ---- offers -----------------------------------------------------------------------------------


def test_create_offer_and_preview(
    staff_client: FlaskClient, provider: Provider, edition: Edition, category: Category
) -> None:
    """A new offer is written with every field and shown in the preview as families see it."""
    data = offer_form(
        provider, edition, category, min_age="3", max_age="12", conditions="Nur sonntags."
    )
    response = post_form(staff_client, f"/verwaltung/anbieter/{provider.id}/angebote/neu", data)
    assert response.status_code == 302
    offer = db.session.scalars(select(Offer).where(Offer.title == "Familientag mit Rabatt")).one()
    assert offer.key == "familientag-mit-rabatt"
    assert offer.discount_value == Decimal("20")
    assert (offer.min_age, offer.max_age) == (3, 12)
    assert offer.redemption_limit == "per_day"
    assert [v.id for v in offer.venues] == [v.id for v in provider.venues]
    entry = audits("offer.create", offer.id)[0]
    assert entry.details["discount_value"] == {"old": None, "new": "20"}
    assert entry.details["venues"] == {"old": None, "new": ["main"]}

    preview = page_text(staff_client.get(response.headers["Location"]))
    assert "Familientag mit Rabatt" in preview
    assert "20 % Ermäßigung" in preview
    assert "Für Kinder von 3 bis 12 Jahren" in preview
    assert "Nur sonntags." in preview


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"title": ""}, "Bitte geben Sie einen Titel an."),
        (
            {"discount_kind": "percent", "discount_value": "150"},
            "Ein Prozentsatz liegt zwischen 1 und 100.",
        ),
        (
            {"discount_kind": "percent", "discount_value": "0"},
            "Ein Prozentsatz liegt zwischen 1 und 100.",
        ),
        ({"discount_kind": "percent", "discount_value": ""}, "Bitte geben Sie den Prozentsatz an"),
        ({"discount_kind": "amount", "discount_value": "0"}, "Der Betrag muss größer als 0 sein."),
        (
            {"discount_kind": "family_price", "discount_value": "-5"},
            "Der Betrag muss größer als 0 sein.",
        ),
        ({"discount_kind": "amount", "discount_value": "2,505"}, "Höchstens zwei Nachkommastellen"),
        ({"discount_kind": "children_free", "discount_value": "1,5"}, "eine ganze Zahl ab 1"),
        ({"discount_kind": "children_free", "discount_value": "0"}, "eine ganze Zahl ab 1"),
        ({"discount_kind": "other", "discount_value": "5"}, "bleibt der Wert leer"),
        ({"discount_kind": "gratis"}, "Bitte wählen Sie die Art des Vorteils."),
        ({"discount_value": "zehn"}, "Bitte geben Sie eine Zahl ein"),
        (
            {"min_age": "10", "max_age": "5"},
            "Das Höchstalter (5) liegt unter dem Mindestalter (10).",
        ),
        ({"min_age": "18"}, "Das Alter liegt zwischen 0 und 17 Jahren."),
        ({"max_age": "-1"}, "Das Alter liegt zwischen 0 und 17 Jahren."),
        ({"min_age": "2,5"}, "Bitte geben Sie eine ganze Zahl ein."),
        (
            {"redemption_limit": "weekly"},
            "Bitte wählen Sie, wie oft das Angebot genutzt werden kann.",
        ),
        ({"venues": []}, "Bitte wählen Sie mindestens einen Standort."),
        ({"category_id": "999999"}, "Bitte wählen Sie eine Kategorie."),
        ({"key": "Mit Leerzeichen"}, "kein gültiger Schlüssel"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_bad_offer_input_is_refused_and_nothing_written(
    staff_client: FlaskClient,
    provider: Provider,
    edition: Edition,
    category: Category,
    changes: dict[str, Any],
    message: str,
) -> None:
    """Each broken rule: 422, its message, no offer and no audit entry."""
    offers, entries = count(Offer), count(AuditEntry)
    data = offer_form(provider, edition, category, **changes)
    response = post_form(staff_client, f"/verwaltung/anbieter/{provider.id}/angebote/neu", data)
    assert response.status_code == 422
    assert message in page_text(response)
    assert count(Offer) == offers
    assert count(AuditEntry) == entries


@pytest.mark.parametrize(
    ("kind", "value", "stored"),
    [
        ("percent", "100", Decimal("100")),
        ("percent", "12,5", Decimal("12.5")),
        ("amount", "2,50", Decimal("2.50")),
        ("family_price", "19.90", Decimal("19.90")),
        ("children_free", "", None),
        ("children_free", "2", Decimal("2")),
        ("other", "", None),
    ],
)
def test_valid_discounts(
    staff_client: FlaskClient,
    provider: Provider,
    edition: Edition,
    category: Category,
    kind: str,
    value: str,
    stored: Decimal | None,
) -> None:
    """Every kind of discount with a valid value is stored."""
    data = offer_form(provider, edition, category, discount_kind=kind, discount_value=value)
    response = post_form(staff_client, f"/verwaltung/anbieter/{provider.id}/angebote/neu", data)
    assert response.status_code == 302
    offer = db.session.scalars(select(Offer).where(Offer.title == "Familientag mit Rabatt")).one()
    assert offer.discount_kind == kind
    assert offer.discount_value == stored


def test_venue_of_another_provider_is_refused(
    staff_client: FlaskClient,
    provider: Provider,
    edition: Edition,
    category: Category,
    make_provider: Any,
) -> None:
    """An offer cannot name a venue of another provider, even in a hand-made request."""
    other = make_provider(name="Barbarossahöhle")
    data = offer_form(provider, edition, category, venues=[str(other.venues[0].id)])
    response = post_form(staff_client, f"/verwaltung/anbieter/{provider.id}/angebote/neu", data)
    assert response.status_code == 422
    assert f"Der Standort „{other.venues[0].name}“ gehört nicht zu {provider.name}." in page_text(
        response
    )
    assert count(Offer) == 0


def test_key_is_unique_per_edition(
    staff_client: FlaskClient,
    provider: Provider,
    edition: Edition,
    category: Category,
    make_offer: Any,
) -> None:
    """Two offers of one edition cannot share a key."""
    make_offer(provider, edition=edition, key="familientag-mit-rabatt")
    response = post_form(
        staff_client,
        f"/verwaltung/anbieter/{provider.id}/angebote/neu",
        offer_form(provider, edition, category),
    )
    assert response.status_code == 422
    assert "schon ein Angebot mit dem Schlüssel „familientag-mit-rabatt“" in page_text(response)


def test_update_offer_audits_old_and_new(
    staff_client: FlaskClient,
    provider: Provider,
    edition: Edition,
    category: Category,
    make_offer: Any,
) -> None:
    """Changing the discount and the venues records both with old and new values."""
    offer = make_offer(provider, edition=edition, discount_kind="percent", discount_value=10)
    second = Venue(provider=provider, key="sauna", name="Saunawelt", town="Bad Frankenhausen")
    db.session.add(second)
    db.session.flush()
    db.session.refresh(offer)  # as the view will see it: a Decimal read from the database
    data = offer_form(
        provider,
        edition,
        category,
        title=offer.title,
        key=offer.key,
        discount_value="15",
        venues=[str(second.id)],
    )
    response = post_form(staff_client, f"/verwaltung/angebote/{offer.id}/bearbeiten", data)
    assert response.status_code == 302
    assert offer.discount_value == Decimal("15")
    assert [v.key for v in offer.venues] == ["sauna"]
    (entry,) = audits("offer.update", offer.id)
    assert entry.details["discount_value"] == {"old": "10.00", "new": "15"}
    assert entry.details["venues"] == {"old": ["main"], "new": ["sauna"]}


def test_offer_publish_toggle_and_delete(
    staff_client: FlaskClient, provider: Provider, edition: Edition, make_offer: Any
) -> None:
    """Unpublish an offer, then delete it (never redeemed): both audited."""
    offer = make_offer(provider, edition=edition)
    offer_id = offer.id
    preview = f"/verwaltung/angebote/{offer_id}/vorschau"
    post_form(
        staff_client,
        f"/verwaltung/angebote/{offer_id}/veroeffentlichen",
        {"published": "0"},
        token_from=preview,
    )
    assert offer.published is False
    assert audits("offer.unpublish", offer_id)[0].details == {
        "published": {"old": True, "new": False}
    }
    response = post_form(
        staff_client, f"/verwaltung/angebote/{offer_id}/loeschen", {}, token_from=preview
    )
    assert response.status_code == 302
    assert db.session.get(Offer, offer_id) is None
    assert audits("offer.delete", offer_id)


def test_publish_redirects_only_to_this_site(
    staff_client: FlaskClient, provider: Provider, edition: Edition, make_offer: Any
) -> None:
    """The `next` of a toggle is refused when it points to another host."""
    offer = make_offer(provider, edition=edition)
    response = post_form(
        staff_client,
        f"/verwaltung/angebote/{offer.id}/veroeffentlichen",
        {"published": "0", "next": "https://evil.example/"},
        token_from="/verwaltung/",
    )
    assert response.headers["Location"] == f"/verwaltung/angebote/{offer.id}/vorschau"


# ---- categories -------------------------------------------------------------------------------


def test_category_crud(staff_client: FlaskClient, category: Category) -> None:
    """Add, refuse a duplicate slug, and delete an unused category."""
    response = post_form(
        staff_client,
        "/verwaltung/kategorien/neu",
        {"name_de": "Natur", "name_en": "Nature", "position": "6"},
    )
    assert response.status_code == 302
    natur = db.session.scalars(select(Category).where(Category.slug == "natur")).one()
    response = post_form(
        staff_client,
        "/verwaltung/kategorien/neu",
        {"name_de": "Sport", "name_en": "Sports", "slug": "sport"},
    )
    assert response.status_code == 422
    assert "Diesen Schlüssel hat schon eine andere Kategorie." in page_text(response)
    post_form(
        staff_client,
        f"/verwaltung/kategorien/{natur.id}/loeschen",
        {},
        token_from="/verwaltung/kategorien",
    )
    assert db.session.scalars(select(Category).where(Category.slug == "natur")).first() is None


# ---- editions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {
                "number": "2",
                "name": "Ausgabe 2",
                "valid_from": "2028-01-01",
                "valid_until": "2027-12-31",
            },
            "Das Ende der Gültigkeit liegt vor ihrem Beginn.",
        ),
        (
            {
                "number": "1",
                "name": "Doppelt",
                "valid_from": "2028-01-01",
                "valid_until": "2029-12-31",
            },
            "Eine Ausgabe mit der Nummer 1 gibt es schon.",
        ),
        (
            {"number": "2", "name": "", "valid_from": "2028-01-01", "valid_until": "2029-12-31"},
            "Bitte geben Sie den Namen an.",
        ),
        (
            {"number": "2", "name": "X", "valid_from": "31.02.2028", "valid_until": "2029-12-31"},
            "Bitte geben Sie ein gültiges Datum ein",
        ),
        (
            {"number": "0", "name": "X", "valid_from": "2028-01-01", "valid_until": "2029-12-31"},
            "Die Nummer ist eine ganze Zahl ab 1.",
        ),
    ],
    ids=["until-before-from", "number-taken", "empty-name", "bad-date", "number-zero"],
)
def test_bad_edition_input(
    staff_client: FlaskClient, edition: Edition, data: dict[str, str], message: str
) -> None:
    """Bad edition input: 422, a clear message, nothing written."""
    editions, offers = count(Edition), count(Offer)
    response = post_form(staff_client, "/verwaltung/auflagen/neu", {**data, "copy_offers": "y"})
    assert response.status_code == 422
    assert message in page_text(response)
    assert count(Edition) == editions
    assert count(Offer) == offers


def test_new_edition_form_suggests_the_next_one(
    staff_client: FlaskClient, edition: Edition
) -> None:
    """The form proposes number 2 starting the day after edition 1 ends."""
    text = page_text(staff_client.get("/verwaltung/auflagen/neu"))
    assert 'value="2"' in text
    assert 'value="2028-01-01"' in text
    assert 'value="2029-12-31"' in text


def test_new_edition_copies_offers_as_drafts(
    staff_client: FlaskClient,
    provider: Provider,
    edition: Edition,
    make_offer: Any,
    make_provider: Any,
) -> None:
    """Edition N+1 gets a draft copy of every offer of edition N: same key, copied_from set."""
    second_venue = Venue(provider=provider, key="sauna", name="Saunawelt", town="Bad Frankenhausen")
    db.session.add(second_venue)
    db.session.flush()
    originals = [
        make_offer(
            provider,
            edition=edition,
            key="schwimmen",
            discount_kind="percent",
            discount_value=10,
            min_age=3,
            max_age=12,
        ),
        make_offer(
            make_provider(),
            edition=edition,
            key="kinder-frei",
            discount_kind="children_free",
            discount_value=None,
            published=False,
            limit="per_edition",
        ),
    ]
    originals[0].venues = list(provider.venues)
    db.session.flush()
    response = post_form(
        staff_client,
        "/verwaltung/auflagen/neu",
        {
            "number": "2",
            "name": "Familienpass Kyffikus 2028/2029",
            "valid_from": "2028-01-01",
            "valid_until": "2029-12-31",
            "copy_offers": "y",
        },
    )
    assert response.status_code == 302
    new = db.session.scalars(select(Edition).where(Edition.number == 2)).one()
    copies = {o.key: o for o in db.session.scalars(select(Offer).where(Offer.edition_id == new.id))}
    assert set(copies) == {"schwimmen", "kinder-frei"}
    for original in originals:
        copy = copies[original.key]
        assert copy.published is False
        assert copy.copied_from_id == original.id
        assert copy.provider_id == original.provider_id
        assert copy.category_id == original.category_id
        for field in (
            "title",
            "description",
            "discount_kind",
            "discount_value",
            "conditions",
            "min_age",
            "max_age",
            "redemption_limit",
        ):
            assert getattr(copy, field) == getattr(original, field), field
        assert sorted(v.id for v in copy.venues) == sorted(v.id for v in original.venues)
    # The originals are untouched.
    assert originals[0].edition_id == edition.id
    assert originals[0].published is True
    assert len(audits("offer.copy")) == 2
    assert "2 Angebote wurden als Entwürfe übernommen" in page_text(
        staff_client.get(response.headers["Location"])
    )
    # The drafts are listed under the new edition.
    listing = page_text(staff_client.get("/verwaltung/angebote?auflage=2&status=entwurf"))
    assert "Entwurf" in listing
    assert originals[0].title in listing


def test_new_edition_without_copy(
    staff_client: FlaskClient, provider: Provider, edition: Edition, make_offer: Any
) -> None:
    """Unticking the box creates an empty edition."""
    make_offer(provider, edition=edition)
    post_form(
        staff_client,
        "/verwaltung/auflagen/neu",
        {"number": "2", "name": "Leer", "valid_from": "2028-01-01", "valid_until": "2029-12-31"},
    )
    new = db.session.scalars(select(Edition).where(Edition.number == 2)).one()
    assert db.session.scalar(select(func.count()).where(Offer.edition_id == new.id)) == 0


def test_edit_edition_audits_dates(staff_client: FlaskClient, edition: Edition) -> None:
    """Changing an edition's end date is audited with old and new dates."""
    response = post_form(
        staff_client,
        f"/verwaltung/auflagen/{edition.id}/bearbeiten",
        {
            "number": "1",
            "name": edition.name,
            "valid_from": "2026-01-01",
            "valid_until": "2028-06-30",
        },
    )
    assert response.status_code == 302
    assert edition.valid_until == date(2028, 6, 30)
    (entry,) = audits("edition.update", edition.id)
    assert entry.details == {"valid_until": {"old": "2027-12-31", "new": "2028-06-30"}}


# ---- localities -------------------------------------------------------------------------------


def test_add_locality_with_new_postal_code(staff_client: FlaskClient, localities: None) -> None:
    """A locality with a postal code the district did not have adds that code too."""
    municipality = db.session.scalars(
        select(Municipality).where(Municipality.name == "Sondershausen")
    ).one()
    response = post_form(
        staff_client,
        "/verwaltung/orte/neu",
        {
            "name": "Neuer Ortsteil",
            "postal_code": "99709",
            "municipality_id": str(municipality.id),
            "active": "y",
        },
    )
    assert response.status_code == 302
    locality = db.session.scalars(select(Locality).where(Locality.name == "Neuer Ortsteil")).one()
    assert locality.active is True
    assert db.session.get(PostalCode, "99709") is not None
    assert audits("locality.create", locality.id)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "Ort", "postal_code": "9970"}, "Die Postleitzahl hat genau fünf Ziffern."),
        ({"name": "Ort", "postal_code": "99a06"}, "Die Postleitzahl hat genau fünf Ziffern."),
        ({"name": "", "postal_code": "99706"}, "Bitte geben Sie den Namen an."),
        (
            {"name": "Sondershausen", "postal_code": "99706"},
            "„Sondershausen“ mit der Postleitzahl 99706 gibt es schon.",
        ),
    ],
)
def test_bad_locality_input(
    staff_client: FlaskClient, localities: None, data: dict[str, str], message: str
) -> None:
    """Bad locality input: 422, a clear message, nothing written."""
    municipality = db.session.scalars(select(Municipality).order_by(Municipality.id)).first()
    before = count(Locality), count(PostalCode)
    response = post_form(
        staff_client, "/verwaltung/orte/neu", {**data, "municipality_id": str(municipality.id)}
    )
    assert response.status_code == 422
    assert message in page_text(response)
    assert (count(Locality), count(PostalCode)) == before


def test_deactivate_locality_and_municipality(staff_client: FlaskClient, localities: None) -> None:
    """The active flags can be cleared (a merger); audited."""
    locality = db.session.scalars(select(Locality).where(Locality.name == "Wolferschwenda")).one()
    response = post_form(
        staff_client,
        f"/verwaltung/orte/{locality.id}/bearbeiten",
        {
            "name": locality.name,
            "postal_code": locality.postal_code,
            "municipality_id": str(locality.municipality_id),
        },
    )
    assert response.status_code == 302
    assert locality.active is False
    assert audits("locality.update", locality.id)[0].details == {
        "active": {"old": True, "new": False}
    }
    municipality = locality.municipality
    post_form(
        staff_client,
        f"/verwaltung/gemeinden/{municipality.id}/bearbeiten",
        {"name": municipality.name},
    )
    assert municipality.active is False


def test_shared_postal_code_needs_a_note(staff_client: FlaskClient, localities: None) -> None:
    """06578 is shared with Landkreis Sömmerda: its note cannot be removed while it is shared."""
    url = "/verwaltung/postleitzahlen/06578/bearbeiten"
    assert "Bilzingsleben" in page_text(staff_client.get(url))
    response = post_form(staff_client, url, {"shared": "y", "note_de": ""})
    assert response.status_code == 422
    assert "Eine geteilte Postleitzahl braucht einen Hinweis" in page_text(response)
    code = db.session.get(PostalCode, "06578")
    assert code.note_de
    assert "Bilzingsleben" in code.note_de
    response = post_form(
        staff_client,
        url,
        {
            "shared": "y",
            "note_de": "Nur Oldisleben gehört zum Kyffhäuserkreis.",
            "note_en": code.note_en,
        },
    )
    assert response.status_code == 302
    assert code.note_de == "Nur Oldisleben gehört zum Kyffhäuserkreis."
    assert (
        audits("postal_code.update", "06578")[0].details["note_de"]["new"]
        == "Nur Oldisleben gehört zum Kyffhäuserkreis."
    )
