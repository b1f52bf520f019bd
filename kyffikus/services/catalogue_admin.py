"""Staff changes to the catalogue: providers, venues, offers, categories, editions and localities.

Every write is checked completely first (``validate_*`` return the problems per field, so the CSV
import can reuse them); a refused change raises CatalogueInvalid with all problems and writes
nothing. Every change is audited with old and new values. Functions flush, never commit.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from flask_babel import gettext as _
from sqlalchemy import exists, func, select

from kyffikus.extensions import db
from kyffikus.models.catalogue import (
    DISCOUNT_KINDS,
    REDEMPTION_LIMITS,
    Category,
    Edition,
    Locality,
    Municipality,
    Offer,
    PostalCode,
    Provider,
    Venue,
)
from kyffikus.models.passes import Redemption
from kyffikus.models.people import User
from kyffikus.services import Conflict, DomainError
from kyffikus.services.audit import changes, record

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
POSTAL_CODE_RE = re.compile(r"^\d{5}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_MONEY = Decimal("999999.99")  # Numeric(8, 2)
MAX_AGE = 17
_TRANSLIT = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}
)

Errors = dict[str, list[str]]

PROVIDER_FIELDS = (
    "name",
    "slug",
    "description",
    "contact_name",
    "email",
    "phone",
    "website",
    "published",
    "is_sample",
)
VENUE_FIELDS = (
    "key",
    "name",
    "street",
    "postal_code",
    "town",
    "latitude",
    "longitude",
    "accessibility",
)
# An offer's terms: what families read and what limits its use (the CSV columns of the same names).
OFFER_TERMS = (
    "description",
    "discount_kind",
    "discount_value",
    "conditions",
    "min_age",
    "max_age",
    "redemption_limit",
    "published",
)
OFFER_FIELDS = ("key", "title", "edition_id", "category_id", *OFFER_TERMS)
EDITION_FIELDS = ("number", "name", "valid_from", "valid_until")


class CatalogueInvalid(DomainError):
    """A catalogue change was refused; ``errors`` maps each field to its problems."""

    code = "catalogue_invalid"

    def __init__(self, errors: Errors) -> None:
        super().__init__(_("Bitte prüfen Sie Ihre Angaben; es wurde nichts gespeichert."))
        self.errors = errors


# ---- small helpers ----------------------------------------------------------------------------


def slugify(text: str, max_len: int = 80) -> str:
    """A URL key from a name: Umlaute transliterated (ä -> ae, ß -> ss), a-z, 0-9 and dashes."""
    plain = unicodedata.normalize("NFKD", text.translate(_TRANSLIT))
    ascii_text = plain.encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    return slug[:max_len].rstrip("-")


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """Strip text; empty optional text becomes None."""
    cleaned: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, str):
            value = value.strip()
        cleaned[key] = value
    return cleaned


def _pick(values: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """The fields that values has, text stripped."""
    return _clean({k: values.get(k) for k in fields if k in values})


def _key_from(values: dict[str, Any], key: str, source: str, max_len: int = 80) -> None:
    """An empty key (slug) is made from another field, a name or title."""
    if not values.get(key) and values.get(source):
        values[key] = slugify(values[source], max_len)


def _optional(values: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if key in values and values[key] == "":
            values[key] = None


def _add(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def _need_text(
    errors: Errors, values: dict[str, Any], field: str, max_len: int, label: str
) -> None:
    value = values.get(field)
    if not value:
        _add(errors, field, _("%(label)s darf nicht leer sein.", label=label))
    elif len(value) > max_len:
        _add(errors, field, _("Höchstens %(max)d Zeichen erlaubt.", max=max_len))


def _max_len(errors: Errors, values: dict[str, Any], field: str, max_len: int) -> None:
    value = values.get(field)
    if isinstance(value, str) and len(value) > max_len:
        _add(errors, field, _("Höchstens %(max)d Zeichen erlaubt.", max=max_len))


def _check_slug(errors: Errors, field: str, value: Any, max_len: int) -> None:
    if not value:
        _add(errors, field, _("Der Schlüssel darf nicht leer sein."))
    elif len(value) > max_len or not SLUG_RE.match(value):
        _add(
            errors,
            field,
            _(
                "„%(value)s“ ist kein gültiger Schlüssel: nur Kleinbuchstaben a–z, Ziffern und einzelne Bindestriche, höchstens %(max)d Zeichen.",
                value=value,
                max=max_len,
            ),
        )


def is_web_address(value: str) -> bool:
    """Whether value is an http(s) address with a host and no spaces."""
    if any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _raise_if(errors: Errors) -> None:
    if errors:
        raise CatalogueInvalid(errors)


def _created(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The audit details of a new object: every field from nothing to its value."""
    return changes(None, values)


