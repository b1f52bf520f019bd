"""Load the catalogue (JSON Lines) and the district's localities (JSON) into the database.

Both files are checked completely before anything is written: every problem is collected as a
CatalogueError and raised together as CatalogueFileError, so a broken file loads nothing. Then rows
are upserted by their natural keys, so loading the same files twice adds and changes nothing.
Rows missing from the files are left alone (staff may have added them). Fields inside lists are
named with 1-based positions, e.g. ``venues[1].postal_code`` is the first venue's postal code.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models.catalogue import (
    DISCOUNT_KINDS,
    REDEMPTION_LIMITS,
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
from kyffikus.services import DomainError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
CATALOGUE_FILE = DATA_DIR / "catalogue.jsonl"
LOCALITIES_FILE = DATA_DIR / "localities.json"

KINDS = ("edition", "category", "provider", "offer")
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
POSTAL_CODE_RE = re.compile(r"^\d{5}$")
CENT = Decimal("0.01")
MAX_DISCOUNT = Decimal("999999.99")  # Numeric(8, 2)

# The report's kinds in load order, with their German labels for the CLI.
REPORT_LABELS = {
    "postal_code": "Postleitzahlen",
    "municipality": "Gemeinden",
    "locality": "Orte",
    "outside_locality": "Orte außerhalb",
    "edition": "Ausgaben",
    "category": "Kategorien",
    "provider": "Anbieter",
    "venue": "Standorte",
    "offer": "Angebote",
}


@dataclass(frozen=True)
class CatalogueError:
    """One problem in a data file: line (0 if unknown), field and message."""

    line: int
    field: str
    message: str
    file: str | None = None  # None: the catalogue file; otherwise the file's name

    def __str__(self) -> str:
        """The error as shown to staff: Zeile N, Feld F: message (file name first for localities)."""
        where = f"Zeile {self.line}" if self.line else "Datei"
        text = f"{where}, Feld {self.field}: {self.message}"
        return f"{self.file}: {text}" if self.file else text


class CatalogueFileError(DomainError):
    """The catalogue or localities file has errors; nothing was loaded."""

    code = "catalogue_invalid"

    def __init__(self, errors: list[CatalogueError]) -> None:
        super().__init__(f"{len(errors)} Fehler in den Katalogdaten; nichts wurde geladen.")
        self.errors = errors


@dataclass
class LoadReport:
    """What a load added and changed, counted per kind (postal_code, provider, offer, ...)."""

    added: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)

    @property
    def total_added(self) -> int:
        """Rows added over all kinds."""
        return sum(self.added.values())

    @property
    def total_updated(self) -> int:
        """Rows changed over all kinds."""
        return sum(self.updated.values())

    def lines(self) -> list[str]:
        """One German line per kind, for the CLI."""
        return [
            f"{label}: {self.added[kind]} neu, {self.updated[kind]} geändert"
            for kind, label in REPORT_LABELS.items()
        ]


# ---- parsed records -------------------------------------------------------------------------


@dataclass
class EditionRow:
    """The edition line."""

    line: int
    number: int
    name: str
    valid_from: date
    valid_until: date


@dataclass
class CategoryRow:
    """A category line."""

    line: int
    slug: str
    name_de: str
    name_en: str
    position: int


@dataclass
class VenueRow:
    """A venue inside a provider line."""

    key: str
    name: str
    street: str | None
    postal_code: str | None
    town: str
    latitude: Decimal | None
    longitude: Decimal | None
    accessibility: str | None


@dataclass
class ProviderRow:
    """A provider line with its venues."""

    line: int
    slug: str
    name: str
    description: str
    contact_name: str | None
    email: str | None
    phone: str | None
    website: str | None
    is_sample: bool
    venues: list[VenueRow]


@dataclass
class OfferRow:
    """An offer line."""

    line: int
    key: str
    provider: str
    venues: list[str]
    category: str
    title: str
    description: str
    discount_kind: str
    discount_value: Decimal | None
    conditions: str | None
    min_age: int | None
    max_age: int | None
    redemption_limit: str


@dataclass
class Catalogue:
    """A checked catalogue file."""

    edition: EditionRow
    categories: list[CategoryRow]
    providers: list[ProviderRow]
    offers: list[OfferRow]


@dataclass
class Localities:
    """A checked localities file."""

    postal_codes: list[dict[str, Any]]
    outside: list[dict[str, str]]
    municipalities: list[tuple[str, list[tuple[str, str]]]]  # (name, [(locality, postal code)])


# ---- field checks ---------------------------------------------------------------------------

_MISSING = object()


class _Fields:
    """Reads and checks the fields of one JSON object, collecting errors instead of raising."""

    def __init__(
        self,
        obj: dict[str, Any],
        errors: list[CatalogueError],
        line: int,
        prefix: str = "",
        file: str | None = None,
    ) -> None:
        self.obj = obj
        self.errors = errors
        self.line = line
        self.prefix = prefix
        self.file = file
        self.failed = False

    def name(self, key: str) -> str:
        """The field's full name for an error message."""
        return f"{self.prefix}{key}"

    def error(self, key: str, message: str) -> None:
        """Record a problem with a field."""
        self.failed = True
        self.errors.append(CatalogueError(self.line, self.name(key), message, self.file))

    def only(self, allowed: set[str]) -> None:
        """Refuse fields the format does not know (typos would otherwise be ignored)."""
        for key in self.obj:
            if key not in allowed:
                self.error(key, "Unbekanntes Feld.")

    def _get(self, key: str, nullable: bool) -> Any:
        value = self.obj.get(key, _MISSING)
        if value is _MISSING and not nullable:
            self.error(key, "Pflichtfeld fehlt.")
            return _MISSING
        if value is None and not nullable:
            self.error(key, "Darf nicht leer (null) sein.")
            return _MISSING
        return None if value is _MISSING else value

    def text(
        self, key: str, max_len: int, *, nullable: bool = False, allow_empty: bool = False
    ) -> Any:
        """A string field; stripped; empty only where allowed."""
        value = self._get(key, nullable)
        if value is None or value is _MISSING:
            return value
        if not isinstance(value, str):
            self.error(key, "Muss ein Text sein.")
            return _MISSING
        value = value.strip()
        if not value and not allow_empty:
            self.error(key, "Darf nicht leer sein.")
            return _MISSING
        if len(value) > max_len:
            self.error(key, f"Höchstens {max_len} Zeichen erlaubt (sind {len(value)}).")
            return _MISSING
        return value

    def slug(self, key: str, max_len: int) -> Any:
        """A natural key: lowercase letters, digits and single dashes."""
        value = self.text(key, max_len)
        if isinstance(value, str) and not SLUG_RE.match(value):
            self.error(key, f"„{value}“ ist kein gültiger Schlüssel (a-z, 0-9, Bindestriche).")
            return _MISSING
        return value

    def integer(
        self, key: str, *, minimum: int, maximum: int | None = None, nullable: bool = False
    ) -> Any:
        """A whole number within bounds."""
        value = self._get(key, nullable)
        if value is None or value is _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, "Muss eine ganze Zahl sein.")
            return _MISSING
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"{minimum} bis {maximum}" if maximum is not None else f"mindestens {minimum}"
            self.error(key, f"Muss {bounds} sein (ist {value}).")
            return _MISSING
        return value

    def decimal(
        self, key: str, places: int, low: Decimal, high: Decimal, *, nullable: bool = False
    ) -> Any:
        """A number within bounds, as a Decimal with at most the given decimal places."""
        value = self._get(key, nullable)
        if value is None or value is _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(key, "Muss eine Zahl sein.")
            return _MISSING
        try:
            number = Decimal(str(value))
            rounded = number.quantize(Decimal(1).scaleb(-places))
        except InvalidOperation:
            self.error(key, "Muss eine endliche Zahl sein.")
            return _MISSING
        if rounded != number:
            self.error(key, f"Höchstens {places} Nachkommastellen erlaubt.")
            return _MISSING
        if not low <= rounded <= high:
            self.error(key, f"Muss zwischen {low} und {high} liegen (ist {value}).")
            return _MISSING
        return rounded

    def boolean(self, key: str) -> Any:
        """true or false."""
        value = self._get(key, False)
        if value is _MISSING:
            return value
        if not isinstance(value, bool):
            self.error(key, "Muss true oder false sein.")
            return _MISSING
        return value

    def day(self, key: str) -> Any:
        """A date as YYYY-MM-DD."""
        value = self.text(key, 10)
        if not isinstance(value, str):
            return value
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise ValueError(value)
            return date.fromisoformat(value)
        except ValueError:
            self.error(key, f"„{value}“ ist kein Datum im Format JJJJ-MM-TT.")
            return _MISSING

    def choice(self, key: str, options: tuple[str, ...]) -> Any:
        """One of a fixed set of words."""
        value = self.text(key, 40)
        if isinstance(value, str) and value not in options:
            self.error(key, f"„{value}“ ist nicht erlaubt; erlaubt: {', '.join(options)}.")
            return _MISSING
        return value

    def obj_list(self, key: str) -> list[dict[str, Any]] | None:
        """A non-empty list of JSON objects."""
        value = self._get(key, False)
        if value is _MISSING:
            return None
        if not isinstance(value, list) or not value:
            self.error(key, "Muss eine nicht leere Liste sein.")
            return None
        if not all(isinstance(item, dict) for item in value):
            self.error(key, "Jeder Eintrag der Liste muss ein Objekt sein.")
            return None
        return value

    def sub(self, obj: dict[str, Any], prefix: str) -> _Fields:
        """Fields of a nested object; its errors count for this object too."""
        return _Fields(obj, self.errors, self.line, self.name(prefix), self.file)


