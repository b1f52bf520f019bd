"""Checking a pass at the till: by the QR code's text (the token) or the typed pass number.

A check is one query whatever the data size: the pass by its unique token or number, LEFT JOINed
with this provider's offers of the current edition and this pass's redemption aggregates per offer.
A malformed code, or a number whose check symbol does not fit, costs no query at all.

The check is the hottest path of the service (every scan at every till), so its statements are
plain SQL built once at import (sqlalchemy.text with typed result columns): no statement is
composed and no cache key computed per call, and rows are read as tuples, not ORM objects. The
SQL is portable (PostgreSQL and SQLite); the typed columns turn SQLite's text dates, datetimes
and JSON into the same Python values PostgreSQL gives.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from babel.dates import format_date as babel_format_date
from babel.dates import format_time as babel_format_time
from babel.dates import get_datetime_format
from sqlalchemy import JSON, Date, Integer, Numeric, String, bindparam, column, select, text
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.selectable import TextualSelect

from kyffikus.auth_session import SESSION_USER_RESULT, SESSION_USER_SQL
from kyffikus.extensions import db
from kyffikus.hotsql import HotStatement
from kyffikus.i18n import gettext as _  # Flask-Babel's, looked up once per request
from kyffikus.i18n import locale_code
from kyffikus.models.base import BERLIN, UTCDateTime
from kyffikus.models.passes import Pass
from kyffikus.services import apitokens, passnumber
from kyffikus.services.passes import children_ages

if TYPE_CHECKING:
    from kyffikus.models.catalogue import Provider

# Statuses a check answers; "not_yet_valid" covers a pass issued ahead of its first day.
STATUSES = ("valid", "expired", "not_yet_valid", "revoked", "replaced", "not_found")
# Why a code found nothing: "typo" (check symbol), "malformed" (neither token nor number), "unknown".
NOT_FOUND_REASONS = ("typo", "malformed", "unknown")

MAX_CODE_LENGTH = 2048
# Tokens are secrets.token_urlsafe(24) (32 characters); anything outside this shape is no token.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,64}", re.ASCII)
_URL_TOKEN = re.compile(r"/v/([^/?#\s]*)")
_ALPHABET = set(passnumber.ALPHABET)


@dataclass(frozen=True)
class ParsedCode:
    """What a scanned or typed code is: a token, a pass number, a typo or nothing usable."""

    kind: str  # "token" | "number" | "typo" | "malformed"
    value: str | None = None


def parse_code(code: Any, *, token_only: bool = False) -> ParsedCode:
    """Classify a code without touching the database (the check symbol is verified here)."""
    if not isinstance(code, str) or not code.strip() or len(code) > MAX_CODE_LENGTH:
        return ParsedCode("malformed")
    text = code.strip()
    if "/v/" in text:
        # The QR code holds <BASE_URL>/v/<token>; the host does not matter, the secret does.
        found = _URL_TOKEN.findall(text)
        token = found[-1] if found else ""
        return ParsedCode("token", token) if _TOKEN.fullmatch(token) else ParsedCode("malformed")
    if _TOKEN.fullmatch(text):
        return ParsedCode("token", text)
    if token_only:
        return ParsedCode("malformed")
    number = passnumber.parse(text)
    if number is not None:
        return ParsedCode("number", number)
    normalised = passnumber.normalise(text) if len(text) <= 40 else ""
    if 0 < len(normalised) <= passnumber.LENGTH + 2 and set(normalised) <= _ALPHABET:
        return ParsedCode("typo")
    return ParsedCode("malformed")


@dataclass
class OfferAllowance:
    """One of this provider's offers and what is left of its allowance for the checked pass."""

    offer_id: int
    title: str
    discount_kind: str
    discount_value: Decimal | None
    conditions: str | None
    min_age: int | None
    max_age: int | None
    limit: str  # unlimited | per_day | per_edition
    count: int  # non-undone redemptions counting against the limit (today for per_day)
    total: int  # non-undone redemptions of this offer for this pass so far
    last_used_at: datetime | None
    available: bool
    max_adults: int
    max_children: int

    @property
    def redemption_limit(self) -> str:
        """The limit under the Offer's name, so the directory's wording helpers accept this."""
        return self.limit

    def to_dict(self) -> dict[str, Any]:
        """The API's shape."""
        return {
            "id": self.offer_id,
            "title": self.title,
            "discount_kind": self.discount_kind,
            "discount_value": str(self.discount_value) if self.discount_value is not None else None,
            "conditions": self.conditions,
            "min_age": self.min_age,
            "max_age": self.max_age,
            "redemption_limit": self.limit,
            "available": self.available,
            "used": self.count > 0,
            "used_at": self.last_used_at.isoformat() if self.count and self.last_used_at else None,
            "redemptions_so_far": self.total,
            "max_adults": self.max_adults,
            "max_children": self.max_children,
        }