def _update(
    obj: Any, values: dict[str, Any], actor: User | None, action: str, **audit: Any
) -> dict[str, Any]:
    """Apply the values and flush; audit old and new values of what changed."""
    diff = changes(obj, values)
    for key, value in values.items():
        setattr(obj, key, value)
    if diff:
        record(actor, action, obj, details=diff, **audit)
    db.session.flush()
    return diff


def _set_published(obj: Any, published: bool, actor: User | None, kind: str) -> bool:
    """Publish or unpublish; audited; whether anything changed."""
    if obj.published == published:
        return False
    record(
        actor,
        f"{kind}.{'publish' if published else 'unpublish'}",
        obj,
        details={"published": {"old": obj.published, "new": published}},
    )
    obj.published = published
    db.session.flush()
    return True


def _unique(
    errors: Errors, field: str, message: str, model: Any, current: Any, *conditions: Any
) -> None:
    """Add message to field when a row other than current meets the conditions (a key in use).

    A field with a problem already is not looked up.
    """
    if field in errors:
        return
    query = select(model.id).where(*conditions)
    if current is not None and current.id is not None:
        query = query.where(model.id != current.id)
    if db.session.scalar(query) is not None:
        _add(errors, field, message)


def _exists(*conditions: Any) -> bool:
    """Whether any row meets the conditions (something still refers to an object)."""
    return bool(db.session.scalar(select(exists().where(*conditions))))


def _create(obj: Any, values: dict[str, Any], by: User | None, action: str, **details: Any) -> Any:
    """Add a new object; audit every value (and the extra details, e.g. its parent)."""
    db.session.add(obj)
    db.session.flush()
    record(by, action, obj, details=details | _created(values))
    return obj


def _delete(obj: Any, by: User | None, action: str, keys: tuple[str, ...]) -> None:
    """Delete an object; the audit keeps the values of keys (what it was called)."""
    record(by, action, obj, details=changes(obj, dict.fromkeys(keys)))
    db.session.delete(obj)
    db.session.flush()


# ---- providers --------------------------------------------------------------------------------


def normalise_provider(values: dict[str, Any]) -> dict[str, Any]:
    """Clean a provider's values; an empty slug is made from the name."""
    v = _pick(values, PROVIDER_FIELDS)
    _optional(v, "contact_name", "email", "phone", "website")
    v["description"] = v.get("description") or ""
    v["published"] = bool(v.get("published"))
    v["is_sample"] = bool(v.get("is_sample"))
    _key_from(v, "slug", "name")
    if v.get("email"):
        v["email"] = v["email"].lower()
    return v


