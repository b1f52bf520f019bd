"""Statistics for the dashboard, the CSV exports and the yearly report.

Every figure is counted by the database (``select(func.count(...)).group_by(...)``); Python only
receives the aggregated rows (a few dozen municipalities, offers and months) and protects them:

- Primary suppression: a count from 1 to 4 is shown as "<5" (zero is shown: it singles nobody out).
- Complementary suppression: a published total (the table's sum, a provider's sum over its offers, a
  category's sum) must not give a hidden cell back by subtraction. While some hidden cell of a sum can
  still be worked out exactly from the total and what is shown (a lone hidden cell, or two "<5" cells
  that add up to 2, ...), the smallest other non-zero cell of that sum is hidden too, shown as "x"
  (which therefore always stands for 5 or more); when there is no cell left, the total is hidden.
- A municipality with fewer than 5 families shows none of its figures (its children are hidden too).

Children are counted from the JSON list of birth dates on the pass (children under 18 on the day
asked about), with the JSON table function of each database: ``json_each`` on SQLite and
``json_array_elements_text`` on PostgreSQL. The median days to a decision is ``percentile_cont``
on PostgreSQL and an ordered OFFSET query on SQLite.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from time import perf_counter
from typing import Any

from flask import current_app
from flask_babel import format_date
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, String, and_, bindparam, delete, func, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from kyffikus.extensions import db
from kyffikus.models import (
    Application,
    Category,
    Edition,
    Household,
    Locality,
    Municipality,
    Offer,
    Pass,
    Provider,
    Redemption,
)
from kyffikus.models.base import BERLIN, berlin_today, utcnow
from kyffikus.models.statistics import StatisticsSnapshot
from kyffikus.services.settings import get_setting

MIN_COUNT = 5
LESS_THAN = "<5"
HIDDEN = "x"
FIRST_YEAR = 2019
APPLICATION_STATUSES = ("draft", "submitted", "approved", "rejected", "withdrawn")
# How many offers the "most used" and "least used" lists show.
TOP_N = 10


# ---- cells, tables and charts -------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One figure of a table: its value, or the mark that hides it ("<5" or "x")."""

    value: int | float | str | None
    mark: str | None = None
    # How a float is shown: "percent" (one decimal and %), "decimal" (one decimal), None (integer).
    kind: str | None = None

    @property
    def hidden(self) -> bool:
        """Whether the value is suppressed."""
        return self.mark is not None

    @property
    def number(self) -> float | None:
        """The value for a chart; None when hidden or not a number."""
        if self.mark is not None or not isinstance(self.value, int | float):
            return None
        return float(self.value)


@dataclass(frozen=True)
class Column:
    """A table column; the first column of every table holds the row labels."""

    key: str
    label: str
    numeric: bool = True


@dataclass
class Table:
    """A table of statistics as it is shown, exported and printed (already protected)."""

    key: str
    title: str
    columns: list[Column]
    rows: list[list[Cell]]
    total: list[Cell] | None = None
    note: str | None = None
    # Which column the chart draws (None: no chart).
    chart_column: int | None = None
    chart_title: str | None = None

    def bars(self, limit: int | None = None) -> list[tuple[str, Cell]]:
        """The chart's bars: (label, cell) for the chart column, in table order."""
        if self.chart_column is None:
            return []
        rows = self.rows[:limit] if limit else self.rows
        return [(str(row[0].value), row[self.chart_column]) for row in rows]


@dataclass
class Figure:
    """A headline figure (active passes, families reached, ...)."""

    key: str
    label: str
    cell: Cell


@dataclass
class Statistics:
    """The statistics of one section (reach, applications, use) for a year or a day."""

    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    # When the counts were taken, if they come from a snapshot (None: counted just now).
    as_of: datetime | None = None

    def table(self, key: str) -> Table | None:
        """The table with the key, if there is one."""
        return next((t for t in self.tables if t.key == key), None)

    def extend(self, other: Statistics) -> Statistics:
        """Add another section's figures and tables."""
        self.figures.extend(other.figures)
        self.tables.extend(other.tables)
        if other.as_of is not None and (self.as_of is None or other.as_of < self.as_of):
            self.as_of = other.as_of
        return self


# ---- suppression ---------------------------------------------------------------------------------


def _mark(value: int) -> str:
    return LESS_THAN if 0 < value < MIN_COUNT else HIDDEN


