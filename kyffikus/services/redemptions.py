"""Redemptions (Einlösungen): recorded once, each offer's limit enforced by the database, undo, history.

The limit is the UNIQUE(pass_id, offer_id, limit_key) constraint: limit_key is the Berlin date for a
once-per-day offer, "edition" for a once-per-edition offer and NULL (never colliding) for an unlimited
one. Two tills racing for the same allowance both try the INSERT; the database lets exactly one win.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from kyffikus.extensions import db
from kyffikus.models.base import BERLIN, utcnow
from kyffikus.models.catalogue import Offer
from kyffikus.models.passes import Pass, Redemption
from kyffikus.services import Conflict, DomainError, NotAllowed
from kyffikus.services.audit import record
from kyffikus.services.checks import CheckResult, eligible_children, pass_status, status_message
from kyffikus.services.passes import children_ages

if TYPE_CHECKING:
    from kyffikus.models.people import User

# A client's retry key: a UUID, secrets.token_urlsafe(16) or similar; printable ASCII only.
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]{8,100}", re.ASCII)
MAX_DB_INT = 2**31 - 1


def limit_key_for(limit: str, on: date) -> str | None:
    """The value that makes the database refuse a second redemption within the offer's limit."""
    if limit == "per_day":
        return on.isoformat()
    if limit == "per_edition":
        return "edition"
    return None


def find_by_key(provider_id: int, idempotency_key: str) -> Redemption | None:
    """The provider's redemption recorded under a retry key, if any."""
    return db.session.scalars(
        select(Redemption).where(
            Redemption.provider_id == provider_id, Redemption.idempotency_key == idempotency_key
        )
    ).first()


def _replay(existing: Redemption, pass_: Pass, offer: Offer) -> Redemption:
    """A retry answers the redemption recorded first; a key reused for something else is refused."""
    if existing.pass_id != pass_.id or existing.offer_id != offer.id:
        raise Conflict(
            _("Dieser Schlüssel wurde bereits für eine andere Einlösung verwendet."),
            code="idempotency_key_reused",
        )
    return existing


def _limit_message(limit: str) -> str:
    if limit == "per_day":
        return _("Dieses Angebot wurde für diesen Pass heute bereits eingelöst.")
    return _("Dieses Angebot wurde für diesen Pass in dieser Ausgabe bereits eingelöst.")


def _check_counts(pass_: Pass, offer: Offer, adults: Any, children: Any, on: date) -> None:
    """Adults and children within what the pass names and the offer's age range allows."""
    if isinstance(adults, bool) or not isinstance(adults, int):
        raise DomainError(
            _("Bitte geben Sie die Zahl der Erwachsenen an."), code="invalid", field="adults"
        )
    if isinstance(children, bool) or not isinstance(children, int):
        raise DomainError(
            _("Bitte geben Sie die Zahl der Kinder an."), code="invalid", field="children"
        )
    max_adults = min(2, len(pass_.holders or []))
    if not 0 <= adults <= max_adults:
        raise DomainError(
            _(
                "Auf diesem Pass stehen %(count)d Erwachsene: Bitte wählen Sie 0 bis %(count)d.",
                count=max_adults,
            ),
            code="invalid",
            field="adults",
        )
    max_children = eligible_children(children_ages(pass_, on), offer.min_age, offer.max_age)
    if not 0 <= children <= max_children:
        raise DomainError(
            _(
                "Für dieses Angebot zählen auf diesem Pass %(count)d Kinder: Bitte wählen Sie 0 bis %(count)d.",
                count=max_children,
            ),
            code="invalid",
            field="children",
        )
    if adults + children < 1:
        raise DomainError(
            _("Bitte geben Sie an, für wie viele Personen die Ermäßigung gewährt wurde."),
            code="invalid",
            field="adults",
        )