@dataclass
class CheckResult:
    """The answer of a check; names, ages and offers are filled only for a provider and a valid pass."""

    status: str
    reason: str
    since: date | None = None
    valid_from: date | None = None
    valid_until: date | None = None
    holders: list[str] = field(default_factory=list)
    children_ages: list[int] = field(default_factory=list)
    number_hint: str | None = None
    offers: list[OfferAllowance] = field(default_factory=list)
    pass_id: int | None = field(default=None, repr=False)

    @property
    def pass_(self) -> Pass | None:
        """The checked pass as an ORM object, for a redemption (loaded by primary key on demand)."""
        return db.session.get(Pass, self.pass_id) if self.pass_id is not None else None

    @property
    def is_valid(self) -> bool:
        """Whether the pass may be accepted today."""
        return self.status == "valid"

    @property
    def children_count(self) -> int:
        """How many children (under 18) the pass counts."""
        return len(self.children_ages)

    @property
    def adults_count(self) -> int:
        """How many adults the pass names."""
        return len(self.holders)

    def public_dict(self) -> dict[str, Any]:
        """What anyone may learn: valid or not, and until when."""
        return {
            "valid": self.is_valid,
            "valid_until": self.valid_until.isoformat()
            if self.is_valid and self.valid_until
            else None,
        }

    def to_dict(self) -> dict[str, Any]:
        """The API's shape for a provider."""
        body: dict[str, Any] = {
            "status": self.status,
            "reason": self.reason,
            "message": status_message(self),
            "since": self.since.isoformat() if self.since else None,
            "pass": None,
            "offers": [o.to_dict() for o in self.offers],
        }
        if self.is_valid:
            body["pass"] = {
                "holders": list(self.holders),
                "adults": self.adults_count,
                "children": self.children_count,
                "children_ages": list(self.children_ages),
                "valid_from": self.valid_from.isoformat() if self.valid_from else None,
                "valid_until": self.valid_until.isoformat() if self.valid_until else None,
                "number_hint": self.number_hint,
            }
        return body


def _berlin_day(moment: datetime | None) -> date | None:
    return moment.astimezone(BERLIN).date() if moment is not None else None


def pass_status(pass_: Pass | Any, on: date) -> tuple[str, date | None]:
    """The pass's status on a day and since when it holds (None for valid)."""
    if pass_.status == "revoked":
        return "revoked", _berlin_day(pass_.status_changed_at)
    if pass_.status == "replaced":
        return "replaced", _berlin_day(pass_.status_changed_at)
    if pass_.valid_until < on:
        return "expired", pass_.valid_until + timedelta(days=1)
    if pass_.status == "expired":
        return "expired", _berlin_day(pass_.status_changed_at) or on
    if pass_.valid_from > on:
        return "not_yet_valid", pass_.valid_from
    return "valid", None


def number_hint(number: str) -> str:
    """The pass number shortened for a provider's screen and history: "…-2F"."""
    return f"…-{number[-2:]}"


def find_pass(parsed: ParsedCode) -> Pass | None:
    """The pass a parsed code names (one indexed query), or None."""
    if parsed.kind == "token":
        return db.session.scalars(select(Pass).where(Pass.token == parsed.value)).first()
    if parsed.kind == "number":
        return db.session.scalars(select(Pass).where(Pass.number == parsed.value)).first()
    return None


def eligible_children(ages: list[int], min_age: int | None, max_age: int | None) -> int:
    """How many of the children fall within an offer's age range."""
    low = 0 if min_age is None else min_age
    high = 17 if max_age is None else max_age
    return sum(1 for age in ages if low <= age <= high)


# ---- the check's SQL, built once ----------------------------------------------------------------

