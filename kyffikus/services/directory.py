"""The public offer directory: the current edition, filter parsing and the listing queries.

The HTML pages and the JSON API share everything here: one parser for the filter parameters
(bad values raise InvalidParameter, which both turn into a 400), one query per listing. Every
listing runs a fixed number of queries whatever the catalogue's size (eager loading, no N+1).

Listed means: a published offer of a published provider in the current edition.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import chain
from typing import Any

from flask import current_app
from flask_babel import format_currency, format_decimal
from flask_sqlalchemy.pagination import Pagination, SelectPagination
from sqlalchemy import ColumnElement, Select, and_, case, event, false, func, or_, select
from sqlalchemy.orm import Session, SessionTransaction, contains_eager, joinedload, selectinload

from kyffikus.extensions import db
from kyffikus.i18n import gettext, locale_code, ngettext  # looked up once per request
from kyffikus.models.base import berlin_today
from kyffikus.models.catalogue import Category, Edition, Offer, Provider, Venue, offer_venue
from kyffikus.services import DomainError

PAGE_SIZE = 20
MAX_PER_PAGE = 100
MAX_PAGE = 100_000  # beyond any real catalogue; keeps OFFSET inside the database's integer range
MAX_QUERY_LENGTH = 200
MAX_TOWN_LENGTH = 120
MIN_AGE, MAX_AGE = 0, 17  # the pass is for children under 18
SORTS = ("name", "town")
MAX_ID = 2**31 - 1  # larger ids cannot exist; refusing them early avoids integer overflow errors
TRUE_VALUES = frozenset({"1", "true", "on", "yes", "y"})
FALSE_VALUES = frozenset({"0", "false", "off", "no", "n"})
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_DIGITS_RE = re.compile(r"^[0-9]{1,7}$")  # ASCII digits only: int() would accept "٣" or " 3"


class InvalidParameter(DomainError):
    """A filter parameter of the directory has a value that cannot be used (HTTP 400)."""

    code = "invalid_parameter"
    status = 400


@dataclass(frozen=True)
class DirectoryFilters:
    """The directory's filter state, parsed and checked; the same for pages and API."""

    q: str = ""
    category: str | None = None
    town: str | None = None
    age: int | None = None
    free_for_children: bool = False
    sort: str = "name"
    page: int = 1
    per_page: int = PAGE_SIZE

    @property
    def words(self) -> list[str]:
        """The search words, each of which must occur (case-insensitive), without repeats."""
        seen: dict[str, None] = {}
        for word in self.q.split():
            seen.setdefault(word.lower(), None)
        return list(seen)

    @property
    def is_filtered(self) -> bool:
        """Whether any search word or filter narrows the list."""
        return bool(
            self.words
            or self.category
            or self.town
            or self.age is not None
            or self.free_for_children
        )


# ---- parsing ------------------------------------------------------------------------------------


def _has_control_characters(value: str) -> bool:
    """NUL and other control characters have no place in a search; PostgreSQL refuses NUL."""
    return any(unicodedata.category(c) == "Cc" for c in value)


def _integer(value: str, field: str, low: int, high: int, message: str) -> int:
    if not _DIGITS_RE.match(value):
        raise InvalidParameter(message, field=field)
    number = int(value)
    if not low <= number <= high:
        raise InvalidParameter(message, field=field)
    return number


def _value(args: Mapping[str, str], name: str, strict: bool) -> str | None:
    """A parameter's value; None if absent, and also if empty or blank unless strict."""
    value = args.get(name)
    if value is None:
        return None
    if strict:
        return value
    value = value.strip()
    return value or None


