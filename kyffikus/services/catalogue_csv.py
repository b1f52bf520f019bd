"""CSV import and export of the catalogue: one file of providers (with venues), one of offers.

Files are UTF-8 with or without a byte order mark, separated by ";" or "," (detected from the
header line). Export writes ";" with a byte order mark, so spreadsheet programs open it directly, and
the import reads what the export writes (round trip).

providers.csv: one row per venue; a provider with several venues has several rows with the same
slug, and its own columns must agree on every row. A provider without venues has one row with
empty venue columns.
    slug, name, description, contact_name, email, phone, website, published, sample,
    venue_key, venue_name, venue_street, venue_postal_code, venue_town, venue_lat, venue_lon,
    venue_accessibility

offers.csv: one row per offer; edition is the edition's number, provider and category are slugs,
venues are venue keys of the provider separated by "|".
    edition, key, provider, category, title, description, discount_kind, discount_value,
    conditions, min_age, max_age, redemption_limit, published, venues

Yes/no columns take ja/nein (also true/false, 1/0, yes/no, x/empty). Numbers take a decimal comma
or point. Rows are counted as in a spreadsheet: the header is row 1.

An import checks every row first (the dry run stops there) and writes all rows or none.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import selectinload

from kyffikus.extensions import db
from kyffikus.models.catalogue import Category, Edition, Offer, Provider, Venue
from kyffikus.models.people import User
from kyffikus.services import DomainError
from kyffikus.services import catalogue_admin as admin
from kyffikus.services.audit import record

# Provider columns that must agree on every row of one provider, and their model fields.
_PROVIDER_FIELD_OF = {
    "name": "name",
    "description": "description",
    "contact_name": "contact_name",
    "email": "email",
    "phone": "phone",
    "website": "website",
    "published": "published",
    "sample": "is_sample",
}
_PROVIDER_FIELD_OF_MODEL = {f: c for c, f in _PROVIDER_FIELD_OF.items() if c != "name"}
_VENUE_FIELD_OF = {
    "venue_key": "key",
    "venue_name": "name",
    "venue_street": "street",
    "venue_postal_code": "postal_code",
    "venue_town": "town",
    "venue_lat": "latitude",
    "venue_lon": "longitude",
    "venue_accessibility": "accessibility",
}
PROVIDER_COLUMNS = ("slug", *_PROVIDER_FIELD_OF, *_VENUE_FIELD_OF)
PROVIDER_REQUIRED = ("slug", "name")
OFFER_COLUMNS = ("edition", "key", "provider", "category", "title", *admin.OFFER_TERMS, "venues")
OFFER_REQUIRED = ("edition", "key", "provider", "category", "title", "discount_kind", "venues")
_OFFER_COLUMN_OF = {
    "edition_id": "edition",
    "category_id": "category",
    "venues": "venues",
}
_TRUE = {"ja", "j", "true", "wahr", "yes", "y", "1", "x"}
_FALSE = {"nein", "n", "false", "falsch", "no", "0", ""}
# A spreadsheet program runs cells that start like a formula; exports defuse them with a quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MAX_ROWS = 5000

PlanT = TypeVar("PlanT")


@dataclass(frozen=True)
class RowProblem:
    """One problem of an import file: spreadsheet row (1 is the header), column and message."""

    row: int
    column: str
    message: str


@dataclass
class ImportResult:
    """What an import found and did: problems, or how many rows were added and changed."""

    kind: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    written: bool = False
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """Whether the file has no problems."""
        return not self.problems


class CsvImportFailed(DomainError):
    """The import file has problems; nothing was written."""

    code = "import_invalid"

    def __init__(self, result: ImportResult) -> None:
        super().__init__(
            _(
                "Die Datei hat %(count)d Fehler; es wurde nichts importiert.",
                count=len(result.problems),
            )
        )
        self.result = result


# ---- reading ----------------------------------------------------------------------------------


def decode(data: bytes | str) -> str:
    """The file's text: UTF-8 with or without BOM (anything else is refused)."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DomainError(
            _("Die Datei ist nicht in UTF-8 gespeichert. Bitte speichern Sie sie als „CSV UTF-8“."),
            code="encoding",
        ) from exc