# The result columns in the order the statements select them, with their types. Listing them in
# order lets SQLAlchemy match them by position and keep the result's metadata with the compiled
# statement, instead of matching names on every call.
_ROW_RESULT: list[tuple[str, Any]] = [
    ("id", Integer),
    ("number", String),
    ("status", String),
    ("valid_from", Date),
    ("valid_until", Date),
    ("holders", JSON),
    ("children_birth_dates", JSON),
    ("status_changed_at", UTCDateTime()),
]
_ROW_COLUMNS = ", ".join(f"p.{name}" for name, _type in _ROW_RESULT)
# This provider's published offers of the editions covering the day, with this pass's
# non-undone redemptions per offer: all of them, the last one, and today's. The redemptions are
# found through ix_redemption_check (pass_id, provider_id; live ones only), the offers through
# (provider_id, edition_id); the pass id comes from the same unique lookup as the outer row.
# The redemptions are counted once (MATERIALIZED), not once per offer: joined as a subquery,
# PostgreSQL's plan for a few offers scanned them again for each offer.
_WITH_OFFERS = """
WITH c AS MATERIALIZED (
    SELECT r.offer_id,
           count(*) AS total,
           max(r.redeemed_at) AS last_at,
           sum(CASE WHEN r.redeemed_on = :on THEN 1 ELSE 0 END) AS today,
           max(CASE WHEN r.redeemed_on = :on THEN r.redeemed_at END) AS today_at
    FROM redemption AS r
    WHERE r.pass_id = (SELECT p2.id FROM pass AS p2 WHERE p2.{column} = :code)
      AND r.provider_id = :provider_id AND r.undone_at IS NULL
    GROUP BY r.offer_id
)
SELECT {pass_columns},
       o.id AS offer_id, o.title, o.discount_kind, o.discount_value, o.conditions,
       o.min_age, o.max_age, o.redemption_limit,
       c.total, c.last_at, c.today, c.today_at
FROM pass AS p
LEFT JOIN offer AS o
  ON o.provider_id = :provider_id AND o.published
 AND o.edition_id IN (SELECT e.id FROM edition AS e WHERE e.valid_from <= :on AND e.valid_until >= :on)
LEFT JOIN c ON c.offer_id = o.id
WHERE p.{column} = :code
"""
_ORDER = "ORDER BY o.title, o.id"
# Who asks, in front of the check, whose provider that row names: one statement, one round trip.
# The API puts the caller's token and user there (kyffikus.services.apitokens; the provider is the
# token's), the QR address the session's user (kyffikus.auth_session; the provider is the user's,
# if an active provider's). Without that row there is no row at all; without the pass, one row
# with empty check columns.
_WITH_ASKER = """
WITH {name} AS ({asker})
SELECT {name}.*, chk.*
FROM {name} LEFT JOIN ({check}) AS chk ON 1 = 1
ORDER BY chk.title, chk.offer_id
"""
_OFFER_RESULT: list[tuple[str, Any]] = [
    ("offer_id", Integer),
    ("title", String),
    ("discount_kind", String),
    ("discount_value", Numeric(8, 2)),
    ("conditions", String),
    ("min_age", Integer),
    ("max_age", Integer),
    ("redemption_limit", String),
    ("total", Integer),
    ("last_at", UTCDateTime()),
    ("today", Integer),
    ("today_at", UTCDateTime()),
]


def _columns(spec: list[tuple[str, Any]]) -> list[ColumnClause[Any]]:
    return [column(name, type_) for name, type_ in spec]


def _statement(by: str, with_offers: bool) -> TextualSelect:
    if not with_offers:
        sql = f"SELECT {_ROW_COLUMNS} FROM pass AS p WHERE p.{by} = :code"  # noqa: S608 - constants only
        return text(sql).columns(*_columns(_ROW_RESULT))
    sql = _WITH_OFFERS.format(pass_columns=_ROW_COLUMNS, column=by) + _ORDER
    return (
        text(sql)
        .bindparams(bindparam("on", type_=Date))
        .columns(*_columns(_ROW_RESULT + _OFFER_RESULT))
    )


def _asker_statement(
    by: str, name: str, asker_sql: str, asker_result: list[tuple[str, Any]], provider_sql: str
) -> TextualSelect:
    """The check by `by` with a row of who asks in front (see _WITH_ASKER)."""
    check = _WITH_OFFERS.format(pass_columns=_ROW_COLUMNS, column=by).replace(
        ":provider_id", f"({provider_sql})"
    )
    sql = _WITH_ASKER.format(name=name, asker=asker_sql, check=check)
    return (
        text(sql)
        .bindparams(bindparam("on", type_=Date))
        .columns(*_columns(asker_result + _ROW_RESULT + _OFFER_RESULT))
    )