def redeem_offer(
    pass_: Pass,
    offer: Offer,
    adults: int,
    children: int,
    by: User,
    idempotency_key: str | None,
    on: date,
) -> Redemption:
    """Record that the provider gave an offer's discount to a pass; a retry with the same key answers the same."""
    if (
        by is None
        or by.role != "provider"
        or by.provider_id is None
        or by.provider_id != offer.provider_id
    ):
        raise NotAllowed(_("Dieses Angebot gehört nicht zu Ihrem Anbieter."))
    if idempotency_key is not None and not (
        isinstance(idempotency_key, str) and IDEMPOTENCY_KEY.fullmatch(idempotency_key)
    ):
        raise DomainError(
            _(
                "Der Wiederholungsschlüssel muss 8 bis 100 Zeichen lang sein (Buchstaben, Ziffern, _ - . :)."
            ),
            code="invalid",
            field="idempotency_key",
        )
    if idempotency_key is not None:
        existing = find_by_key(offer.provider_id, idempotency_key)
        if existing is not None:
            return _replay(existing, pass_, offer)
    status, since = pass_status(pass_, on)
    if status != "valid":
        raise DomainError(status_message(CheckResult(status, status, since=since)), code=status)
    if not offer.published or not offer.edition.covers(on):
        raise DomainError(_("Dieses Angebot gilt heute nicht."), code="offer_unavailable")
    _check_counts(pass_, offer, adults, children, on)

    redemption = Redemption(
        pass_id=pass_.id,
        offer_id=offer.id,
        provider_id=offer.provider_id,
        adults=adults,
        children=children,
        redeemed_at=utcnow(),
        redeemed_on=on,
        limit_key=limit_key_for(offer.redemption_limit, on),
        idempotency_key=idempotency_key,
        by_id=by.id,
    )
    try:
        # A savepoint: the losing side of a race rolls back only its INSERT, not the caller's transaction.
        with db.session.begin_nested():
            db.session.add(redemption)
    except IntegrityError as exc:
        if idempotency_key is not None:
            existing = find_by_key(offer.provider_id, idempotency_key)
            if existing is not None:
                return _replay(existing, pass_, offer)
        raise Conflict(_limit_message(offer.redemption_limit), code="limit_reached") from exc
    record(
        by,
        "redemption.create",
        redemption,
        details={
            "offer_id": offer.id,
            "adults": adults,
            "children": children,
            "on": on.isoformat(),
        },
    )
    return redemption


def undo_deadline(redemption: Redemption) -> datetime:
    """Until when the provider may undo a redemption."""
    return redemption.redeemed_at + current_app.config["REDEMPTION_UNDO_WINDOW"]


def can_undo(redemption: Redemption, now: datetime) -> bool:
    """Whether the redemption can still be undone."""
    return redemption.undone_at is None and now <= undo_deadline(redemption)