def parse_filters(
    args: Mapping[str, str],
    categories: Sequence[Category | CategoryInfo],
    *,
    strict: bool = False,
    allow_per_page: bool = False,
) -> DirectoryFilters:
    """Check the directory's query parameters; raise InvalidParameter naming the first bad one.

    Lenient (the HTML form, which sends every field): empty values count as not given, spaces
    around values and the case of the "free for children" switch are ignored. Strict (the API):
    a parameter that is given must match its documented schema exactly; only q and town may be
    empty. `categories` are the known categories, so an unknown slug is refused. `per_page` is
    read only where allowed (the API).
    """
    raw_q = args.get("q") or ""
    if len(raw_q) > MAX_QUERY_LENGTH:
        raise InvalidParameter(
            gettext(
                "Der Suchbegriff ist zu lang (höchstens %(max)s Zeichen).", max=MAX_QUERY_LENGTH
            ),
            field="q",
        )
    if _has_control_characters(raw_q):
        raise InvalidParameter(gettext("Der Suchbegriff enthält unzulässige Zeichen."), field="q")
    q = " ".join(raw_q.split())

    category = _value(args, "category", strict)
    if category is not None and category not in {c.slug for c in categories}:
        raise InvalidParameter(
            gettext("Diese Kategorie gibt es nicht. Bitte wählen Sie eine aus der Liste."),
            field="category",
        )

    raw_town = args.get("town") or ""
    if len(raw_town) > MAX_TOWN_LENGTH or _has_control_characters(raw_town):
        raise InvalidParameter(gettext("Bitte wählen Sie einen Ort aus der Liste."), field="town")
    town = " ".join(raw_town.split()) or None

    age: int | None = None
    raw_age = _value(args, "age", strict)
    if raw_age is not None:
        age = _integer(
            raw_age,
            "age",
            MIN_AGE,
            MAX_AGE,
            gettext(
                "Das Alter muss eine ganze Zahl von %(min)s bis %(max)s sein.",
                min=MIN_AGE,
                max=MAX_AGE,
            ),
        )

    free_for_children = False
    raw_free = _value(args, "free_for_children", strict)
    if raw_free is not None:
        accepted_true, accepted_false = (
            ({"true"}, {"false"}) if strict else (TRUE_VALUES, FALSE_VALUES)
        )
        value = raw_free if strict else raw_free.lower()
        if value not in accepted_true | accepted_false:
            raise InvalidParameter(
                gettext("„Kinder frei“ kann nur an- oder abgewählt sein (true oder false)."),
                field="free_for_children",
            )
        free_for_children = value in accepted_true

    raw_sort = _value(args, "sort", strict)
    sort = "name" if raw_sort is None else raw_sort
    if sort not in SORTS:
        raise InvalidParameter(
            gettext("Sortieren ist nur nach Name oder Ort möglich."), field="sort"
        )

    page = 1
    raw_page = _value(args, "page", strict)
    if raw_page is not None:
        page = _integer(
            raw_page, "page", 1, MAX_PAGE, gettext("Die Seitenzahl muss eine ganze Zahl ab 1 sein.")
        )

    per_page = PAGE_SIZE
    raw_per_page = _value(args, "per_page", strict) if allow_per_page else None
    if raw_per_page is not None:
        per_page = _integer(
            raw_per_page,
            "per_page",
            1,
            MAX_PER_PAGE,
            gettext(
                "Die Anzahl pro Seite muss eine ganze Zahl von 1 bis %(max)s sein.",
                max=MAX_PER_PAGE,
            ),
        )

    return DirectoryFilters(
        q=q,
        category=category,
        town=town,
        age=age,
        free_for_children=free_for_children,
        sort=sort,
        page=page,
        per_page=per_page,
    )


# ---- lookups ------------------------------------------------------------------------------------


def current_edition(today: date | None = None) -> Edition | None:
    """The edition covering today (Berlin); if none does, the latest one; None without editions."""
    today = today or berlin_today()
    covers = and_(Edition.valid_from <= today, Edition.valid_until >= today)
    return db.session.scalars(
        select(Edition)
        .order_by(case((covers, 0), else_=1), Edition.valid_from.desc(), Edition.number.desc())
        .limit(1)
    ).first()


def list_categories() -> list[Category]:
    """All categories in their display order."""
    return list(db.session.scalars(select(Category).order_by(Category.position, Category.id)))


def _listed(edition: Edition | EditionInfo | None) -> ColumnElement[bool]:
    """The condition for an offer row (joined with its provider) to be listed publicly."""
    if edition is None:
        return false()
    return and_(
        Offer.edition_id == edition.id,
        Offer.published.is_(True),
        Provider.published.is_(True),
    )