# ---- parsing the catalogue ------------------------------------------------------------------


def _parse_edition(f: _Fields) -> EditionRow | None:
    f.only({"kind", "number", "name", "valid_from", "valid_until"})
    number = f.integer("number", minimum=1)
    name = f.text("name", 120)
    valid_from = f.day("valid_from")
    valid_until = f.day("valid_until")
    if isinstance(valid_from, date) and isinstance(valid_until, date) and valid_until < valid_from:
        f.error("valid_until", "Das Ende liegt vor dem Beginn der Gültigkeit.")
    if f.failed:
        return None
    return EditionRow(f.line, number, name, valid_from, valid_until)


def _parse_category(f: _Fields) -> CategoryRow | None:
    f.only({"kind", "slug", "name_de", "name_en", "position"})
    slug = f.slug("slug", 40)
    name_de = f.text("name_de", 80)
    name_en = f.text("name_en", 80)
    position = f.integer("position", minimum=0)
    if f.failed:
        return None
    return CategoryRow(f.line, slug, name_de, name_en, position)


def _parse_venue(f: _Fields) -> VenueRow | None:
    f.only({"key", "name", "street", "postal_code", "town", "lat", "lon", "accessibility"})
    key = f.slug("key", 60)
    name = f.text("name", 200)
    street = f.text("street", 200, nullable=True)
    postal_code = f.text("postal_code", 5, nullable=True)
    if isinstance(postal_code, str) and not POSTAL_CODE_RE.match(postal_code):
        f.error("postal_code", f"„{postal_code}“ ist keine fünfstellige Postleitzahl.")
    town = f.text("town", 120)
    lat = f.decimal("lat", 6, Decimal(-90), Decimal(90), nullable=True)
    lon = f.decimal("lon", 6, Decimal(-180), Decimal(180), nullable=True)
    if (lat is None) != (lon is None) and _MISSING not in (lat, lon):
        f.error("lat", "Breite und Länge gibt es nur zusammen (beide oder keine).")
    accessibility = f.text("accessibility", 2000, nullable=True)
    if f.failed:
        return None
    return VenueRow(key, name, street, postal_code, town, lat, lon, accessibility)