def validate_provider(values: dict[str, Any], current: Provider | None = None) -> Errors:
    """Problems with a provider's (normalised) values."""
    errors: Errors = {}
    _need_text(errors, values, "name", 200, _("Der Name"))
    if values.get("name"):
        _check_slug(errors, "slug", values.get("slug"), 80)
    slug = values.get("slug")
    if slug:
        message = _("Der Schlüssel „%(slug)s“ gehört schon einem anderen Anbieter.", slug=slug)
        _unique(errors, "slug", message, Provider, current, Provider.slug == slug)
    _max_len(errors, values, "description", 5000)
    _max_len(errors, values, "contact_name", 200)
    _max_len(errors, values, "phone", 60)
    email = values.get("email")
    if email and (len(email) > 254 or not EMAIL_RE.match(email)):
        _add(errors, "email", _("„%(value)s“ ist keine gültige E-Mail-Adresse.", value=email))
    website = values.get("website")
    if website and (len(website) > 300 or not is_web_address(website)):
        _add(
            errors,
            "website",
            _("Die Webseite muss eine Adresse sein, die mit http:// oder https:// beginnt."),
        )
    return errors


def unique_provider_slug(name: str) -> str:
    """A free provider slug from a name (adds -2, -3, ... when taken)."""
    base = slugify(name) or "anbieter"
    slug, n = base, 1
    while db.session.scalar(select(Provider.id).where(Provider.slug == slug)) is not None:
        n += 1
        slug = f"{base[:75]}-{n}"
    return slug


def create_provider(values: dict[str, Any], by: User | None) -> Provider:
    """Add a provider after checking every field."""
    v = normalise_provider(values)
    if not values.get("slug") and v.get("name"):
        v["slug"] = unique_provider_slug(v["name"])
    _raise_if(validate_provider(v))
    return _create(Provider(**v), v, by, "provider.create")


def update_provider(provider: Provider, values: dict[str, Any], by: User | None) -> dict[str, Any]:
    """Change a provider; returns the audited differences."""
    v = normalise_provider(values)
    if not values.get("slug"):
        v["slug"] = provider.slug
    _raise_if(validate_provider(v, provider))
    return _update(provider, v, by, "provider.update")


def set_provider_published(provider: Provider, published: bool, by: User | None) -> bool:
    """Publish or unpublish a provider (its offers disappear from the directory with it)."""
    return _set_published(provider, published, by, "provider")


def delete_provider(provider: Provider, by: User | None) -> None:
    """Delete a provider that has no offers, accounts or redemptions yet."""
    if (
        _exists(Offer.provider_id == provider.id)
        or _exists(User.provider_id == provider.id)
        or _exists(Redemption.provider_id == provider.id)
    ):
        raise Conflict(
            _(
                "Der Anbieter hat schon Angebote, Konten oder Einlösungen und kann nicht gelöscht werden. Nehmen Sie ihn stattdessen aus dem Verzeichnis (nicht veröffentlichen)."
            )
        )
    _delete(provider, by, "provider.delete", ("name", "slug"))


# ---- venues -----------------------------------------------------------------------------------


def normalise_venue(values: dict[str, Any]) -> dict[str, Any]:
    """Clean a venue's values; an empty key is made from the name."""
    v = _pick(values, VENUE_FIELDS)
    _optional(v, "street", "postal_code", "accessibility", "latitude", "longitude")
    _key_from(v, "key", "name", 60)
    return v


def validate_venue(
    provider: Provider | None, values: dict[str, Any], current: Venue | None = None
) -> Errors:
    """Problems with a venue's (normalised) values; keys are unique per provider."""
    errors: Errors = {}
    _need_text(errors, values, "name", 200, _("Der Name"))
    if values.get("name") or values.get("key"):
        _check_slug(errors, "key", values.get("key"), 60)
    key = values.get("key")
    if provider is not None and provider.id is not None and key:
        message = _(
            "Dieser Anbieter hat schon einen Standort mit dem Schlüssel „%(key)s“.", key=key
        )
        same = (Venue.provider_id == provider.id, Venue.key == key)
        _unique(errors, "key", message, Venue, current, *same)
    _need_text(errors, values, "town", 120, _("Der Ort"))
    _max_len(errors, values, "street", 200)
    _max_len(errors, values, "accessibility", 5000)
    code = values.get("postal_code")
    if code and not POSTAL_CODE_RE.match(code):
        _add(errors, "postal_code", _("Die Postleitzahl hat genau fünf Ziffern."))
    lat, lon = values.get("latitude"), values.get("longitude")
    if (lat is None) != (lon is None):
        _add(errors, "latitude", _("Breite und Länge gibt es nur zusammen (beide oder keine)."))
    if lat is not None and not Decimal(-90) <= lat <= Decimal(90):
        _add(errors, "latitude", _("Die Breite liegt zwischen -90 und 90."))
    if lon is not None and not Decimal(-180) <= lon <= Decimal(180):
        _add(errors, "longitude", _("Die Länge liegt zwischen -180 und 180."))
    return errors