def _bounds(mark: str) -> tuple[float, float]:
    """What a reader can tell about a hidden cell from its mark alone."""
    return (1, MIN_COUNT - 1) if mark == LESS_THAN else (MIN_COUNT, math.inf)


def _disclosed(total: int, shown: int, hidden: Mapping[Hashable, str]) -> bool:
    """Whether a reader can work out some hidden cell exactly from a published sum."""
    if len(hidden) == 1:
        return True
    rest = total - shown
    for key, mark in hidden.items():
        low, high = _bounds(mark)
        others = [_bounds(m) for k, m in hidden.items() if k != key]
        lowest = max(low, rest - sum(hi for _lo, hi in others))
        highest = min(high, rest - sum(lo for lo, _hi in others))
        if lowest >= highest:
            return True
    return False


def protect(
    values: Mapping[Hashable, int],
    sums: Sequence[tuple[Hashable, Sequence[Hashable]]] = (),
    together: Sequence[tuple[Hashable, Hashable]] = (),
) -> dict[Hashable, str]:
    """The marks of the cells to hide: "<5" for 1 to 4, and "x" where a sum would give one away.

    values: every published count by key. sums: (total key, part keys) for each published sum.
    together: (a, b) pairs where b is hidden whenever a is "<5" (a municipality's children follow
    its families).
    """
    marks: dict[Hashable, str] = {k: LESS_THAN for k, v in values.items() if 0 < v < MIN_COUNT}
    order = {k: i for i, k in enumerate(values)}
    # The narrowest sums first (a provider's offers before all offers): a complement chosen there
    # also serves the wider sum, so fewer cells are hidden.
    sums = sorted(sums, key=lambda s: len(s[1]))
    changed = True
    while changed:
        changed = False
        for a, b in together:
            if marks.get(a) == LESS_THAN and b not in marks and values[b] != 0:
                marks[b] = _mark(values[b])
                changed = True
        for total, parts in sums:
            if total in marks:
                continue
            hidden = {p: marks[p] for p in parts if p in marks}
            if not hidden:
                continue
            shown = sum(values[p] for p in parts if p not in marks)
            if not _disclosed(values[total], shown, hidden):
                continue
            candidates = [p for p in parts if p not in marks and values[p] > 0]
            if candidates:
                pick = min(candidates, key=lambda p: (values[p], order[p]))
                marks[pick] = _mark(values[pick])
            else:
                marks[total] = _mark(values[total])
            changed = True
    return marks


def count_cell(value: int, mark: str | None = None) -> Cell:
    """A count, hidden when it is 1 to 4 or when a mark is given."""
    if mark is None and 0 < value < MIN_COUNT:
        mark = LESS_THAN
    return Cell(value, mark)


def _cells(values: Mapping[Hashable, int], marks: Mapping[Hashable, str]) -> dict[Hashable, Cell]:
    return {k: Cell(v, marks.get(k)) for k, v in values.items()}


# ---- time and dialects --------------------------------------------------------------------------


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def year_bounds(year: int) -> tuple[date, date]:
    """The first and last day of a year."""
    return date(year, 1, 1), date(year, 12, 31)


def utc_start(day: date) -> datetime:
    """The moment a day begins in the district, in UTC."""
    return datetime.combine(day, time.min, tzinfo=BERLIN).astimezone(UTC)


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def under_18_cutoff(day: date) -> str:
    """Children born after this ISO date are under 18 on the day."""
    return _years_before(day, 18).isoformat()


def valid_year(value: Any, today: date | None = None) -> int | None:
    """The year asked for, or None when it is not a year the programme can have data for."""
    today = today or berlin_today()
    try:
        year = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return year if FIRST_YEAR <= year <= today.year + 1 else None


def birth_dates(pass_: Any) -> tuple[Any, ColumnElement[bool]]:
    """The pass's children's birth dates as rows (to LEFT JOIN), and "this is the first one".

    PostgreSQL: json_array_elements_text WITH ORDINALITY; SQLite: json_each, whose
    ``key`` is the position in the array.
    """
    if _dialect() == "postgresql":
        # A function in FROM may use the columns before it (implicitly LATERAL in PostgreSQL).
        elements = (
            func.json_array_elements_text(pass_.children_birth_dates)
            .table_valued("value", with_ordinality="position")
            .render_derived(name="birth")
        )
        return elements, elements.c.position == 1
    elements = (
        func.json_each(pass_.children_birth_dates).table_valued("key", "value").alias("birth")
    )
    return elements, elements.c.key == 0