def _parse_provider(f: _Fields) -> ProviderRow | None:
    f.only(
        {"kind", "slug", "name", "description", "contact_name", "email", "phone", "website"}
        | {"sample", "venues"}
    )
    slug = f.slug("slug", 80)
    name = f.text("name", 200)
    description = f.text("description", 2000, allow_empty=True)
    contact_name = f.text("contact_name", 200, nullable=True)
    email = f.text("email", 254, nullable=True)
    if isinstance(email, str) and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        f.error("email", f"„{email}“ ist keine E-Mail-Adresse.")
    phone = f.text("phone", 60, nullable=True)
    website = f.text("website", 300, nullable=True)
    if isinstance(website, str) and not re.match(r"^https?://[^\s/]+", website):
        f.error("website", "Muss mit http:// oder https:// beginnen.")
    is_sample = f.boolean("sample")
    venues: list[VenueRow] = []
    items = f.obj_list("venues")
    seen: set[str] = set()
    for position, item in enumerate(items or [], start=1):
        venue = _parse_venue(f.sub(item, f"venues[{position}]."))
        if venue is None:
            f.failed = True
            continue
        if venue.key in seen:
            f.error(f"venues[{position}].key", f"Standort „{venue.key}“ ist doppelt.")
        seen.add(venue.key)
        venues.append(venue)
    if f.failed:
        return None
    return ProviderRow(
        f.line, slug, name, description, contact_name, email, phone, website, is_sample, venues
    )