def create_venue(provider: Provider, values: dict[str, Any], by: User | None) -> Venue:
    """Add a venue to a provider."""
    v = normalise_venue(values)
    _raise_if(validate_venue(provider, v))
    return _create(
        Venue(provider=provider, **v),
        v,
        by,
        "venue.create",
        provider_id={"old": None, "new": provider.id},
    )


def update_venue(venue: Venue, values: dict[str, Any], by: User | None) -> dict[str, Any]:
    """Change a venue."""
    v = normalise_venue(values)
    _raise_if(validate_venue(venue.provider, v, venue))
    return _update(venue, v, by, "venue.update")


def delete_venue(venue: Venue, by: User | None) -> None:
    """Delete a venue no offer names and no redemption used."""
    if venue.offers or _exists(Redemption.venue_id == venue.id):
        raise Conflict(
            _(
                "Der Standort gehört noch zu Angeboten oder wurde schon bei Einlösungen genutzt und kann nicht gelöscht werden."
            )
        )
    _delete(venue, by, "venue.delete", ("key", "name", "town"))


# ---- offers -----------------------------------------------------------------------------------


def normalise_offer(values: dict[str, Any]) -> dict[str, Any]:
    """Clean an offer's values (venues as a list of venue ids); an empty key comes from the title."""
    v = _pick(values, (*OFFER_FIELDS, "venues"))
    _optional(v, "conditions")
    v["description"] = v.get("description") or ""
    v["published"] = bool(v.get("published"))
    v["redemption_limit"] = v.get("redemption_limit") or "unlimited"
    _key_from(v, "key", "title")
    if v.get("discount_value") is not None and not isinstance(v["discount_value"], Decimal):
        v["discount_value"] = Decimal(str(v["discount_value"]))
    v["venues"] = list(v.get("venues") or [])
    return v


def validate_offer(
    provider: Provider | None, values: dict[str, Any], current: Offer | None = None
) -> Errors:
    """Problems with an offer's (normalised) values: discount rules, ages, venues, unique key."""
    errors: Errors = {}
    _need_text(errors, values, "title", 200, _("Der Titel"))
    if values.get("title") or values.get("key"):
        _check_slug(errors, "key", values.get("key"), 80)
    _max_len(errors, values, "description", 5000)
    _max_len(errors, values, "conditions", 5000)

    edition_id = values.get("edition_id")
    if edition_id is None or db.session.get(Edition, edition_id) is None:
        _add(errors, "edition_id", _("Bitte wählen Sie eine Ausgabe."))
    elif key := values.get("key"):
        message = _(
            "In dieser Ausgabe gibt es schon ein Angebot mit dem Schlüssel „%(key)s“.", key=key
        )
        same = (Offer.edition_id == edition_id, Offer.key == key)
        _unique(errors, "key", message, Offer, current, *same)
    category_id = values.get("category_id")
    if category_id is None or db.session.get(Category, category_id) is None:
        _add(errors, "category_id", _("Bitte wählen Sie eine Kategorie."))

    _check_discount(errors, values.get("discount_kind"), values.get("discount_value"))

    if values.get("redemption_limit") not in REDEMPTION_LIMITS:
        _add(
            errors,
            "redemption_limit",
            _("Bitte wählen Sie, wie oft das Angebot genutzt werden kann."),
        )

    min_age, max_age = values.get("min_age"), values.get("max_age")
    for field, age in (("min_age", min_age), ("max_age", max_age)):
        if age is not None and not 0 <= age <= MAX_AGE:
            _add(errors, field, _("Das Alter liegt zwischen 0 und %(max)d Jahren.", max=MAX_AGE))
    if (
        min_age is not None
        and max_age is not None
        and "min_age" not in errors
        and "max_age" not in errors
        and min_age > max_age
    ):
        _add(
            errors,
            "max_age",
            _(
                "Das Höchstalter (%(max)d) liegt unter dem Mindestalter (%(min)d).",
                max=max_age,
                min=min_age,
            ),
        )

    venue_ids = values.get("venues") or []
    if not venue_ids:
        _add(errors, "venues", _("Bitte wählen Sie mindestens einen Standort."))
    for venue_id in venue_ids:
        venue = db.session.get(Venue, venue_id)
        if venue is None:
            _add(errors, "venues", _("Diesen Standort gibt es nicht."))
        elif provider is not None and venue.provider_id != provider.id:
            _add(
                errors,
                "venues",
                _(
                    "Der Standort „%(name)s“ gehört nicht zu %(provider)s.",
                    name=venue.name,
                    provider=provider.name,
                ),
            )
    return errors