# (kind of code, with a provider's offers) -> statement; "token" and "number" are unique columns.
# On PostgreSQL they go straight to the driver (kyffikus.hotsql).
_CHECK_UTC = ("status_changed_at", "last_at", "today_at")
_STATEMENTS: dict[tuple[str, bool], HotStatement] = {
    (kind, with_offers): HotStatement(
        _statement(kind, with_offers),
        utc_columns=_CHECK_UTC if with_offers else ("status_changed_at",),
    )
    for kind in ("token", "number")
    for with_offers in (False, True)
}
_SESSION_USER_STATEMENT = HotStatement(
    _asker_statement(
        "token",
        "su",
        SESSION_USER_SQL,
        SESSION_USER_RESULT,
        "SELECT user_provider_id FROM su WHERE user_role = 'provider' AND user_active",
    ),
    utc_columns=_CHECK_UTC,
)
_CALLER_STATEMENTS: dict[str, HotStatement] = {
    kind: HotStatement(
        _asker_statement(
            kind,
            "caller",
            "SELECT " + apitokens.CALLER_SQL,
            apitokens.CALLER_RESULT,
            "SELECT token_provider_id FROM caller",
        ),
        utc_columns=(*apitokens.CALLER_UTC_COLUMNS, *_CHECK_UTC),
    )
    for kind in ("token", "number")
}


def _allowance(row: Any, adults: int, ages: list[int]) -> OfferAllowance:
    """One offer row of the check's statement as what is left of its allowance."""
    total = int(row.total or 0)
    today = int(row.today or 0)
    if row.redemption_limit == "per_day":
        count, last, available = today, row.today_at, today == 0
    elif row.redemption_limit == "per_edition":
        count, last, available = total, row.last_at, total == 0
    else:
        count, last, available = total, row.last_at, True
    return OfferAllowance(
        offer_id=row.offer_id,
        title=row.title,
        discount_kind=row.discount_kind,
        discount_value=row.discount_value,
        conditions=row.conditions,
        min_age=row.min_age,
        max_age=row.max_age,
        limit=row.redemption_limit,
        count=count,
        total=total,
        last_used_at=last,
        available=available,
        max_adults=adults,
        max_children=eligible_children(ages, row.min_age, row.max_age),
    )


def _check_rows(parsed: ParsedCode, provider_id: int | None, on: date) -> Sequence[Any]:
    """The pass row(s) for a parsed code: one row per offer of the provider, or one without."""
    with_offers = provider_id is not None
    params: dict[str, Any] = {"code": parsed.value}
    if with_offers:
        params["provider_id"] = provider_id
        params["on"] = on
    # HotStatement.rows flushes first: a pending redemption of this request must count.
    return _STATEMENTS[(str(parsed.kind), with_offers)].rows(params)


def check_pass(
    code: str, provider: Provider | int | None, on: date, *, token_only: bool = False
) -> CheckResult:
    """Check a scanned or typed code; a provider (or its id) also gets names, ages and its own offers' allowance."""
    parsed = parse_code(code, token_only=token_only)
    if parsed.kind in ("typo", "malformed"):
        return CheckResult("not_found", parsed.kind)
    provider_id = provider if isinstance(provider, int) or provider is None else provider.id
    return result_from_rows(_check_rows(parsed, provider_id, on), provider_id, on)


def check_with_caller(
    parsed: ParsedCode, token_hash: str, on: date
) -> tuple[Any | None, CheckResult | None]:
    """The API's check of a parsed token or number, in one statement with the caller's token.

    Answers the caller's row (apitokens.CALLER_RESULT's columns; None without a token of that
    hash) and the result for the token's provider. Whether the token is live is for
    apitokens.caller_from_row to say: the result must not be shown otherwise.
    """
    params = {"code": parsed.value, "token_hash": token_hash, "on": on}
    rows = _CALLER_STATEMENTS[str(parsed.kind)].rows(params)
    if not rows:
        return None, None
    return rows[0], result_from_rows(rows, rows[0].token_provider_id, on)


def rows_with_session_user(parsed: ParsedCode, user_id: int, on: date) -> Sequence[Any]:
    """The session's user (auth_session.SESSION_USER_RESULT's columns) and the check of a token.

    The check is for the user's provider if the user is an active provider's, else the public
    one; no row without such a user. `result_from_rows` makes the result.
    """
    params = {"code": parsed.value, "user_id": user_id, "on": on}
    return _SESSION_USER_STATEMENT.rows(params)


def result_from_rows(rows: Sequence[Any], provider_id: int | None, on: date) -> CheckResult:
    """The result from the rows of a check's statement (no pass columns: not found)."""
    if not rows or rows[0].id is None:
        return CheckResult("not_found", "unknown")
    pass_row = rows[0]
    status, since = pass_status(pass_row, on)
    result = CheckResult(status, status, since=since, pass_id=pass_row.id)
    if status != "valid":
        return result
    result.valid_from = pass_row.valid_from
    result.valid_until = pass_row.valid_until
    if provider_id is None:
        return result
    ages = children_ages(pass_row, on)
    holders = pass_row.holders or []
    result.holders = [f"{h['first_name']} {h['last_name']}" for h in holders]
    result.children_ages = ages
    result.number_hint = number_hint(pass_row.number)
    adults = min(2, len(holders))
    result.offers = [_allowance(row, adults, ages) for row in rows if row.offer_id is not None]
    return result