def sort_key(text: str) -> str:
    """A German-friendly sort key: case and accents ignored (Ä next to A, not after Z)."""
    decomposed = unicodedata.normalize("NFKD", text.replace("ß", "ss"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def list_towns(edition: Edition | EditionInfo | None) -> list[str]:
    """The towns of the venues of listed offers, for the town filter."""
    towns = db.session.scalars(
        select(Venue.town)
        .join(offer_venue, offer_venue.c.venue_id == Venue.id)
        .join(Offer, Offer.id == offer_venue.c.offer_id)
        .join(Provider, Provider.id == Offer.provider_id)
        .where(_listed(edition))
        .distinct()
    )
    return sorted(towns, key=sort_key)


# ---- the directory's metadata, kept for a short while ---------------------------------------------

# How long a worker keeps the current edition, the categories and the towns of the filter
# (DIRECTORY_METADATA_SECONDS). They change when staff edit the catalogue, a few times a year;
# a change made in this process is seen at once (see _catalogue_written), one made by another
# worker or host within this many seconds.
DEFAULT_METADATA_SECONDS = 60


@dataclass(frozen=True)
class EditionInfo:
    """The columns of an Edition the directory shows (a plain copy, safe to share between requests)."""

    id: int
    number: int
    name: str
    valid_from: date
    valid_until: date

    def covers(self, day: date) -> bool:
        """Whether the edition is valid on the given day."""
        return self.valid_from <= day <= self.valid_until


@dataclass(frozen=True)
class CategoryInfo:
    """The columns of a Category the directory needs (a plain copy, safe to share)."""

    id: int
    slug: str
    name_de: str
    name_en: str
    position: int

    def name(self, locale: str) -> str:
        """The category's name in the given language."""
        return self.name_en if locale == "en" else self.name_de


@dataclass(frozen=True)
class ListingMetadata:
    """What every directory page needs besides the offers: edition, categories, towns."""

    edition: EditionInfo | None
    categories: list[CategoryInfo]
    towns: list[str]


_CATALOGUE_TYPES = (Edition, Category, Provider, Venue, Offer)
_WRITTEN = "kyffikus.catalogue_written"
# Bumped whenever this process writes (or rolls back a write to) the catalogue: a cached copy
# made before is not used again.
_catalogue_version = 0
# Per app (each has its own database): day -> (catalogue version, expiry, metadata).
_CACHE_KEY = "kyffikus.directory_metadata"


@event.listens_for(Session, "after_flush")
def _catalogue_written(session: Session, _flush_context: Any) -> None:
    global _catalogue_version
    if any(
        isinstance(o, _CATALOGUE_TYPES) for o in chain(session.new, session.dirty, session.deleted)
    ):
        session.info[_WRITTEN] = True
        _catalogue_version += 1


@event.listens_for(Session, "after_transaction_end")
def _catalogue_transaction_ended(session: Session, transaction: SessionTransaction) -> None:
    global _catalogue_version
    # A transaction or savepoint with catalogue writes ended: committed or rolled back, what a
    # copy made in between saw is no longer certain. (A flush's own subtransaction is neither.)
    if transaction.parent is not None and not transaction.nested:
        return
    if session.info.get(_WRITTEN):
        _catalogue_version += 1
        if transaction.parent is None:
            session.info.pop(_WRITTEN, None)


def catalogue_version() -> int:
    """A number that changes whenever this process writes the catalogue (for caches of it)."""
    return _catalogue_version


def listing_metadata(today: date | None = None) -> ListingMetadata:
    """The current edition, the categories and the filter's towns; cached for a short while."""
    today = today or berlin_today()
    seconds = float(current_app.config.get("DIRECTORY_METADATA_SECONDS", DEFAULT_METADATA_SECONDS))
    now = time.monotonic()
    cache: dict[date, tuple[int, float, ListingMetadata]] = current_app.extensions.setdefault(
        _CACHE_KEY, {}
    )
    cached = cache.get(today) if seconds > 0 else None
    if cached is not None and cached[0] == _catalogue_version and now < cached[1]:
        return cached[2]
    version = _catalogue_version
    edition = current_edition(today)
    metadata = ListingMetadata(
        edition=EditionInfo(
            edition.id, edition.number, edition.name, edition.valid_from, edition.valid_until
        )
        if edition is not None
        else None,
        categories=[
            CategoryInfo(c.id, c.slug, c.name_de, c.name_en, c.position) for c in list_categories()
        ],
        towns=list_towns(edition),
    )
    if seconds > 0:
        cache.clear()  # one day's entry is all that is ever needed
        cache[today] = (version, now + seconds, metadata)
    return metadata


def _like_pattern(word: str) -> str:
    """A LIKE pattern for a word anywhere, its wildcards escaped with a backslash."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _offer_conditions(filters: DirectoryFilters) -> list[ColumnElement[bool]]:
    """The filter conditions on an offer row joined with its provider and category."""
    conditions: list[ColumnElement[bool]] = []
    for word in filters.words:
        pattern = _like_pattern(word)
        # lower() on both sides: PostgreSQL and SQLite (see kyffikus/__init__.py) fold Unicode.
        conditions.append(
            or_(
                func.lower(Offer.title).like(pattern, escape="\\"),
                func.lower(Offer.description).like(pattern, escape="\\"),
                func.lower(Provider.name).like(pattern, escape="\\"),
            )
        )
    if filters.category:
        conditions.append(Category.slug == filters.category)
    if filters.town:
        conditions.append(Offer.venues.any(func.lower(Venue.town) == filters.town.lower()))
    if filters.age is not None:
        conditions.append(or_(Offer.min_age.is_(None), Offer.min_age <= filters.age))
        conditions.append(or_(Offer.max_age.is_(None), Offer.max_age >= filters.age))
    if filters.free_for_children:
        conditions.append(Offer.discount_kind == "children_free")
    return conditions


def _offers_statement(
    filters: DirectoryFilters, edition: Edition | EditionInfo | None
) -> Select[tuple[Offer]]:
    stmt = (
        select(Offer)
        .join(Offer.provider)
        .join(Offer.category)
        .where(_listed(edition), *_offer_conditions(filters))
        .options(
            contains_eager(Offer.provider),
            contains_eager(Offer.category),
            selectinload(Offer.venues),
        )
    )
    if filters.sort == "town":
        first_town = (
            select(func.min(Venue.town))
            .join(offer_venue, offer_venue.c.venue_id == Venue.id)
            .where(offer_venue.c.offer_id == Offer.id)
            .correlate(Offer)
            .scalar_subquery()
        )
        # Offers without a venue go last on both backends (NULL ordering differs otherwise).
        stmt = stmt.order_by(first_town.is_(None), first_town)
    return stmt.order_by(Provider.name, Offer.title, Offer.id)


class _CountedPagination(SelectPagination):
    """Flask-SQLAlchemy's pagination with the total from the page's own query.

    count(*) OVER () beside each row gives the number of all matching rows, so the page and
    the total are one query instead of two. Only a page beyond the last (no rows) needs the
    separate count.
    """

    _window_total: int | None = None

    def _query_items(self) -> list[Any]:
        select = self._query_args["select"].add_columns(func.count().over())
        select = select.limit(self.per_page).offset(self._query_offset)
        rows = self._query_args["session"].execute(select).unique().all()
        self._window_total = int(rows[0][1]) if rows else None
        return [row[0] for row in rows]

    def _query_count(self) -> int:
        if self._window_total is not None:
            return self._window_total
        if self._query_offset == 0:
            return 0  # the first page is empty: nothing matches
        return super()._query_count()


def find_offers(filters: DirectoryFilters, edition: Edition | EditionInfo | None) -> Pagination:
    """One page of listed offers matching the filters, with provider, category and venues loaded.

    Sorted by provider name then title ("name"), or by the first venue town first ("town"); the
    id breaks ties, so pages are stable. A page beyond the last is empty, not an error.
    """
    return _CountedPagination(
        select=_offers_statement(filters, edition),
        session=db.session(),
        page=filters.page,
        per_page=filters.per_page,
        max_per_page=MAX_PER_PAGE,
        error_out=False,
        count=True,
    )


def find_providers(filters: DirectoryFilters, edition: Edition | None) -> Pagination:
    """One page of published providers with at least one listed offer matching the filters.

    Each provider comes with its venues loaded; listed_offers_of() gives their offers.
    """
    matching = (
        select(Offer.id)
        .join(Offer.category)
        .where(
            Offer.provider_id == Provider.id,
            _listed(edition),
            *_offer_conditions(filters),
        )
        .correlate(Provider)
    )
    stmt = (
        select(Provider)
        .where(Provider.published.is_(True), matching.exists())
        .options(selectinload(Provider.venues))
    )
    if filters.sort == "town":
        first_town = (
            select(func.min(Venue.town))
            .where(Venue.provider_id == Provider.id)
            .correlate(Provider)
            .scalar_subquery()
        )
        stmt = stmt.order_by(first_town.is_(None), first_town)
    stmt = stmt.order_by(Provider.name, Provider.id)
    return db.paginate(
        stmt,
        page=filters.page,
        per_page=filters.per_page,
        max_per_page=MAX_PER_PAGE,
        error_out=False,
        count=True,
    )


def listed_offers_of(
    providers: Sequence[Provider], edition: Edition | None
) -> dict[int, list[Offer]]:
    """The listed offers of the given providers (one query), by provider id, sorted by title."""
    result: dict[int, list[Offer]] = {p.id: [] for p in providers}
    if not result:
        return result
    offers = db.session.scalars(
        select(Offer)
        .join(Offer.provider)
        .where(Offer.provider_id.in_(list(result)), _listed(edition))
        .order_by(Offer.title, Offer.id)
    )
    for offer in offers:
        result[offer.provider_id].append(offer)
    return result


def get_listed_offer(offer_id: int, edition: Edition | None) -> Offer | None:
    """A listed offer by id with its provider, category, edition and venues; None if not listed."""
    if not 0 < offer_id <= MAX_ID:
        return None
    return db.session.scalars(
        select(Offer)
        .join(Offer.provider)
        .where(Offer.id == offer_id, _listed(edition))
        .options(
            contains_eager(Offer.provider),
            joinedload(Offer.category),
            joinedload(Offer.edition),
            selectinload(Offer.venues),
        )
    ).first()


def get_listed_provider(slug: str, edition: Edition | None) -> tuple[Provider, list[Offer]] | None:
    """A published provider by slug with its venues, and its listed offers; None if not published."""
    if len(slug) > 80 or not SLUG_RE.match(slug):
        return None
    provider = db.session.scalars(
        select(Provider)
        .where(Provider.slug == slug, Provider.published.is_(True))
        .options(selectinload(Provider.venues))
    ).first()
    if provider is None:
        return None
    offers = list(
        db.session.scalars(
            select(Offer)
            .join(Offer.provider)
            .join(Offer.category)
            .where(Offer.provider_id == provider.id, _listed(edition))
            .options(
                contains_eager(Offer.provider),
                contains_eager(Offer.category),
                selectinload(Offer.venues),
            )
            .order_by(Offer.title, Offer.id)
        ).unique()
    )
    return provider, offers


def catalogue_size(edition: Edition | None) -> tuple[int, int]:
    """How many listed offers, and from how many providers, the edition has."""
    row = db.session.execute(
        select(func.count(Offer.id), func.count(func.distinct(Offer.provider_id)))
        .join(Offer.provider)
        .where(_listed(edition))
    ).one()
    return int(row[0]), int(row[1])


# ---- wording --------------------------------------------------------------------------------------


def category_name(category: Category | CategoryInfo) -> str:
    """The category's name in the current language."""
    return category.name(locale_code())


def _money(value: Decimal | float | int) -> str:
    return str(format_currency(value, "EUR"))


def _number(value: Decimal | float | int) -> str:
    return str(format_decimal(value))


def discount_label(offer: Offer) -> str:
    """The offer's benefit in a few words, e.g. "10 % Ermäßigung" or "1 Kind frei"."""
    value = offer.discount_value
    kind = offer.discount_kind
    if kind == "percent" and value is not None:
        return gettext("%(value)s %% Ermäßigung", value=_number(value))
    if kind == "amount" and value is not None:
        return gettext("%(amount)s Ermäßigung", amount=_money(value))
    if kind == "children_free":
        if value is None:
            return gettext("Kinder frei")
        count = int(value)
        return ngettext("%(num)s Kind frei", "%(num)s Kinder frei", count)
    if kind == "family_price" and value is not None:
        return gettext("Familienpreis: %(amount)s", amount=_money(value))
    return gettext("Besonderer Vorteil")


def age_label(offer: Offer) -> str:
    """For which ages of children the offer is meant."""
    low, high = offer.min_age, offer.max_age
    if low is None and high is None:
        return gettext("Für jedes Alter")
    if low is not None and high is not None:
        return gettext("Für Kinder von %(min)s bis %(max)s Jahren", min=low, max=high)
    if low is not None:
        return gettext("Für Kinder ab %(min)s Jahren", min=low)
    return gettext("Für Kinder bis %(max)s Jahre", max=high)


def limit_label(offer: Offer) -> str:
    """How often a pass may use the offer."""
    if offer.redemption_limit == "per_day":
        return gettext("Einmal pro Tag und Pass")
    if offer.redemption_limit == "per_edition":
        return gettext("Einmal pro Pass in dieser Ausgabe")
    return gettext("Beliebig oft")


def venue_towns(offer: Offer) -> list[str]:
    """The distinct towns of an offer's venues, sorted."""
    return sorted({v.town for v in offer.venues}, key=sort_key)


def template_helpers() -> dict[str, Any]:
    """The wording helpers, for templates."""
    return {
        "discount_label": discount_label,
        "age_label": age_label,
        "limit_label": limit_label,
        "category_name": category_name,
        "venue_towns": venue_towns,
    }