def _check_discount(errors: Errors, kind: Any, value: Decimal | None) -> None:
    """The discount's value fits its kind."""
    if kind not in DISCOUNT_KINDS:
        _add(errors, "discount_kind", _("Bitte wählen Sie die Art des Vorteils."))
        return
    if kind == "percent":
        if value is None:
            _add(errors, "discount_value", _("Bitte geben Sie den Prozentsatz an (1 bis 100)."))
        elif not Decimal(1) <= value <= Decimal(100):
            _add(errors, "discount_value", _("Ein Prozentsatz liegt zwischen 1 und 100."))
        elif value != value.quantize(Decimal("0.01")):
            _add(errors, "discount_value", _("Höchstens zwei Nachkommastellen."))
    elif kind in ("amount", "family_price"):
        if value is None:
            _add(errors, "discount_value", _("Bitte geben Sie den Betrag in Euro an."))
        elif not Decimal(0) < value:
            _add(errors, "discount_value", _("Der Betrag muss größer als 0 sein."))
        elif value > MAX_MONEY:
            _add(errors, "discount_value", _("Der Betrag darf höchstens 999.999,99 € sein."))
        elif value != value.quantize(Decimal("0.01")):
            _add(errors, "discount_value", _("Höchstens zwei Nachkommastellen (Cent)."))
    elif kind == "children_free":
        if value is not None and (value != value.to_integral_value() or not 1 <= value <= 99):
            _add(
                errors,
                "discount_value",
                _(
                    "Bei „Kinder frei“ ist der Wert leer (alle Kinder) oder eine ganze Zahl ab 1 (so viele Kinder frei)."
                ),
            )
    elif value is not None:
        _add(
            errors,
            "discount_value",
            _("Bei „anderer Vorteil“ bleibt der Wert leer; beschreiben Sie den Vorteil im Titel."),
        )


def _venues_by_id(ids: Iterable[int]) -> list[Venue]:
    ids = list(ids)
    if not ids:
        return []
    return list(db.session.scalars(select(Venue).where(Venue.id.in_(ids)).order_by(Venue.id)))


def _venue_keys(venues: Iterable[Venue]) -> list[str]:
    return sorted(v.key for v in venues)


def create_offer(provider: Provider, values: dict[str, Any], by: User | None) -> Offer:
    """Add an offer of a provider after checking every rule."""
    v = normalise_offer(values)
    _raise_if(validate_offer(provider, v))
    venues = _venues_by_id(v.pop("venues"))
    offer = Offer(provider=provider, venues=venues, **v)
    db.session.add(offer)
    db.session.flush()
    details = {"provider_id": {"old": None, "new": provider.id}} | _created(v)
    details["venues"] = {"old": None, "new": _venue_keys(offer.venues)}
    record(by, "offer.create", offer, details=details)
    return offer