def status_word(status: str) -> str:
    """The big word of a result: GÜLTIG, ABGELAUFEN, GESPERRT, ERSETZT, NICHT GEFUNDEN."""
    # Only the word shown is translated (not all six on every result page).
    words = {
        "valid": lambda: _("GÜLTIG"),
        "expired": lambda: _("ABGELAUFEN"),
        "not_yet_valid": lambda: _("NOCH NICHT GÜLTIG"),
        "revoked": lambda: _("GESPERRT"),
        "replaced": lambda: _("ERSETZT"),
    }
    word = words.get(status)
    return word() if word is not None else _("NICHT GEFUNDEN")


@lru_cache(maxsize=512)
def _medium_date(day: date, locale: str) -> str:
    # The dates a check names are few (the editions' last days, a few status changes), and Babel
    # reads its locale data on every call: remembering the text saves most of a check's formatting.
    return babel_format_date(day, "medium", locale=locale)


@lru_cache(maxsize=1024)
def _short_day(day: date, locale: str) -> str:
    return babel_format_date(day, "short", locale=locale)


@lru_cache(maxsize=2048)
def _short_clock(hour: int, minute: int, locale: str) -> str:
    return babel_format_time(time(hour, minute), "short", locale=locale)


@lru_cache(maxsize=16)
def _short_pattern(locale: str) -> str:
    return str(get_datetime_format("short", locale=locale)).replace("'", "")


def format_short_moment(moment: datetime) -> str:
    """Babel's format_datetime(moment, "short", tzinfo=BERLIN) in the current language.

    Put together as Babel does it (the language's date-time pattern with its short date and
    short time), from parts remembered per day and per minute: Babel reads its locale data on
    every call, and a check result names the last redemption of every offer used this edition.
    """
    local = moment.astimezone(BERLIN)
    code = locale_code()
    return (
        _short_pattern(code)
        .replace("{0}", _short_clock(local.hour, local.minute, code))
        .replace("{1}", _short_day(local.date(), code))
    )


def format_day(day: date) -> str:
    """A date as Flask-Babel's format_date(day, "medium") writes it in the current language."""
    return _medium_date(day, locale_code())


def status_message(result: CheckResult) -> str:
    """The reason in a sentence, for the page and the API."""
    since = format_day(result.since) if result.since else None
    if result.status == "valid":
        until = format_day(result.valid_until) if result.valid_until else ""
        return _("Gültiger Kyffikus-Familienpass, gültig bis %(date)s.", date=until)
    if result.status == "expired":
        return _("Dieser Familienpass ist seit %(date)s abgelaufen.", date=since or "")
    if result.status == "not_yet_valid":
        return _("Dieser Familienpass gilt erst ab %(date)s.", date=since or "")
    if result.status == "revoked":
        if since:
            return _("Dieser Familienpass wurde am %(date)s gesperrt.", date=since)
        return _("Dieser Familienpass wurde gesperrt.")
    if result.status == "replaced":
        return _(
            "Dieser Familienpass wurde durch einen neuen ersetzt (z. B. nach Verlust). "
            "Bitte lassen Sie sich den neuen Pass zeigen."
        )
    if result.reason == "typo":
        return _(
            "Die Passnummer stimmt nicht: Das Prüfzeichen passt nicht. Vermutlich ein Tippfehler – "
            "bitte prüfen Sie die Eingabe."
        )
    if result.reason == "malformed":
        return _("Dieser Code ist kein Kyffikus-Familienpass.")
    return _("Zu diesem Code gibt es keinen Kyffikus-Familienpass.")


def used_message(allowance: OfferAllowance) -> str | None:
    """How the offer's allowance stands, in words ("heute um 10:42 eingelöst")."""
    if allowance.limit == "per_day" and allowance.count and allowance.last_used_at:
        return _(
            "Heute bereits eingelöst um %(time)s Uhr.",
            time=f"{allowance.last_used_at.astimezone(BERLIN):%H:%M}",
        )
    if allowance.limit == "per_edition" and allowance.count and allowance.last_used_at:
        return _(
            "In dieser Ausgabe bereits eingelöst am %(date)s.",
            date=format_short_moment(allowance.last_used_at),
        )
    if allowance.limit == "unlimited" and allowance.total:
        return _("Bisher %(count)d-mal eingelöst.", count=allowance.total)
    return None