def detect_delimiter(text: str) -> str:
    """ ";" or ",": whichever the header line uses more often."""
    header = text.splitlines()[0] if text else ""
    return ";" if header.count(";") >= header.count(",") and ";" in header else ","


def read_rows(
    text: str, columns: tuple[str, ...], required: tuple[str, ...], problems: list[RowProblem]
) -> list[tuple[int, dict[str, str]]]:
    """The data rows as (spreadsheet row, {column: text}); header problems go into problems."""
    if not text.strip():
        problems.append(RowProblem(1, "-", _("Die Datei ist leer.")))
        return []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=detect_delimiter(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except csv.Error as exc:
        problems.append(
            RowProblem(
                1, "-", _("Die Kopfzeile ist kein gültiges CSV (%(error)s).", error=str(exc))
            )
        )
        return []
    for name in header:
        if name and name not in columns:
            problems.append(
                RowProblem(
                    1,
                    name,
                    _("Unbekannte Spalte. Erlaubt sind: %(columns)s.", columns=", ".join(columns)),
                )
            )
    seen: set[str] = set()
    for name in header:
        if name in seen and name:
            problems.append(RowProblem(1, name, _("Die Spalte steht zweimal in der Kopfzeile.")))
        seen.add(name)
    for name in required:
        if name not in header:
            problems.append(RowProblem(1, name, _("Pflichtspalte fehlt.")))
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for number, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue  # blank lines at the end of spreadsheet exports
            if len(rows) >= MAX_ROWS:
                problems.append(
                    RowProblem(number, "-", _("Höchstens %(max)d Zeilen je Datei.", max=MAX_ROWS))
                )
                break
            if len(cells) > len(header):
                problems.append(
                    RowProblem(
                        number,
                        "-",
                        _(
                            "Die Zeile hat %(found)d Felder, die Kopfzeile nur %(expected)d.",
                            found=len(cells),
                            expected=len(header),
                        ),
                    )
                )
            row = {
                name: _undefuse(cells[i]) if i < len(cells) else ""
                for i, name in enumerate(header)
                if name
            }
            rows.append((number, row))
    except csv.Error as exc:
        problems.append(
            RowProblem(reader.line_num, "-", _("Kein gültiges CSV (%(error)s).", error=str(exc)))
        )
    if not rows and not problems:
        problems.append(RowProblem(2, "-", _("Die Datei enthält keine Datenzeilen.")))
    return rows


def _undefuse(cell: str) -> str:
    """Remove the quote the export puts before formula-like cells."""
    cell = cell.strip()
    if cell.startswith("'") and cell[1:2] and cell[1] in _FORMULA_START:
        return cell[1:]
    return cell


class _Row:
    """Typed access to one row's cells; problems are collected with the row number and column."""

    def __init__(self, number: int, cells: dict[str, str], problems: list[RowProblem]) -> None:
        self.number = number
        self.cells = cells
        self.problems = problems
        self.failed = False

    def error(self, column: str, message: str) -> None:
        """Record a problem with a column of this row."""
        self.failed = True
        self.problems.append(RowProblem(self.number, column, message))

    def text(self, column: str) -> str:
        """The stripped text of a cell ("" when missing)."""
        return self.cells.get(column, "").strip()

    def optional(self, column: str) -> str | None:
        """The text, or None when empty."""
        return self.text(column) or None

    def flag(self, column: str, default: bool = False) -> bool:
        """A yes/no cell."""
        if column not in self.cells:
            return default
        value = self.text(column).lower()
        if value in _TRUE:
            return True
        if value not in _FALSE:
            self.error(
                column,
                _("„%(value)s“ ist kein Ja/Nein-Wert (ja oder nein).", value=self.text(column)),
            )
        return False

    def integer(self, column: str) -> int | None:
        """A whole number or None."""
        value = self.text(column)
        if not value:
            return None
        try:
            return int(value)
        except ValueError:
            self.error(column, _("„%(value)s“ ist keine ganze Zahl.", value=value))
            return None

    def decimal(self, column: str) -> Decimal | None:
        """A number with a decimal comma or point, or None."""
        value = self.text(column).replace(" ", "")
        if not value:
            return None
        if "," in value and "." in value:
            value = value.replace(".", "")  # 1.234,50
        try:
            number = Decimal(value.replace(",", "."))
        except InvalidOperation:
            self.error(column, _("„%(value)s“ ist keine Zahl.", value=self.text(column)))
            return None
        if not number.is_finite():
            self.error(column, _("„%(value)s“ ist keine Zahl.", value=self.text(column)))
            return None
        return number


def _keep_missing(
    raw: dict[str, Any],
    column_of: dict[str, str],
    cells: dict[str, str],
    current: Any,
    defaults: dict[str, Any],
) -> dict[str, Any]:
    """A column the file does not have leaves the field as it is (new rows get the default)."""
    for field_name, column in column_of.items():
        if column not in cells:
            raw[field_name] = (
                getattr(current, field_name) if current is not None else defaults.get(field_name)
            )
    return raw


_PROVIDER_DEFAULTS: dict[str, Any] = {"description": "", "published": True, "is_sample": False}
_OFFER_DEFAULTS: dict[str, Any] = {
    "description": "",
    "redemption_limit": "unlimited",
    "published": False,
}
# The offer columns a file may leave out (the field keeps its value); each names its field.
_OFFER_OPTIONAL_COLUMNS = {c: c for c in admin.OFFER_TERMS if c != "discount_kind"}


def _venue_column(field_name: str) -> str:
    """The CSV column of a venue field (key -> venue_key)."""
    return next((c for c, f in _VENUE_FIELD_OF.items() if f == field_name), field_name)


def _report(row: _Row, errors: admin.Errors, column_of: Callable[[str], str]) -> None:
    for field_name, messages in errors.items():
        for message in messages:
            row.error(column_of(field_name), message)


# ---- providers --------------------------------------------------------------------------------


@dataclass
class _ProviderPlan:
    row: int
    slug: str
    values: dict[str, Any]
    existing: Provider | None
    venues: list[tuple[int, dict[str, Any], Venue | None]] = field(default_factory=list)


def _plan_providers(text: str, problems: list[RowProblem]) -> tuple[list[_ProviderPlan], int]:
    rows = read_rows(text, PROVIDER_COLUMNS, PROVIDER_REQUIRED, problems)
    if any(p.row == 1 for p in problems):
        return [], len(rows)
    plans: dict[str, _ProviderPlan] = {}
    first_cells: dict[str, dict[str, str]] = {}
    existing = {
        p.slug: p
        for p in db.session.scalars(select(Provider).options(selectinload(Provider.venues)))
    }
    for number, cells in rows:
        row = _Row(number, cells, problems)
        slug = row.text("slug") or admin.slugify(row.text("name"))
        raw = {
            "slug": slug,
            "name": row.text("name"),
            "description": row.text("description"),
            "contact_name": row.optional("contact_name"),
            "email": row.optional("email"),
            "phone": row.optional("phone"),
            "website": row.optional("website"),
            "published": row.flag("published", default=True),
            "is_sample": row.flag("sample"),
        }
        plan = plans.get(slug)
        if plan is None:
            current = existing.get(slug)
            _keep_missing(raw, _PROVIDER_FIELD_OF_MODEL, cells, current, _PROVIDER_DEFAULTS)
            values = admin.normalise_provider(raw)
            _report(
                row,
                admin.validate_provider(values, current),
                lambda f: "sample" if f == "is_sample" else f,
            )
            plan = _ProviderPlan(number, slug, values, current)
            plans[slug] = plan
            first_cells[slug] = cells
        else:
            for column in _PROVIDER_FIELD_OF:
                if (
                    column in cells
                    and cells[column].strip() != first_cells[slug].get(column, "").strip()
                ):
                    row.error(
                        column,
                        _(
                            "Weicht von Zeile %(row)d ab; die Angaben eines Anbieters müssen in allen seinen Zeilen gleich sein.",
                            row=plan.row,
                        ),
                    )
        if any(row.text(c) for c in _VENUE_FIELD_OF):
            venue_raw = {
                "key": row.text("venue_key"),
                "name": row.text("venue_name"),
                "street": row.optional("venue_street"),
                "postal_code": row.optional("venue_postal_code"),
                "town": row.text("venue_town"),
                "latitude": row.decimal("venue_lat"),
                "longitude": row.decimal("venue_lon"),
                "accessibility": row.optional("venue_accessibility"),
            }
            venue_key = venue_raw["key"] or admin.slugify(venue_raw["name"], 60)
            current_venue = None
            if plan.existing is not None:
                current_venue = next((v for v in plan.existing.venues if v.key == venue_key), None)
            _keep_missing(
                venue_raw,
                {f: c for c, f in _VENUE_FIELD_OF.items() if c not in ("venue_key", "venue_name")},
                cells,
                current_venue,
                {},
            )
            venue_values = admin.normalise_venue(venue_raw)
            errors = admin.validate_venue(plan.existing, venue_values, current_venue)
            if any(v.get("key") == venue_values.get("key") for _n, v, _c in plan.venues):
                errors.setdefault("key", []).append(
                    _(
                        "Der Standort „%(key)s“ steht für diesen Anbieter zweimal in der Datei.",
                        key=venue_values.get("key"),
                    )
                )
            _report(row, errors, _venue_column)
            plan.venues.append((number, venue_values, current_venue))
    return list(plans.values()), len(rows)


def import_providers(data: bytes | str, by: User | None, *, dry_run: bool) -> ImportResult:
    """Check a providers file; unless dry_run and if it has no problems, write all of it."""
    return _import("providers", data, by, dry_run, _plan_providers, _provider_rows, _write_provider)


def _import(
    kind: str,
    data: bytes | str,
    by: User | None,
    dry_run: bool,
    plan: Callable[[str, list[RowProblem]], tuple[list[PlanT], int]],
    rows_of: Callable[[PlanT], list[tuple[Any, dict[str, Any]]]],
    write: Callable[[PlanT, User | None], None],
) -> ImportResult:
    """Plan a file's rows, count them as new, changed or unchanged, and write all or none.

    Nothing is written on a dry run or when the file has any problem.
    """
    result = ImportResult(kind, dry_run=dry_run)
    plans, result.rows = plan(decode(data), result.problems)
    if result.problems:
        return result
    for planned in plans:
        for current, values in rows_of(planned):
            _count(result, current, values)
    if dry_run:
        return result

    def write_all() -> None:
        for planned in plans:
            write(planned, by)

    _write_all(result, write_all, by)
    return result


def _count(result: ImportResult, current: Any, values: dict[str, Any]) -> None:
    """Count a row as new (no current object), changed or unchanged."""
    if current is None:
        result.created += 1
    elif any(_differs(current, k, v) for k, v in values.items()):
        result.updated += 1
    else:
        result.unchanged += 1


def _differs(current: Any, field_name: str, value: Any) -> bool:
    """Whether a planned value differs from the object's (an offer's venues come as ids)."""
    if field_name == "venues":
        return sorted(v.id for v in current.venues) != sorted(value)
    return bool(getattr(current, field_name) != value)


def _provider_rows(plan: _ProviderPlan) -> list[tuple[Any, dict[str, Any]]]:
    """The provider and each of its venues as (the object now or None, the planned values)."""
    venues = [(current, values) for _number, values, current in plan.venues]
    return [(plan.existing, plan.values), *venues]


def _write_provider(plan: _ProviderPlan, by: User | None) -> None:
    values = dict(plan.values)
    if plan.existing is None:
        provider = admin.create_provider(values, by)
    else:
        provider = plan.existing
        admin.update_provider(provider, values, by)
    for _number, venue_values, current in plan.venues:
        if current is None:
            admin.create_venue(provider, venue_values, by)
        else:
            admin.update_venue(current, venue_values, by)


def _write_all(result: ImportResult, write: Callable[[], None], by: User | None) -> None:
    """Write inside a savepoint: any failure undoes every row of the file."""
    try:
        with db.session.begin_nested():
            write()
            db.session.flush()
    except DomainError as exc:
        result.problems.append(RowProblem(0, "-", exc.message))
        return
    except SQLAlchemyError:
        result.problems.append(
            RowProblem(
                0, "-", _("Die Datei konnte nicht gespeichert werden; es wurde nichts importiert.")
            )
        )
        return
    record(
        by,
        f"catalogue.import_{result.kind}",
        object_type="import",
        details={"rows": result.rows, "created": result.created, "updated": result.updated},
    )
    result.written = True


# ---- offers -----------------------------------------------------------------------------------


@dataclass
class _OfferPlan:
    row: int
    provider: Provider
    values: dict[str, Any]
    existing: Offer | None


def _plan_offers(text: str, problems: list[RowProblem]) -> tuple[list[_OfferPlan], int]:
    rows = read_rows(text, OFFER_COLUMNS, OFFER_REQUIRED, problems)
    if any(p.row == 1 for p in problems):
        return [], len(rows)
    editions = {e.number: e for e in db.session.scalars(select(Edition))}
    categories = {c.slug: c for c in db.session.scalars(select(Category))}
    providers = {
        p.slug: p
        for p in db.session.scalars(select(Provider).options(selectinload(Provider.venues)))
    }
    plans: list[_OfferPlan] = []
    seen: dict[tuple[int, str], int] = {}
    for number, cells in rows:
        row = _Row(number, cells, problems)
        for column in ("edition", "provider", "category", "venues"):
            if not row.text(column):
                row.error(column, _("Darf nicht leer sein."))
        edition = category = provider = None
        if row.text("edition"):
            edition_number = row.integer("edition")
            edition = editions.get(edition_number) if edition_number is not None else None
            if edition is None and edition_number is not None:
                row.error(
                    "edition",
                    _(
                        "Eine Ausgabe mit der Nummer %(number)d gibt es nicht.",
                        number=edition_number,
                    ),
                )
        if row.text("category"):
            category = categories.get(row.text("category"))
            if category is None:
                row.error(
                    "category", _("Unbekannte Kategorie „%(value)s“.", value=row.text("category"))
                )
        if row.text("provider"):
            provider = providers.get(row.text("provider"))
            if provider is None:
                row.error(
                    "provider",
                    _(
                        "Unbekannter Anbieter „%(value)s“; importieren Sie zuerst die Anbieter.",
                        value=row.text("provider"),
                    ),
                )
        venue_ids: list[int] = []
        keys = [k for k in row.text("venues").replace(",", "|").replace(" ", "|").split("|") if k]
        if provider is not None:
            by_key = {v.key: v for v in provider.venues}
            for key in keys:
                venue = by_key.get(key)
                if venue is None:
                    row.error(
                        "venues",
                        _(
                            "%(provider)s hat keinen Standort „%(key)s“.",
                            provider=provider.slug,
                            key=key,
                        ),
                    )
                else:
                    venue_ids.append(venue.id)
        raw = {
            "key": row.text("key"),
            "title": row.text("title"),
            "edition_id": edition.id if edition else None,
            "category_id": category.id if category else None,
            "description": row.text("description"),
            "discount_kind": row.text("discount_kind"),
            "discount_value": row.decimal("discount_value"),
            "conditions": row.optional("conditions"),
            "min_age": row.integer("min_age"),
            "max_age": row.integer("max_age"),
            "redemption_limit": row.text("redemption_limit") or "unlimited",
            "published": row.flag("published"),
            "venues": venue_ids,
        }
        key = raw["key"] or admin.slugify(raw["title"])
        current = None
        if edition is not None and key:
            current = db.session.scalars(
                select(Offer).where(Offer.edition_id == edition.id, Offer.key == key)
            ).first()
        _keep_missing(raw, _OFFER_OPTIONAL_COLUMNS, cells, current, _OFFER_DEFAULTS)
        values = admin.normalise_offer(raw)
        if current is not None and provider is not None and current.provider_id != provider.id:
            row.error(
                "provider",
                _(
                    "Das Angebot „%(key)s“ gehört in dieser Ausgabe zu einem anderen Anbieter.",
                    key=values["key"],
                ),
            )
        # Columns already reported for this row (unknown edition, empty venues, ...) are not
        # reported twice in the service's words.
        reported = {p.column for p in problems if p.row == number}
        errors = {
            f: m
            for f, m in admin.validate_offer(provider, values, current).items()
            if _OFFER_COLUMN_OF.get(f, f) not in reported
        }
        _report(row, errors, lambda f: _OFFER_COLUMN_OF.get(f, f))
        if edition is not None and values.get("key"):
            twin = seen.get((edition.id, values["key"]))
            if twin is not None:
                row.error(
                    "key",
                    _(
                        "Das Angebot „%(key)s“ steht schon in Zeile %(row)d.",
                        key=values["key"],
                        row=twin,
                    ),
                )
            seen.setdefault((edition.id, values["key"]), number)
        if provider is not None and not row.failed:
            plans.append(_OfferPlan(number, provider, values, current))
    return plans, len(rows)


def import_offers(data: bytes | str, by: User | None, *, dry_run: bool) -> ImportResult:
    """Check an offers file; unless dry_run and if it has no problems, write all of it."""
    return _import(
        "offers",
        data,
        by,
        dry_run,
        _plan_offers,
        lambda plan: [(plan.existing, plan.values)],
        _write_offer,
    )


def _write_offer(plan: _OfferPlan, by: User | None) -> None:
    if plan.existing is None:
        admin.create_offer(plan.provider, dict(plan.values), by)
    else:
        admin.update_offer(plan.existing, dict(plan.values), by)


def run_import(kind: str, data: bytes | str, by: User | None, *, dry_run: bool) -> ImportResult:
    """Import a providers or offers file (kind "providers" or "offers")."""
    if kind == "providers":
        return import_providers(data, by, dry_run=dry_run)
    if kind == "offers":
        return import_offers(data, by, dry_run=dry_run)
    raise DomainError(_("Unbekannte Art der Datei."))


# ---- export -----------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "ja" if value else "nein"
    if isinstance(value, Decimal):
        return format(value, "f").replace(".", ",")
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def _write_csv(columns: tuple[str, ...], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def export_providers() -> str:
    """Every provider with its venues, one row per venue, in the import's format."""
    rows: list[list[Any]] = []
    providers = db.session.scalars(
        select(Provider).options(selectinload(Provider.venues)).order_by(Provider.slug)
    )
    for p in providers:
        head = [
            p.slug,
            p.name,
            p.description,
            p.contact_name,
            p.email,
            p.phone,
            p.website,
            p.published,
            p.is_sample,
        ]
        if not p.venues:
            rows.append(head + [None] * 8)
        for v in p.venues:
            rows.append(
                head
                + [
                    v.key,
                    v.name,
                    v.street,
                    v.postal_code,
                    v.town,
                    v.latitude,
                    v.longitude,
                    v.accessibility,
                ]
            )
    return _write_csv(PROVIDER_COLUMNS, rows)


def export_offers(edition: Edition | None = None) -> str:
    """The offers (of one edition, or all), one row each, in the import's format."""
    query = (
        select(Offer)
        .join(Offer.edition)
        .options(
            selectinload(Offer.venues),
            selectinload(Offer.provider),
            selectinload(Offer.category),
            selectinload(Offer.edition),
        )
        .order_by(Edition.number, Offer.key)
    )
    if edition is not None:
        query = query.where(Offer.edition_id == edition.id)
    rows = [
        [
            o.edition.number,
            o.key,
            o.provider.slug,
            o.category.slug,
            o.title,
            o.description,
            o.discount_kind,
            o.discount_value,
            o.conditions,
            o.min_age,
            o.max_age,
            o.redemption_limit,
            o.published,
            "|".join(sorted(v.key for v in o.venues)),
        ]
        for o in db.session.scalars(query)
    ]
    return _write_csv(OFFER_COLUMNS, rows)