def update_offer(offer: Offer, values: dict[str, Any], by: User | None) -> dict[str, Any]:
    """Change an offer (its provider stays)."""
    v = normalise_offer(values)
    _raise_if(validate_offer(offer.provider, v, offer))
    venue_ids = v.pop("venues")
    diff = changes(offer, v)
    new_venues = _venues_by_id(venue_ids)
    old_keys, new_keys = _venue_keys(offer.venues), _venue_keys(new_venues)
    if old_keys != new_keys:
        diff["venues"] = {"old": old_keys, "new": new_keys}
    for key, value in v.items():
        setattr(offer, key, value)
    offer.venues = new_venues
    if diff:
        record(by, "offer.update", offer, details=diff)
    db.session.flush()
    return diff


def set_offer_published(offer: Offer, published: bool, by: User | None) -> bool:
    """Publish or unpublish an offer."""
    return _set_published(offer, published, by, "offer")


def delete_offer(offer: Offer, by: User | None) -> None:
    """Delete an offer that was never redeemed (otherwise unpublish it)."""
    if _exists(Redemption.offer_id == offer.id):
        raise Conflict(
            _(
                "Das Angebot wurde schon eingelöst und kann nicht gelöscht werden. Nehmen Sie es stattdessen aus dem Verzeichnis (nicht veröffentlichen)."
            )
        )
    _delete(offer, by, "offer.delete", ("key", "title", "edition_id"))


# ---- categories -------------------------------------------------------------------------------


def validate_category(values: dict[str, Any], current: Category | None = None) -> Errors:
    """Problems with a category's values."""
    errors: Errors = {}
    _need_text(errors, values, "name_de", 80, _("Der deutsche Name"))
    _need_text(errors, values, "name_en", 80, _("Der englische Name"))
    _check_slug(errors, "slug", values.get("slug"), 40)
    if values.get("slug"):
        message = _("Diesen Schlüssel hat schon eine andere Kategorie.")
        _unique(errors, "slug", message, Category, current, Category.slug == values["slug"])
    position = values.get("position")
    if position is None or position < 0:
        _add(errors, "position", _("Die Position ist eine ganze Zahl ab 0."))
    return errors


def _normalise_category(values: dict[str, Any]) -> dict[str, Any]:
    v = _clean({k: values.get(k) for k in ("slug", "name_de", "name_en", "position")})
    _key_from(v, "slug", "name_de", 40)
    if v.get("position") is None:
        v["position"] = 0
    return v


def create_category(values: dict[str, Any], by: User | None) -> Category:
    """Add a category."""
    v = _normalise_category(values)
    _raise_if(validate_category(v))
    return _create(Category(**v), v, by, "category.create")


def update_category(category: Category, values: dict[str, Any], by: User | None) -> dict[str, Any]:
    """Change a category."""
    v = _normalise_category(values)
    _raise_if(validate_category(v, category))
    return _update(category, v, by, "category.update")


def delete_category(category: Category, by: User | None) -> None:
    """Delete a category no offer uses."""
    if _exists(Offer.category_id == category.id):
        raise Conflict(_("Die Kategorie hat noch Angebote und kann nicht gelöscht werden."))
    _delete(category, by, "category.delete", ("slug", "name_de"))


# ---- editions ---------------------------------------------------------------------------------


def latest_edition() -> Edition | None:
    """The edition with the highest number."""
    return db.session.scalars(select(Edition).order_by(Edition.number.desc()).limit(1)).first()


def current_edition(today: date) -> Edition | None:
    """The edition valid today, else the latest one."""
    edition = db.session.scalars(
        select(Edition)
        .where(Edition.valid_from <= today, Edition.valid_until >= today)
        .order_by(Edition.number.desc())
        .limit(1)
    ).first()
    return edition or latest_edition()


