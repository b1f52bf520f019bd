"""Providers' API tokens for scanner apps and till systems: shown once, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Boolean, Integer, String, column, select, text
from sqlalchemy.orm import joinedload

from kyffikus.extensions import db
from kyffikus.hotsql import HotStatement
from kyffikus.models.base import UTCDateTime, utcnow
from kyffikus.models.people import ApiToken, User
from kyffikus.services import DomainError, NotAllowed
from kyffikus.services.audit import record

PREFIX = "kyf_"
# 256 bits from `secrets`; the "kyf_" prefix lets secret scanners recognise a leaked token.
TOKEN_BYTES = 32
DISPLAY_PREFIX_LENGTH = 12
MAX_NAME = 100
# last_used_at is written at most once a minute, so a busy till does not write on every check.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_RAW = re.compile(r"kyf_[A-Za-z0-9_-]{20,100}", re.ASCII)


def hash_token(raw: str) -> str:
    """The SHA-256 hex digest stored for a raw token."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_token(user: User, name: str) -> tuple[ApiToken, str]:
    """A new token for the user's provider; the raw value is returned once and never stored."""
    if user.role != "provider" or user.provider_id is None:
        raise NotAllowed(_("Nur Anbieter können API-Schlüssel anlegen."))
    clean = (name or "").strip()
    if not clean:
        raise DomainError(_("Bitte geben Sie dem Schlüssel einen Namen."), field="name")
    if len(clean) > MAX_NAME:
        raise DomainError(
            _("Der Name darf höchstens %(max)d Zeichen lang sein.", max=MAX_NAME), field="name"
        )
    raw = PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    token = ApiToken(
        provider_id=user.provider_id,
        user_id=user.id,
        name=clean,
        token_hash=hash_token(raw),
        prefix=raw[:DISPLAY_PREFIX_LENGTH],
    )
    db.session.add(token)
    db.session.flush()
    record(user, "api_token.create", token, details={"name": clean, "prefix": token.prefix})
    return token, raw


def provider_tokens(provider_id: int) -> list[ApiToken]:
    """The provider's tokens, newest first (revoked ones included, marked)."""
    return list(
        db.session.scalars(
            select(ApiToken)
            .options(joinedload(ApiToken.user))
            .where(ApiToken.provider_id == provider_id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
    )


def own_token(provider_id: int, token_id: int) -> ApiToken | None:
    """The provider's token with this id, or None for another provider's or an unknown one."""
    if not 0 < token_id <= 2**31 - 1:
        return None
    token = db.session.get(ApiToken, token_id)
    return token if token is not None and token.provider_id == provider_id else None


def revoke_token(token: ApiToken, by: User, now: datetime) -> ApiToken:
    """Revoke a token of the user's own provider; it stops working at once."""
    if by.role != "provider" or by.provider_id != token.provider_id:
        raise NotAllowed(_("Dieser Schlüssel gehört nicht zu Ihrem Anbieter."))
    if token.revoked_at is None:
        token.revoked_at = now
        db.session.flush()
        record(by, "api_token.revoke", token, details={"name": token.name, "prefix": token.prefix})
    return token


# Every API request authenticates: one plain statement built once, columns only (no ORM objects,
# no per-call statement building). The ORM user is loaded only by the views that write. The check
# runs the same columns in front of its own (kyffikus.services.checks): one statement for both.
CALLER_SQL = (
    "t.id AS token_id, t.user_id AS token_user_id, t.provider_id AS token_provider_id, "
    "t.revoked_at AS token_revoked_at, t.last_used_at AS token_last_used_at, "
    "u.active AS user_active, u.role AS user_role, u.provider_id AS user_provider_id "
    "FROM api_token AS t JOIN user_account AS u ON u.id = t.user_id "
    "WHERE t.token_hash = :token_hash"
)
# In the selected order: SQLAlchemy then matches them by position and caches the matching.
CALLER_RESULT: list[tuple[str, Any]] = [
    ("token_id", Integer),
    ("token_user_id", Integer),
    ("token_provider_id", Integer),
    ("token_revoked_at", UTCDateTime()),
    ("token_last_used_at", UTCDateTime()),
    ("user_active", Boolean),
    ("user_role", String),
    ("user_provider_id", Integer),
]
CALLER_UTC_COLUMNS = ("token_revoked_at", "token_last_used_at")
_AUTHENTICATE = HotStatement(
    text("SELECT " + CALLER_SQL).columns(*(column(n, t) for n, t in CALLER_RESULT)),
    utc_columns=CALLER_UTC_COLUMNS,
)


def raw_token_shape(raw: Any) -> bool:
    """Whether a raw value can be a token at all (no query for anything else)."""
    return isinstance(raw, str) and bool(_RAW.fullmatch(raw))


@dataclass(frozen=True)
class ApiCaller:
    """Who an API request comes from: a live token of a provider's active user (ids only)."""

    token_id: int
    user_id: int
    provider_id: int
    # Whether authenticate() wrote last_used_at (flushed): the caller commits it.
    touched: bool = False

    @property
    def user(self) -> User:
        """The token's user as an ORM object (loaded by primary key on first use)."""
        user = db.session.get(User, self.user_id)
        if user is None:  # deleted since authenticate(); the token went with it (ON DELETE CASCADE)
            raise NotAllowed(_("Dieser API-Schlüssel gilt nicht mehr."))
        return user


def authenticate(raw: str, now: datetime | None = None) -> ApiCaller | None:
    """The live token for a raw value as an ApiCaller (one query, token and user joined); else None.

    last_used_at is written at most once a minute (flushed, for the caller to commit), so a busy
    till does not write on every check.
    """
    if not raw_token_shape(raw):
        return None
    rows = _AUTHENTICATE.rows({"token_hash": hash_token(raw)})
    return caller_from_row(rows[0], now) if rows else None


def caller_from_row(row: Any, now: datetime | None = None) -> ApiCaller | None:
    """The ApiCaller of a row with CALLER_RESULT's columns, if the token is live; else None."""
    if row.token_id is None or row.token_revoked_at is not None:
        return None
    if not row.user_active or row.user_role != "provider":
        return None
    if row.user_provider_id != row.token_provider_id:
        return None
    now = now or utcnow()
    touched = False
    last_used = row.token_last_used_at
    if last_used is None or now - last_used >= LAST_USED_RESOLUTION:
        token = db.session.get(ApiToken, row.token_id)
        if token is not None:
            token.last_used_at = now
            db.session.flush()
            touched = True
    return ApiCaller(row.token_id, row.token_user_id, row.token_provider_id, touched)