def undo_redemption(redemption: Redemption, by: User, now: datetime) -> Redemption:
    """Undo the provider's own redemption within the undo window; the allowance is free again."""
    if by is None or by.role != "provider" or by.provider_id != redemption.provider_id:
        raise NotAllowed(_("Diese Einlösung gehört nicht zu Ihrem Anbieter."))
    if redemption.undone_at is not None:
        return redemption
    if now > undo_deadline(redemption):
        minutes = int(current_app.config["REDEMPTION_UNDO_WINDOW"].total_seconds() // 60)
        raise Conflict(
            _(
                "Eine Einlösung kann nur innerhalb von %(minutes)d Minuten rückgängig gemacht werden.",
                minutes=minutes,
            ),
            code="undo_window_passed",
        )
    redemption.undone_at = now
    redemption.undone_by_id = by.id
    redemption.limit_key = None
    db.session.flush()
    record(by, "redemption.undo", redemption, details={"offer_id": redemption.offer_id})
    return redemption


def own_redemption(provider_id: int, redemption_id: int) -> Redemption | None:
    """The provider's redemption with this id; None for another provider's or an unknown one."""
    if not 0 < redemption_id <= MAX_DB_INT:
        return None
    redemption = db.session.get(Redemption, redemption_id)
    if redemption is None or redemption.provider_id != provider_id:
        return None
    return redemption


def own_offer(provider_id: int, offer_id: int) -> Offer | None:
    """The provider's offer with this id, or None."""
    if not 0 < offer_id <= MAX_DB_INT:
        return None
    offer = db.session.get(Offer, offer_id)
    return offer if offer is not None and offer.provider_id == provider_id else None


def provider_offers(provider_id: int) -> list[Offer]:
    """All of the provider's offers (any edition), for the history's filter."""
    return list(
        db.session.scalars(
            select(Offer).where(Offer.provider_id == provider_id).order_by(Offer.title, Offer.id)
        )
    )


# ---- history ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryFilter:
    """The history's filters: a date range (Berlin days, inclusive) and an offer."""

    date_from: date | None = None
    date_to: date | None = None
    offer_id: int | None = None


def _filtered(stmt: Select[Any], provider_id: int, filters: HistoryFilter) -> Select[Any]:
    stmt = stmt.where(Redemption.provider_id == provider_id)
    if filters.date_from is not None:
        stmt = stmt.where(Redemption.redeemed_on >= filters.date_from)
    if filters.date_to is not None:
        stmt = stmt.where(Redemption.redeemed_on <= filters.date_to)
    if filters.offer_id is not None:
        stmt = stmt.where(Redemption.offer_id == filters.offer_id)
    return stmt


def history_select(provider_id: int, filters: HistoryFilter) -> Select[Any]:
    """The provider's redemptions, newest first (for db.paginate)."""
    stmt = select(Redemption).options(
        joinedload(Redemption.offer).load_only(Offer.title),
        joinedload(Redemption.pass_).load_only(Pass.number),
    )
    return _filtered(stmt, provider_id, filters).order_by(
        Redemption.redeemed_at.desc(), Redemption.id.desc()
    )


@dataclass(frozen=True)
class MonthlyTotal:
    """Redemptions of one offer in one month (undone ones not counted)."""

    year: int
    month: int
    offer_id: int
    title: str
    redemptions: int
    adults: int
    children: int


def monthly_totals(provider_id: int, filters: HistoryFilter) -> list[MonthlyTotal]:
    """Totals per month and offer, newest month first."""
    # The database sums per day and offer, in the order of the index on (provider_id,
    # redeemed_on, offer_id) that also holds the counted columns: no sort and no table access,
    # even for a big provider's year (320,000 redemptions at state scale). The days (a few
    # thousand rows at most) are added up to months here.
    stmt = (
        select(
            Redemption.redeemed_on,
            Redemption.offer_id,
            func.count().label("redemptions"),
            func.sum(Redemption.adults).label("adults"),
            func.sum(Redemption.children).label("children"),
        )
        .where(Redemption.undone_at.is_(None))
        .group_by(Redemption.redeemed_on, Redemption.offer_id)
    )
    months: dict[tuple[int, int, int], list[int]] = {}
    for row in db.session.execute(_filtered(stmt, provider_id, filters)):
        sums = months.setdefault(
            (row.redeemed_on.year, row.redeemed_on.month, row.offer_id), [0, 0, 0]
        )
        sums[0] += int(row.redemptions)
        sums[1] += int(row.adults or 0)
        sums[2] += int(row.children or 0)
    # The titles in the database's order (its collation, as the page sorted them before).
    order: dict[int, tuple[int, str]] = {}
    if months:
        offers = db.session.execute(
            select(Offer.id, Offer.title)
            .where(Offer.id.in_({key[2] for key in months}))
            .order_by(Offer.title, Offer.id)
        )
        order = {offer_id: (rank, title) for rank, (offer_id, title) in enumerate(offers)}
    totals = [
        MonthlyTotal(year, month, offer_id, order[offer_id][1], *sums)
        for (year, month, offer_id), sums in months.items()
    ]
    # Newest month first; within a month by title.
    totals.sort(key=lambda t: (-t.year, -t.month, order[t.offer_id][0]))
    return totals


# Lines of the CSV export sent per write (about 30 KB).
CSV_CHUNK_ROWS = 500


def _cell(value: Any) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula is defused with a leading quote."""
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def iter_csv(provider_id: int, filters: HistoryFilter) -> Iterator[str]:
    """The history as CSV for a German spreadsheet: UTF-8 with BOM, semicolons, dd.mm.yyyy; streamed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")

    def line(values: list[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_cell(v) for v in values])
        return buffer.getvalue()

    yield "\ufeff" + line(
        [
            _("Datum"),
            _("Uhrzeit"),
            _("Angebot"),
            _("Erwachsene"),
            _("Kinder"),
            _("Pass"),
            _("Rückgängig gemacht"),
        ]
    )
    stmt = _filtered(
        select(
            Redemption.redeemed_at,
            Redemption.adults,
            Redemption.children,
            Redemption.undone_at,
            Offer.title,
            Pass.number,
        )
        .join(Offer, Offer.id == Redemption.offer_id)
        .outerjoin(Pass, Pass.id == Redemption.pass_id),
        provider_id,
        filters,
    ).order_by(Redemption.redeemed_at.desc(), Redemption.id.desc())
    # yield_per streams the rows (a server-side cursor on PostgreSQL): memory stays flat for a year.
    # The lines go out in chunks of CSV_CHUNK_ROWS: one write per line made a year of a big
    # provider (320,000 lines) take half a minute.
    chunk: list[str] = []
    for row in db.session.execute(stmt.execution_options(yield_per=1000)):
        local = row.redeemed_at.astimezone(BERLIN)
        chunk.append(
            line(
                [
                    local.strftime("%d.%m.%Y"),
                    local.strftime("%H:%M"),
                    row.title,
                    row.adults,
                    row.children,
                    f"…-{row.number[-2:]}" if row.number else "",
                    row.undone_at.astimezone(BERLIN).strftime("%d.%m.%Y %H:%M")
                    if row.undone_at
                    else "",
                ]
            )
        )
        if len(chunk) >= CSV_CHUNK_ROWS:
            yield "".join(chunk)
            chunk.clear()
    if chunk:
        yield "".join(chunk)