def _month(column: Any) -> ColumnElement[int]:
    return func.extract("month", column)


def _days_between(later: Any, earlier: Any) -> ColumnElement[float]:
    if _dialect() == "postgresql":
        return func.extract("epoch", later - earlier) / 86400.0
    return func.julianday(later) - func.julianday(earlier)


def median_days_to_decision(start: date, end: date) -> tuple[int, float | None]:
    """How many applications were decided in the period, and the median days from submission."""
    decided = and_(
        Application.status.in_(("approved", "rejected")),
        Application.submitted_at.is_not(None),
        Application.decided_at >= utc_start(start),
        Application.decided_at < utc_start(date.fromordinal(end.toordinal() + 1)),
    )
    days = _days_between(Application.decided_at, Application.submitted_at)
    if _dialect() == "postgresql":
        n, median = db.session.execute(
            select(func.count(), func.percentile_cont(0.5).within_group(days)).where(decided)
        ).one()
        return int(n), (float(median) if median is not None else None)
    n = db.session.scalar(select(func.count()).select_from(Application).where(decided)) or 0
    if n == 0:
        return 0, None
    # The middle one (odd n) or the middle two (even n) of the ordered durations.
    middle = db.session.scalars(
        select(days).where(decided).order_by(days).offset((n - 1) // 2).limit(2 - n % 2)
    ).all()
    return n, sum(float(v) for v in middle) / len(middle)


# ---- reach: families and children ---------------------------------------------------------------


def _passes_in_force(
    start: date, end: date, *, current: bool, pass_: Any = Pass
) -> ColumnElement[bool]:
    """Passes that were in force on some day of the period (current: active now)."""
    overlap = and_(pass_.valid_from <= end, pass_.valid_until >= start)
    if current:
        return and_(overlap, pass_.status == "active")
    began = utc_start(start)
    return and_(
        overlap,
        pass_.issued_at < utc_start(date.fromordinal(end.toordinal() + 1)),
        # A pass revoked or replaced before the period began was not in force in it.
        or_(
            pass_.status.in_(("active", "expired")),
            pass_.status_changed_at.is_(None),
            pass_.status_changed_at >= began,
        ),
    )


def count_reach(start: date, end: date, *, current: bool) -> dict[str, Any]:
    """The database's counts of families and children by municipality, and of passes in force.

    One pass per household counts (the newest in force), so a replaced pass does not count twice;
    a pass whose household was deleted counts as a family of its own, without a municipality.
    """
    scope = _passes_in_force(start, end, current=current)
    # One pass per household: skip a pass when a newer one of the same household is in scope too.
    newer = aliased(Pass)
    superseded = (
        select(newer.id)
        .where(
            newer.household_id == Pass.household_id,
            newer.id > Pass.id,
            _passes_in_force(start, end, current=current, pass_=newer),
        )
        .exists()
    )
    births, first = birth_dates(Pass)
    cutoff = bindparam("cutoff", under_18_cutoff(start), type_=String)
    # One row per child (or one row for a pass without children): the first row counts the family.
    families = func.count().filter(or_(births.c.value.is_(None), first))
    children = func.count().filter(births.c.value > cutoff)
    rows = db.session.execute(
        select(Locality.municipality_id, families.label("families"), children.label("children"))
        .select_from(Pass)
        .outerjoin(births, true())
        .outerjoin(Household, Household.id == Pass.household_id)
        .outerjoin(Locality, Locality.id == Household.locality_id)
        .where(scope, ~superseded)
        .group_by(Locality.municipality_id)
    ).all()
    passes = db.session.scalar(select(func.count()).select_from(Pass).where(scope)) or 0
    return {
        "municipalities": [[r.municipality_id, int(r.families), int(r.children)] for r in rows],
        "passes": int(passes),
    }


def reach(start: date, end: date, *, current: bool, fresh: bool = False) -> Statistics:
    """Families (households with a pass in force) and children under 18, by municipality."""
    kind = "today" if current else "period"
    data, as_of = snapshot(
        f"reach:{start.isoformat()}:{end.isoformat()}:{kind}",
        lambda: count_reach(start, end, current=current),
        fresh=fresh,
    )
    by_municipality = {row[0]: (row[1], row[2]) for row in data["municipalities"]}
    active_passes = data["passes"]

    names = dict(
        db.session.execute(
            select(Municipality.id, Municipality.name).where(
                or_(
                    Municipality.active.is_(True),
                    Municipality.id.in_([k for k in by_municipality if k]),
                )
            )
        )
        .tuples()
        .all()
    )
    keys: list[int | None] = sorted(names, key=lambda k: names[k].casefold())
    if None in by_municipality:
        keys.append(None)
    values: dict[Hashable, int] = {}
    for k in keys:
        fam, kids = by_municipality.get(k, (0, 0))
        values[("families", k)] = fam
        values[("children", k)] = kids
    values["families"] = sum(by_municipality.get(k, (0, 0))[0] for k in keys)
    values["children"] = sum(by_municipality.get(k, (0, 0))[1] for k in keys)
    values["passes"] = active_passes
    marks = protect(
        values,
        sums=[
            ("families", [("families", k) for k in keys]),
            ("children", [("children", k) for k in keys]),
        ],
        together=[(("families", k), ("children", k)) for k in keys],
    )
    cells = _cells(values, marks)

    district = get_setting("district_family_count")
    share: Cell | None = None
    if isinstance(district, int | float) and district > 0:
        fam = cells["families"]
        share = (
            Cell(None, fam.mark)
            if fam.hidden
            else Cell(100.0 * values["families"] / district, kind="percent")
        )

    when = _("heute") if current else str(start.year)
    stats = Statistics(as_of=as_of)
    stats.figures.append(
        Figure(
            "passes", _("Aktive Pässe") if current else _("Pässe in Kraft im Jahr"), cells["passes"]
        )
    )
    stats.figures.append(Figure("families", _("Erreichte Familien"), cells["families"]))
    stats.figures.append(
        Figure("children", _("Erreichte Kinder unter 18 Jahren"), cells["children"])
    )
    if share is not None:
        stats.figures.append(
            Figure("share", _("Anteil an %(count)s Familien im Landkreis", count=district), share)
        )
    columns = [
        Column("municipality", _("Gemeinde"), numeric=False),
        Column("families", _("Familien")),
        Column("children", _("Kinder unter 18")),
    ]
    rows = [
        [
            Cell(names[k] if k is not None else _("ohne Zuordnung")),
            cells[("families", k)],
            cells[("children", k)],
        ]
        for k in keys
    ]
    stats.tables.append(
        Table(
            key="gemeinden" if current else "gemeinden-jahr",
            title=_("Erreichte Familien und Kinder nach Gemeinde (%(when)s)", when=when),
            columns=columns,
            rows=rows,
            total=[Cell(_("Landkreis gesamt")), cells["families"], cells["children"]],
            note=_("Familien mit einem gültigen Pass (aktiv am Stichtag)")
            if current
            else _("Familien mit einem Pass, der im Jahr %(year)s gültig war", year=start.year),
            chart_column=1,
            chart_title=_("Familien nach Gemeinde"),
        )
    )
    return stats


# ---- applications -------------------------------------------------------------------------------


def status_label(status: str) -> str:
    """An application status in words."""
    return {
        "draft": _("Entwurf"),
        "submitted": _("Eingereicht, offen"),
        "approved": _("Bewilligt"),
        "rejected": _("Abgelehnt"),
        "withdrawn": _("Zurückgezogen"),
    }.get(status, status)


def count_applications(year: int) -> dict[str, Any]:
    """The database's counts of applications begun in the year by status, and the median."""
    start, end = year_bounds(year)
    began = func.coalesce(Application.submitted_at, Application.created_at)
    rows = (
        db.session.execute(
            select(Application.status, func.count())
            .where(began >= utc_start(start), began < utc_start(date(year + 1, 1, 1)))
            .group_by(Application.status)
        )
        .tuples()
        .all()
    )
    decided, median = median_days_to_decision(start, end)
    return {"statuses": {s: int(n) for s, n in rows}, "decided": decided, "median": median}


def applications(year: int, *, fresh: bool = False) -> Statistics:
    """Applications begun in the year by status, and the median days to a decision."""
    data, as_of = snapshot(f"applications:{year}", lambda: count_applications(year), fresh=fresh)
    counts = data["statuses"]
    decided, median = int(data["decided"]), data["median"]
    values: dict[Hashable, int] = {s: int(counts.get(s, 0)) for s in APPLICATION_STATUSES}
    values["total"] = sum(values.values())
    marks = protect(values, sums=[("total", list(APPLICATION_STATUSES))])
    cells = _cells(values, marks)

    stats = Statistics(as_of=as_of)
    if median is None:
        median_cell = Cell(None, "–")
    elif decided < MIN_COUNT:
        # A median of fewer than five decisions is nearly one family's own waiting time.
        median_cell = Cell(None, LESS_THAN)
    else:
        median_cell = Cell(round(median, 1), kind="decimal")
    stats.figures.append(Figure("applications", _("Anträge im Jahr"), cells["total"]))
    stats.figures.append(
        Figure("median_days", _("Median der Tage bis zur Entscheidung"), median_cell)
    )
    stats.tables.append(
        Table(
            key="antraege",
            title=_("Anträge nach Stand (%(year)s)", year=year),
            columns=[Column("status", _("Stand"), numeric=False), Column("count", _("Anträge"))],
            rows=[[Cell(status_label(s)), cells[s]] for s in APPLICATION_STATUSES],
            total=[Cell(_("Gesamt")), cells["total"]],
            note=_(
                "Median der Tage von der Einreichung bis zur Entscheidung: %(days)s (%(count)s Entscheidungen)",
                days=format_cell(median_cell),
                count=format_cell(count_cell(decided)),
            ),
            chart_column=1,
            chart_title=_("Anträge nach Stand"),
        )
    )
    return stats


# ---- use: redemptions ---------------------------------------------------------------------------


def _redeemed_in(start: date, end: date) -> ColumnElement[bool]:
    return and_(
        Redemption.redeemed_on >= start,
        Redemption.redeemed_on <= end,
        Redemption.undone_at.is_(None),
    )


def households_using(start: date, end: date) -> int:
    """Households (a deleted household's pass counts as its own) with a redemption in the period."""
    used = (
        select(Redemption.id)
        .where(Redemption.pass_id == Pass.id, _redeemed_in(start, end))
        .exists()
    )
    family = func.coalesce(Pass.household_id, -Pass.id)
    return int(db.session.scalar(select(func.count(func.distinct(family))).where(used)) or 0)


def count_usage(year: int) -> dict[str, Any]:
    """The database's counts of redemptions in the year by offer and month, and of households using."""
    start, end = year_bounds(year)
    month = _month(Redemption.redeemed_on)
    rows = (
        db.session.execute(
            select(Redemption.offer_id, month.label("month"), func.count())
            .where(_redeemed_in(start, end))
            .group_by(Redemption.offer_id, month)
        )
        .tuples()
        .all()
    )
    return {
        "offer_months": [[int(o), int(m), int(n)] for o, m, n in rows],
        "households": households_using(start, end),
    }


def usage(year: int, *, fresh: bool = False) -> Statistics:
    """Redemptions in the year by offer, provider, category and month; offers most, least and never used."""
    start, end = year_bounds(year)
    data, as_of = snapshot(f"usage:{year}", lambda: count_usage(year), fresh=fresh)
    by_offer: dict[int, int] = defaultdict(int)
    by_month: dict[int, int] = defaultdict(int)
    for offer_id, m, n in data["offer_months"]:
        by_offer[offer_id] += int(n)
        by_month[int(m)] += int(n)

    # The catalogue rows (a few hundred at most): offers of editions valid in the year, and any
    # offer redeemed in it.
    offers = (
        db.session.execute(
            select(
                Offer.id,
                Offer.title,
                Provider.id,
                Provider.name,
                Category.id,
                Category.name_de,
                Category.name_en,
                Category.position,
            )
            .join(Provider, Provider.id == Offer.provider_id)
            .join(Category, Category.id == Offer.category_id)
            .join(Edition, Edition.id == Offer.edition_id)
            .where(
                or_(
                    and_(
                        Edition.valid_from <= end,
                        Edition.valid_until >= start,
                        Offer.published.is_(True),
                    ),
                    Offer.id.in_(list(by_offer)),
                )
            )
            .order_by(Offer.title, Offer.id)
        )
        .tuples()
        .all()
    )
    locale = _locale()
    offer_info = {o[0]: o for o in offers}
    providers: dict[int, str] = {}
    categories: dict[int, tuple[str, int]] = {}
    offers_of_provider: dict[int, list[int]] = defaultdict(list)
    offers_of_category: dict[int, list[int]] = defaultdict(list)
    for oid, _title, pid, pname, cid, cde, cen, cpos in offers:
        providers[pid] = pname
        categories[cid] = (cen if locale == "en" else cde, cpos)
        offers_of_provider[pid].append(oid)
        offers_of_category[cid].append(oid)

    values: dict[Hashable, int] = {}
    for oid in offer_info:
        values[("offer", oid)] = by_offer.get(oid, 0)
    for pid, oids in offers_of_provider.items():
        values[("provider", pid)] = sum(by_offer.get(o, 0) for o in oids)
    for cid, oids in offers_of_category.items():
        values[("category", cid)] = sum(by_offer.get(o, 0) for o in oids)
    for m in range(1, 13):
        values[("month", m)] = by_month.get(m, 0)
    values["total"] = sum(by_offer.values())
    values["households"] = int(data["households"])
    sums: list[tuple[Hashable, Sequence[Hashable]]] = [
        ("total", [("offer", o) for o in offer_info]),
        ("total", [("provider", p) for p in offers_of_provider]),
        ("total", [("category", c) for c in offers_of_category]),
        ("total", [("month", m) for m in range(1, 13)]),
    ]
    sums += [
        (("provider", p), [("offer", o) for o in oids]) for p, oids in offers_of_provider.items()
    ]
    sums += [
        (("category", c), [("offer", o) for o in oids]) for c, oids in offers_of_category.items()
    ]
    marks = protect(values, sums=sums)
    cells = _cells(values, marks)

    stats = Statistics(as_of=as_of)
    stats.figures.append(Figure("redemptions", _("Einlösungen im Jahr"), cells["total"]))
    stats.figures.append(
        Figure(
            "households_using",
            _("Familien, die den Pass mindestens einmal genutzt haben"),
            cells["households"],
        )
    )

    total_row = [Cell(_("Gesamt"))]
    offer_rows = [
        [Cell(o[1]), Cell(o[3]), Cell(categories[o[4]][0]), cells[("offer", o[0])]] for o in offers
    ]
    offer_columns = [
        Column("offer", _("Angebot"), numeric=False),
        Column("provider", _("Anbieter"), numeric=False),
        Column("category", _("Kategorie"), numeric=False),
        Column("redemptions", _("Einlösungen")),
    ]
    stats.tables.append(
        Table(
            key="angebote",
            title=_("Einlösungen nach Angebot (%(year)s)", year=year),
            columns=offer_columns,
            rows=offer_rows,
            total=[*total_row, Cell(""), Cell(""), cells["total"]],
        )
    )
    provider_keys = sorted(providers, key=lambda p: providers[p].casefold())
    stats.tables.append(
        Table(
            key="anbieter",
            title=_("Einlösungen nach Anbieter (%(year)s)", year=year),
            columns=[
                Column("provider", _("Anbieter"), numeric=False),
                Column("offers", _("Angebote")),
                Column("redemptions", _("Einlösungen")),
            ],
            rows=[
                [Cell(providers[p]), Cell(len(offers_of_provider[p])), cells[("provider", p)]]
                for p in provider_keys
            ],
            total=[*total_row, Cell(len(offer_info)), cells["total"]],
            chart_column=2,
            chart_title=_("Einlösungen nach Anbieter"),
        )
    )
    category_keys = sorted(categories, key=lambda c: (categories[c][1], categories[c][0]))
    stats.tables.append(
        Table(
            key="kategorien",
            title=_("Einlösungen nach Kategorie (%(year)s)", year=year),
            columns=[
                Column("category", _("Kategorie"), numeric=False),
                Column("redemptions", _("Einlösungen")),
            ],
            rows=[[Cell(categories[c][0]), cells[("category", c)]] for c in category_keys],
            total=[*total_row, cells["total"]],
            chart_column=1,
            chart_title=_("Einlösungen nach Kategorie"),
        )
    )
    stats.tables.append(
        Table(
            key="monate",
            title=_("Einlösungen nach Monat (%(year)s)", year=year),
            columns=[
                Column("month", _("Monat"), numeric=False),
                Column("redemptions", _("Einlösungen")),
            ],
            rows=[
                [Cell(format_date(date(year, m, 1), "LLLL")), cells[("month", m)]]
                for m in range(1, 13)
            ],
            total=[*total_row, cells["total"]],
            chart_column=1,
            chart_title=_("Einlösungen nach Monat"),
        )
    )

    # Most and least used offers: ordered by what is shown, so hidden cells do not reveal their
    # order among themselves (all "<5" come in title order).
    def rank(o: tuple[Any, ...]) -> tuple[int, str]:
        # A hidden cell ranks by what it shows: "<5" as 4 and "x" as 5, its least possible value.
        cell = cells[("offer", o[0])]
        shown = {LESS_THAN: MIN_COUNT - 1, HIDDEN: MIN_COUNT}.get(cell.mark or "", cell.value)
        return (int(shown or 0), str(o[1]).casefold())

    used = [o for o in offers if values[("offer", o[0])] > 0]
    most = sorted(used, key=lambda o: (-rank(o)[0], rank(o)[1]))[:TOP_N]
    least = sorted(used, key=rank)[:TOP_N]
    never = [o for o in offers if values[("offer", o[0])] == 0]
    short_columns = offer_columns[:2] + offer_columns[3:]
    for key, title, chosen, chart in (
        (
            "meistgenutzt",
            _("Die meistgenutzten Angebote (%(year)s)", year=year),
            most,
            _("Meistgenutzte Angebote"),
        ),
        (
            "wenigsten-genutzt",
            _("Die am wenigsten genutzten Angebote (%(year)s)", year=year),
            least,
            None,
        ),
    ):
        stats.tables.append(
            Table(
                key=key,
                title=title,
                columns=short_columns,
                rows=[[Cell(o[1]), Cell(o[3]), cells[("offer", o[0])]] for o in chosen],
                chart_column=2 if chart else None,
                chart_title=chart,
            )
        )
    stats.tables.append(
        Table(
            key="ungenutzt",
            title=_("Angebote ohne Einlösung (%(year)s)", year=year),
            columns=offer_columns[:3],
            rows=[[Cell(o[1]), Cell(o[3]), Cell(categories[o[4]][0])] for o in never],
        )
    )
    return stats


# ---- putting it together ------------------------------------------------------------------------


def dashboard(year: int, today: date | None = None, *, fresh: bool = False) -> Statistics:
    """Everything the dashboard shows: reach today, and applications and use in the year."""
    today = today or berlin_today()
    stats = reach(today, today, current=True, fresh=fresh)
    stats.extend(applications(year, fresh=fresh))
    stats.extend(usage(year, fresh=fresh))
    return stats


def yearly(year: int, *, fresh: bool = False) -> Statistics:
    """Everything the yearly report shows: reach, applications and use in the year."""
    start, end = year_bounds(year)
    stats = reach(start, end, current=False, fresh=fresh)
    stats.extend(applications(year, fresh=fresh))
    stats.extend(usage(year, fresh=fresh))
    return stats


# ---- snapshots ----------------------------------------------------------------------------------

# Counting that takes at least this long (seconds) is kept as a snapshot ...
SNAPSHOT_AFTER = 0.1
# ... and reused for at most this long (seconds); staff can count again at any time.
SNAPSHOT_MAX_AGE = 600


def snapshot(
    key: str, count: Callable[[], dict[str, Any]], *, fresh: bool = False
) -> tuple[dict[str, Any], datetime | None]:
    """The counts for the key, and when they were taken if they come from a snapshot.

    Counting that takes less than STATISTICS_SNAPSHOT_AFTER seconds (0.1) is always done afresh,
    so small data sets (and the tests) always see the current counts. At state scale (250,000
    families, 5 million redemptions) counting takes seconds: then the counts are kept in the
    database, shared by every worker and host, and reused for up to STATISTICS_SNAPSHOT_MAX_AGE
    seconds (600); the dashboard says when they were taken and offers to count again, and
    `flask --app kyffikus statistics refresh` (cron) keeps them warm so nobody waits.
    """
    config = current_app.config
    max_age = float(config.get("STATISTICS_SNAPSHOT_MAX_AGE", SNAPSHOT_MAX_AGE))
    slow = float(config.get("STATISTICS_SNAPSHOT_AFTER", SNAPSHOT_AFTER))
    row = db.session.get(StatisticsSnapshot, key)
    now = utcnow()
    if row is not None and not fresh and 0 <= (now - row.computed_at).total_seconds() <= max_age:
        return row.data, row.computed_at
    started = perf_counter()
    data = count()
    seconds = perf_counter() - started
    if seconds < slow:
        if row is not None:
            db.session.delete(row)
            db.session.flush()
        return data, None
    _store(key, data, now, seconds)
    return data, now


def _store(key: str, data: dict[str, Any], now: datetime, seconds: float) -> None:
    """Insert or update a snapshot; another worker writing the same one at once is harmless."""
    # Yesterday's snapshots are never read again (today's reach has a new key each day).
    db.session.execute(
        delete(StatisticsSnapshot).where(StatisticsSnapshot.computed_at < now - timedelta(days=1))
    )
    try:
        with db.session.begin_nested():
            row = db.session.get(StatisticsSnapshot, key)
            if row is None:
                db.session.add(
                    StatisticsSnapshot(key=key, computed_at=now, seconds=seconds, data=data)
                )
            else:
                row.computed_at, row.seconds, row.data = now, seconds, data
    except IntegrityError:
        pass  # the other worker's counts are as fresh as ours


TABLE_SECTIONS = {
    "gemeinden": "reach_today",
    "gemeinden-jahr": "reach_year",
    "antraege": "applications",
    "angebote": "usage",
    "anbieter": "usage",
    "kategorien": "usage",
    "monate": "usage",
    "meistgenutzt": "usage",
    "wenigsten-genutzt": "usage",
    "ungenutzt": "usage",
    "kennzahlen": "figures",
}


def table_for_export(key: str, year: int, today: date | None = None) -> Table | None:
    """One table for a CSV export (computing only its section), or None for an unknown key."""
    section = TABLE_SECTIONS.get(key)
    today = today or berlin_today()
    if section is None:
        return None
    if section == "reach_today":
        stats = reach(today, today, current=True)
    elif section == "reach_year":
        stats = reach(*year_bounds(year), current=False)
    elif section == "applications":
        stats = applications(year)
    elif section == "usage":
        stats = usage(year)
    else:
        return figures_table(dashboard(year, today), year)
    return stats.table(key)


def figures_table(stats: Statistics, year: int) -> Table:
    """The headline figures as a table (for the CSV export and the report)."""
    return Table(
        key="kennzahlen",
        title=_("Kennzahlen (%(year)s)", year=year),
        columns=[Column("figure", _("Kennzahl"), numeric=False), Column("value", _("Wert"))],
        rows=[[Cell(f.label), f.cell] for f in stats.figures],
    )


# ---- formatting ----------------------------------------------------------------------------------


def _locale() -> str:
    from flask_babel import get_locale

    loc = get_locale()
    return loc.language if loc is not None else "de"


def format_cell(cell: Cell, *, for_csv: bool = False) -> str:
    """A cell as text: its mark, or the number in the user's language ("1.234", "12,5 %")."""
    from flask_babel import format_decimal, format_number

    if cell.mark is not None:
        return cell.mark
    value = cell.value
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if cell.kind in ("percent", "decimal"):
        text = format_decimal(value, "0.0") if not for_csv else f"{value:.1f}".replace(".", ",")
        return f"{text} %" if cell.kind == "percent" else text
    if for_csv:
        return str(int(value))
    return format_number(int(value))


def csv_rows(table: Table) -> Iterable[list[str]]:
    """The table as CSV rows: header, rows, total (numbers without thousands separators)."""
    yield [_csv_safe(c.label) for c in table.columns]
    for row in table.rows:
        yield [_csv_safe(format_cell(c, for_csv=True)) for c in row]
    if table.total is not None:
        yield [_csv_safe(format_cell(c, for_csv=True)) for c in table.total]


def _csv_safe(text: str) -> str:
    """Neutralise text a spreadsheet would run as a formula (an offer titled "=HYPERLINK(...)")."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def with_year(value: Any, today: date | None = None) -> int:
    """Year from a form value, the current year when empty (raises ValueError when it is invalid)."""
    today = today or berlin_today()
    if value in (None, ""):
        return today.year
    year = valid_year(value, today)
    if year is None:
        raise ValueError(value)
    return year


__all__ = [
    "HIDDEN",
    "LESS_THAN",
    "MIN_COUNT",
    "Cell",
    "Column",
    "Figure",
    "Statistics",
    "Table",
    "applications",
    "csv_rows",
    "dashboard",
    "format_cell",
    "households_using",
    "median_days_to_decision",
    "protect",
    "reach",
    "table_for_export",
    "usage",
    "valid_year",
    "with_year",
    "yearly",
]