def _parse_discount(f: _Fields) -> tuple[str, Decimal | None] | None:
    kind = f.choice("kind", DISCOUNT_KINDS)
    if kind is _MISSING:
        return None
    value: Any
    if kind == "percent":
        value = f.decimal("value", 2, Decimal(1), Decimal(100))
    elif kind in ("amount", "family_price"):
        value = f.decimal("value", 2, CENT, MAX_DISCOUNT)
    elif kind == "children_free":
        value = f.integer("value", minimum=1, maximum=20, nullable=True)
        value = Decimal(value) if isinstance(value, int) else value
    else:
        value = f.obj.get("value")
        if value is not None:
            f.error("value", "Bei „other“ muss der Wert null sein; der Vorteil steht im Titel.")
            value = _MISSING
    if value is _MISSING:
        return None
    return kind, value


def _parse_offer(f: _Fields) -> OfferRow | None:
    f.only(
        {"kind", "key", "provider", "venues", "category", "title", "description", "discount"}
        | {"conditions", "min_age", "max_age", "limit"}
    )
    key = f.slug("key", 80)
    provider = f.slug("provider", 80)
    venues = f.obj.get("venues", _MISSING)
    if venues is _MISSING:
        f.error("venues", "Pflichtfeld fehlt.")
    elif (
        not isinstance(venues, list)
        or not venues
        or not all(isinstance(v, str) and SLUG_RE.match(v) for v in venues)
    ):
        f.error("venues", "Muss eine nicht leere Liste von Standort-Schlüsseln sein.")
    elif len(set(venues)) != len(venues):
        f.error("venues", "Ein Standort ist doppelt genannt.")
    category = f.slug("category", 40)
    title = f.text("title", 200)
    description = f.text("description", 2000, allow_empty=True)
    discount: tuple[str, Decimal | None] | None = None
    raw_discount = f.obj.get("discount", _MISSING)
    if raw_discount is _MISSING:
        f.error("discount", "Pflichtfeld fehlt.")
    elif not isinstance(raw_discount, dict):
        f.error("discount", "Muss ein Objekt mit kind und value sein.")
    else:
        sub = f.sub(raw_discount, "discount.")
        sub.only({"kind", "value"})
        discount = _parse_discount(sub)
        if sub.failed:
            f.failed = True
    conditions = f.text("conditions", 2000, nullable=True)
    min_age = f.integer("min_age", minimum=0, maximum=17, nullable=True)
    max_age = f.integer("max_age", minimum=0, maximum=17, nullable=True)
    if isinstance(min_age, int) and isinstance(max_age, int) and min_age > max_age:
        f.error("max_age", f"Das Höchstalter ({max_age}) liegt unter dem Mindestalter ({min_age}).")
    limit = f.choice("limit", REDEMPTION_LIMITS)
    if f.failed or discount is None:
        return None
    return OfferRow(
        f.line,
        key,
        provider,
        venues,
        category,
        title,
        description,
        discount[0],
        discount[1],
        conditions,
        min_age,
        max_age,
        limit,
    )