def next_edition_defaults() -> dict[str, Any]:
    """Suggested number and dates of the next edition (two years after the latest, as in 2023/24)."""
    latest = latest_edition()
    if latest is None:
        return {"number": 1}
    start = latest.valid_until + timedelta(days=1)
    try:
        end = start.replace(year=start.year + 2) - timedelta(days=1)
    except ValueError:  # 29 February
        end = start.replace(year=start.year + 2, day=28)
    years = f"{start.year}/{end.year}" if end.year != start.year else str(start.year)
    return {
        "number": latest.number + 1,
        "name": f"Familienpass Kyffikus {years}",
        "valid_from": start,
        "valid_until": end,
    }


def validate_edition(values: dict[str, Any], current: Edition | None = None) -> Errors:
    """Problems with an edition's values: a unique number, a name, dates in order."""
    errors: Errors = {}
    number = values.get("number")
    if number is None or number < 1:
        _add(errors, "number", _("Die Nummer ist eine ganze Zahl ab 1."))
    else:
        message = _("Eine Ausgabe mit der Nummer %(number)d gibt es schon.", number=number)
        _unique(errors, "number", message, Edition, current, Edition.number == number)
    _need_text(errors, values, "name", 120, _("Der Name"))
    valid_from, valid_until = values.get("valid_from"), values.get("valid_until")
    if valid_from is None:
        _add(errors, "valid_from", _("Bitte geben Sie an, ab wann die Ausgabe gilt."))
    if valid_until is None:
        _add(errors, "valid_until", _("Bitte geben Sie an, bis wann die Ausgabe gilt."))
    if valid_from is not None and valid_until is not None and valid_until < valid_from:
        _add(errors, "valid_until", _("Das Ende der Gültigkeit liegt vor ihrem Beginn."))
    return errors


def create_edition(
    values: dict[str, Any], by: User | None, *, copy_offers: bool = True
) -> tuple[Edition, int]:
    """Add an edition; with copy_offers, the previous edition's offers become drafts of it."""
    v = _clean({k: values.get(k) for k in EDITION_FIELDS})
    _raise_if(validate_edition(v))
    edition = _create(Edition(**v), v, by, "edition.create")
    copied = 0
    if copy_offers:
        previous = db.session.scalars(
            select(Edition)
            .where(Edition.number < edition.number)
            .order_by(Edition.number.desc())
            .limit(1)
        ).first()
        if previous is not None:
            copied = len(copy_offers_as_drafts(previous, edition, by))
    return edition, copied


# What a draft copy of an offer keeps (it has its own edition, is unpublished, names the original).
_COPIED_OFFER_FIELDS = ("key", "provider_id", "category_id", "title", *OFFER_TERMS)


def copy_offers_as_drafts(source: Edition, target: Edition, by: User | None) -> list[Offer]:
    """Copy every offer of source into target as an unpublished draft (same key, copied_from set)."""
    taken = set(db.session.scalars(select(Offer.key).where(Offer.edition_id == target.id)))
    originals = db.session.scalars(
        select(Offer).where(Offer.edition_id == source.id).order_by(Offer.id)
    ).all()
    copies: list[Offer] = []
    for original in originals:
        if original.key in taken:
            continue  # already copied or entered by hand: never two offers with one key
        kept = {name: getattr(original, name) for name in _COPIED_OFFER_FIELDS}
        copy = Offer(
            **kept | {"edition_id": target.id, "published": False, "copied_from_id": original.id}
        )
        copy.venues = list(original.venues)
        db.session.add(copy)
        copies.append(copy)
    db.session.flush()
    for copy in copies:
        record(
            by,
            "offer.copy",
            copy,
            details={
                "copied_from": {"old": None, "new": copy.copied_from_id},
                "edition_id": {"old": source.id, "new": target.id},
                "published": {"old": None, "new": False},
            },
        )
    return copies