def read_catalogue(path: Path, errors: list[CatalogueError]) -> Catalogue | None:
    """Parse and check every line of a catalogue file; problems go into errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(CatalogueError(0, "-", f"Datei nicht lesbar: {exc}"))
        return None
    editions: list[EditionRow] = []
    categories: list[CategoryRow] = []
    providers: list[ProviderRow] = []
    offers: list[OfferRow] = []
    declared: dict[str, list[tuple[int, Any]]] = {kind: [] for kind in KINDS}
    start = len(errors)
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            errors.append(CatalogueError(number, "json", "Leere Zeile; jede Zeile ist ein Objekt."))
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(
                CatalogueError(
                    number, "json", f"Kein gültiges JSON: {exc.msg} (Spalte {exc.colno})."
                )
            )
            continue
        if not isinstance(obj, dict):
            errors.append(CatalogueError(number, "json", "Jede Zeile muss ein JSON-Objekt sein."))
            continue
        f = _Fields(obj, errors, number)
        kind = f.choice("kind", KINDS)
        if kind in declared:
            declared[kind].append((number, obj.get("slug")))
        if kind == "edition":
            edition = _parse_edition(f)
            if edition is not None:
                editions.append(edition)
        elif kind == "category":
            category = _parse_category(f)
            if category is not None:
                categories.append(category)
        elif kind == "provider":
            provider = _parse_provider(f)
            if provider is not None:
                providers.append(provider)
        elif kind == "offer":
            offer = _parse_offer(f)
            if offer is not None:
                offers.append(offer)
    if not text.strip():
        errors.append(CatalogueError(0, "-", "Die Datei ist leer."))
    _check_references(declared, categories, providers, offers, errors)
    errors[start:] = sorted(
        errors[start:], key=lambda e: e.line
    )  # stable: a line's errors keep their order
    if errors:
        return None
    return Catalogue(editions[0], categories, providers, offers)


def _check_references(
    declared: dict[str, list[tuple[int, Any]]],
    categories: list[CategoryRow],
    providers: list[ProviderRow],
    offers: list[OfferRow],
    errors: list[CatalogueError],
) -> None:
    """One edition; natural keys are unique; every reference names a record of the file."""
    for line, _ in declared["edition"][1:]:
        errors.append(CatalogueError(line, "kind", "Nur eine Ausgabe (edition) je Datei erlaubt."))
    if not declared["edition"]:
        errors.append(CatalogueError(0, "kind", "Die Datei enthält keine Ausgabe (edition)."))

    def unique(rows: list[Any], attr: str, label: str) -> None:
        seen: dict[str, int] = {}
        for row in rows:
            value = getattr(row, attr)
            if value in seen:
                errors.append(
                    CatalogueError(
                        row.line, attr, f"{label} „{value}“ steht schon in Zeile {seen[value]}."
                    )
                )
            else:
                seen[value] = row.line

    unique(categories, "slug", "Kategorie")
    unique(providers, "slug", "Anbieter")
    unique(offers, "key", "Angebot")
    # Lines of a kind that had errors of their own still count as declared: no follow-up errors.
    category_slugs = {slug for _, slug in declared["category"]}
    provider_slugs = {slug for _, slug in declared["provider"]}
    venue_keys = {p.slug: {v.key for v in p.venues} for p in providers}
    for offer in offers:
        if offer.category not in category_slugs:
            errors.append(
                CatalogueError(offer.line, "category", f"Unbekannte Kategorie „{offer.category}“.")
            )
        if offer.provider not in provider_slugs:
            errors.append(
                CatalogueError(offer.line, "provider", f"Unbekannter Anbieter „{offer.provider}“.")
            )
        if offer.provider not in venue_keys:
            continue
        for key in offer.venues:
            if key not in venue_keys[offer.provider]:
                errors.append(
                    CatalogueError(
                        offer.line,
                        "venues",
                        f"Anbieter „{offer.provider}“ hat keinen Standort „{key}“.",
                    )
                )


# ---- parsing the localities -----------------------------------------------------------------


def read_localities(path: Path, errors: list[CatalogueError]) -> Localities | None:
    """Parse and check the localities file; problems go into errors."""
    file = path.name
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        errors.append(CatalogueError(exc.lineno, "json", f"Kein gültiges JSON: {exc.msg}.", file))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(CatalogueError(0, "-", f"Datei nicht lesbar: {exc}", file))
        return None
    if not isinstance(doc, dict):
        errors.append(CatalogueError(0, "json", "Muss ein JSON-Objekt sein.", file))
        return None
    start = len(errors)
    top = _Fields(doc, errors, 0, file=file)
    top.only({"district", "postal_codes", "outside_localities", "municipalities"})
    district = doc.get("district")
    if not isinstance(district, dict):
        top.error("district", "Muss ein Objekt mit name, key und seat sein.")
    else:
        d = top.sub(district, "district.")
        d.only({"name", "key", "seat"})
        d.text("name", 120)
        d.text("key", 12)
        d.text("seat", 200)

    postal_codes: list[dict[str, Any]] = []
    for i, item in enumerate(top.obj_list("postal_codes") or [], start=1):
        f = top.sub(item, f"postal_codes[{i}].")
        f.only({"code", "shared", "note_de", "note_en"})
        code = f.text("code", 5)
        if isinstance(code, str) and not POSTAL_CODE_RE.match(code):
            f.error("code", f"„{code}“ ist keine fünfstellige Postleitzahl.")
        shared = f.boolean("shared")
        note_de = f.text("note_de", 2000, nullable=True)
        note_en = f.text("note_en", 2000, nullable=True)
        if shared is True and note_de is None:
            f.error("note_de", "Eine geteilte Postleitzahl braucht einen Hinweis.")
        if not f.failed:
            if any(p["code"] == code for p in postal_codes):
                f.error("code", f"Postleitzahl {code} ist doppelt.")
            postal_codes.append(
                {"code": code, "shared": shared, "note_de": note_de, "note_en": note_en}
            )
    known_codes = {p["code"] for p in postal_codes}

    outside: list[dict[str, str]] = []
    for i, item in enumerate(top.obj_list("outside_localities") or [], start=1):
        f = top.sub(item, f"outside_localities[{i}].")
        f.only({"postal_code", "name", "district"})
        row = {
            "postal_code": f.text("postal_code", 5),
            "name": f.text("name", 120),
            "district": f.text("district", 120),
        }
        if not f.failed:
            if (row["postal_code"], row["name"]) in {
                (o["postal_code"], o["name"]) for o in outside
            }:
                f.error("name", f"„{row['name']}“ ({row['postal_code']}) ist doppelt.")
            outside.append(row)

    municipalities: list[tuple[str, list[tuple[str, str]]]] = []
    seen_places: dict[tuple[str, str], str] = {}
    for i, item in enumerate(top.obj_list("municipalities") or [], start=1):
        f = top.sub(item, f"municipalities[{i}].")
        f.only({"name", "localities"})
        name = f.text("name", 120)
        if isinstance(name, str) and any(m[0] == name for m in municipalities):
            f.error("name", f"Gemeinde „{name}“ ist doppelt.")
        places: list[tuple[str, str]] = []
        for j, loc in enumerate(f.obj_list("localities") or [], start=1):
            g = f.sub(loc, f"localities[{j}].")
            g.only({"name", "postal_code"})
            place = g.text("name", 120)
            code = g.text("postal_code", 5)
            if isinstance(code, str) and code not in known_codes:
                g.error("postal_code", f"Postleitzahl {code} fehlt in postal_codes.")
            if g.failed:
                continue
            if (code, place) in seen_places:
                g.error("name", f"„{place}“ ({code}) steht schon bei {seen_places[(code, place)]}.")
                continue
            seen_places[(code, place)] = str(name)
            places.append((place, code))
        if isinstance(name, str):
            municipalities.append((name, places))
    if len(errors) > start:
        return None
    return Localities(postal_codes, outside, municipalities)


# ---- writing --------------------------------------------------------------------------------


def _apply(obj: Any, values: dict[str, Any]) -> bool:
    """Set the attributes that differ; whether anything changed."""
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def _upsert(
    report: LoadReport, kind: str, existing: Any, make: type[Any], values: dict[str, Any]
) -> Any:
    """Add a row or update the existing one, counting either in the report."""
    if existing is None:
        obj = make(**values)
        db.session.add(obj)
        report.added[kind] += 1
        return obj
    if _apply(existing, values):
        report.updated[kind] += 1
    return existing


def _write_localities(data: Localities, report: LoadReport) -> None:
    """Upsert postal codes, municipalities, localities and outside localities."""
    codes = {p.code: p for p in db.session.scalars(select(PostalCode))}
    for row in data.postal_codes:
        obj = _upsert(report, "postal_code", codes.get(row["code"]), PostalCode, row)
        codes[row["code"]] = obj
    db.session.flush()

    municipalities = {m.name: m for m in db.session.scalars(select(Municipality))}
    localities = {(lo.postal_code, lo.name): lo for lo in db.session.scalars(select(Locality))}
    for name, places in data.municipalities:
        municipality = _upsert(
            report, "municipality", municipalities.get(name), Municipality, {"name": name}
        )
        municipalities[name] = municipality
        for place, code in places:
            values = {"name": place, "postal_code": code, "municipality": municipality}
            _upsert(report, "locality", localities.get((code, place)), Locality, values)

    outside = {(o.postal_code, o.name): o for o in db.session.scalars(select(OutsideLocality))}
    for row in data.outside:
        existing = outside.get((row["postal_code"], row["name"]))
        _upsert(report, "outside_locality", existing, OutsideLocality, row)
    db.session.flush()


def _write_catalogue(data: Catalogue, report: LoadReport) -> None:
    """Upsert the edition, categories, providers with venues, and offers."""
    e = data.edition
    edition = _upsert(
        report,
        "edition",
        db.session.scalars(select(Edition).where(Edition.number == e.number)).one_or_none(),
        Edition,
        {
            "number": e.number,
            "name": e.name,
            "valid_from": e.valid_from,
            "valid_until": e.valid_until,
        },
    )

    categories = {c.slug: c for c in db.session.scalars(select(Category))}
    for c in data.categories:
        values = {
            "slug": c.slug,
            "name_de": c.name_de,
            "name_en": c.name_en,
            "position": c.position,
        }
        categories[c.slug] = _upsert(report, "category", categories.get(c.slug), Category, values)

    providers = {p.slug: p for p in db.session.scalars(select(Provider))}
    venues: dict[tuple[str, str], Venue] = {}
    for p in data.providers:
        values = {
            "slug": p.slug,
            "name": p.name,
            "description": p.description,
            "contact_name": p.contact_name,
            "email": p.email,
            "phone": p.phone,
            "website": p.website,
            "is_sample": p.is_sample,
        }
        provider = _upsert(report, "provider", providers.get(p.slug), Provider, values)
        providers[p.slug] = provider
        current = {v.key: v for v in provider.venues}
        for v in p.venues:
            venue_values = {
                "key": v.key,
                "name": v.name,
                "street": v.street,
                "postal_code": v.postal_code,
                "town": v.town,
                "latitude": v.latitude,
                "longitude": v.longitude,
                "accessibility": v.accessibility,
            }
            venue = current.get(v.key)
            if venue is None:
                venue = Venue(**venue_values)
                provider.venues.append(venue)
                report.added["venue"] += 1
            elif _apply(venue, venue_values):
                report.updated["venue"] += 1
            venues[(p.slug, v.key)] = venue
    db.session.flush()

    offers = {
        o.key: o for o in db.session.scalars(select(Offer).where(Offer.edition_id == edition.id))
    }
    for o in data.offers:
        offer_values = {
            "key": o.key,
            "edition_id": edition.id,
            "provider_id": providers[o.provider].id,
            "category_id": categories[o.category].id,
            "title": o.title,
            "description": o.description,
            "discount_kind": o.discount_kind,
            "discount_value": o.discount_value,
            "conditions": o.conditions,
            "min_age": o.min_age,
            "max_age": o.max_age,
            "redemption_limit": o.redemption_limit,
        }
        offer_venues = [venues[(o.provider, key)] for key in o.venues]
        offer = offers.get(o.key)
        if offer is None:
            db.session.add(Offer(**offer_values, venues=offer_venues))
            report.added["offer"] += 1
            continue
        changed = _apply(offer, offer_values)
        if {v.id for v in offer.venues} != {v.id for v in offer_venues}:
            offer.venues = offer_venues
            changed = True
        if changed:
            report.updated["offer"] += 1
    db.session.flush()


def load_localities(path: Path | None = None) -> LoadReport:
    """Check the localities file completely, then upsert it alone (flushes, never commits)."""
    errors: list[CatalogueError] = []
    localities = read_localities(path or LOCALITIES_FILE, errors)
    if errors or localities is None:
        raise CatalogueFileError(errors)
    report = LoadReport()
    _write_localities(localities, report)
    return report


def load_catalogue(path: Path | None = None, localities_path: Path | None = None) -> LoadReport:
    """Check both data files completely, then upsert them by natural keys (flushes, never commits)."""
    errors: list[CatalogueError] = []
    catalogue = read_catalogue(path or CATALOGUE_FILE, errors)
    localities = read_localities(localities_path or LOCALITIES_FILE, errors)
    if errors or catalogue is None or localities is None:
        raise CatalogueFileError(errors)
    report = LoadReport()
    _write_localities(localities, report)
    _write_catalogue(catalogue, report)
    return report