def update_edition(edition: Edition, values: dict[str, Any], by: User | None) -> dict[str, Any]:
    """Change an edition's number, name or dates (passes already issued keep their dates)."""
    v = _clean({k: values.get(k) for k in EDITION_FIELDS})
    _raise_if(validate_edition(v, edition))
    return _update(edition, v, by, "edition.update")


# ---- municipalities, localities, postal codes -------------------------------------------------


def validate_municipality(values: dict[str, Any], current: Municipality | None = None) -> Errors:
    """Problems with a municipality's values (unique name)."""
    errors: Errors = {}
    _need_text(errors, values, "name", 120, _("Der Name"))
    if name := values.get("name"):
        message = _("Eine Gemeinde mit diesem Namen gibt es schon.")
        same_name = func.lower(Municipality.name) == name.lower()
        _unique(errors, "name", message, Municipality, current, same_name)
    return errors


def save_municipality(
    current: Municipality | None, values: dict[str, Any], by: User | None
) -> Municipality:
    """Add (current None) or change a municipality (name, active)."""
    v = _clean({"name": values.get("name"), "active": bool(values.get("active"))})
    _raise_if(validate_municipality(v, current))
    if current is None:
        return _create(Municipality(**v), v, by, "municipality.create")
    _update(current, v, by, "municipality.update")
    return current


def validate_locality(values: dict[str, Any], current: Locality | None = None) -> Errors:
    """Problems with a locality's values: name, five-digit postal code, municipality, unique."""
    errors: Errors = {}
    _need_text(errors, values, "name", 120, _("Der Name"))
    code = values.get("postal_code")
    if not code or not POSTAL_CODE_RE.match(code):
        _add(errors, "postal_code", _("Die Postleitzahl hat genau fünf Ziffern."))
    municipality_id = values.get("municipality_id")
    if municipality_id is None or db.session.get(Municipality, municipality_id) is None:
        _add(errors, "municipality_id", _("Bitte wählen Sie die Gemeinde."))
    name = values.get("name")
    if name and "postal_code" not in errors:
        message = _("„%(name)s“ mit der Postleitzahl %(code)s gibt es schon.", name=name, code=code)
        same = (Locality.postal_code == code, Locality.name == name)
        _unique(errors, "name", message, Locality, current, *same)
    return errors


def save_locality(current: Locality | None, values: dict[str, Any], by: User | None) -> Locality:
    """Add or change a locality; a new postal code is added to the list of the district's codes."""
    v = _clean({k: values.get(k) for k in ("name", "postal_code", "municipality_id")})
    v["active"] = bool(values.get("active"))
    _raise_if(validate_locality(v, current))
    if db.session.get(PostalCode, v["postal_code"]) is None:
        code = PostalCode(code=v["postal_code"], shared=False)
        db.session.add(code)
        db.session.flush()
        record(
            by,
            "postal_code.create",
            code,
            object_id=code.code,
            details=_created({"code": code.code}),
        )
    if current is None:
        return _create(Locality(**v), v, by, "locality.create")
    _update(current, v, by, "locality.update")
    return current


def update_postal_code(code: PostalCode, values: dict[str, Any], by: User | None) -> dict[str, Any]:
    """Change whether a postal code is shared with another district, and its note to families."""
    v = _clean({k: values.get(k) for k in ("note_de", "note_en")})
    _optional(v, "note_de", "note_en")
    v["shared"] = bool(values.get("shared"))
    errors: Errors = {}
    if v["shared"] and not v.get("note_de"):
        _add(
            errors,
            "note_de",
            _("Eine geteilte Postleitzahl braucht einen Hinweis, welche Orte zum Kreis gehören."),
        )
    _max_len(errors, v, "note_de", 2000)
    _max_len(errors, v, "note_en", 2000)
    _raise_if(errors)
    return _update(code, v, by, "postal_code.update", object_id=code.code)
