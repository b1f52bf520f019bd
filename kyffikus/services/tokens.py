"""Single-use tokens sent by e-mail (confirm, reset, invite): random, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import delete, select, update

from kyffikus.extensions import db
from kyffikus.models.base import utcnow
from kyffikus.models.people import User, UserToken
from kyffikus.services import DomainError

PURPOSES = ("confirm", "reset", "invite")

# Config keys holding each purpose's lifetime.
_MAX_AGE_KEYS = {
    "confirm": "CONFIRM_TOKEN_MAX_AGE",
    "reset": "RESET_TOKEN_MAX_AGE",
    "invite": "INVITE_TOKEN_MAX_AGE",
}

# A raw token is secrets.token_urlsafe(32): 43 URL-safe characters; anything far off is not ours.
_MAX_RAW_LENGTH = 100


class TokenError(DomainError):
    """An e-mailed link cannot be used: unknown, already used or expired (see .code)."""

    status = 400


def hash_token(raw: str) -> str:
    """The SHA-256 hex digest stored for a raw token."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def max_age(purpose: str) -> timedelta:
    """How long a token of this purpose stays valid (from the configuration)."""
    value = current_app.config[_MAX_AGE_KEYS[purpose]]
    return value if isinstance(value, timedelta) else timedelta(seconds=int(value))


def issue_token(user: User, purpose: str) -> str:
    """Create a token for the user and return the raw value (only its hash is stored).

    Older unused tokens of the same purpose are dropped, so only the newest link works.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    if user.id is None:
        db.session.flush()
    db.session.execute(
        delete(UserToken).where(
            UserToken.user_id == user.id,
            UserToken.purpose == purpose,
            UserToken.used_at.is_(None),
        )
    )
    raw = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(
        UserToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=hash_token(raw),
            created_at=now,
            expires_at=now + max_age(purpose),
        )
    )
    db.session.flush()
    return raw


def _find(raw: str, purpose: str) -> UserToken:
    """The token row for a raw value, or TokenError with a message for why it cannot be used."""
    if not raw or len(raw) > _MAX_RAW_LENGTH or "\x00" in raw:
        raise _unknown()
    token = db.session.scalars(
        select(UserToken).where(
            UserToken.token_hash == hash_token(raw), UserToken.purpose == purpose
        )
    ).first()
    if token is None:
        raise _unknown()
    if token.used_at is not None:
        raise TokenError(
            _("Dieser Link wurde bereits verwendet. Jeder Link funktioniert nur einmal."),
            code="token_used",
        )
    if token.expires_at <= utcnow():
        raise TokenError(
            _("Dieser Link ist abgelaufen. Bitte fordern Sie einen neuen Link an."),
            code="token_expired",
        )
    return token


def _unknown() -> TokenError:
    return TokenError(
        _(
            "Dieser Link ist ungültig. Bitte prüfen Sie, ob Sie ihn vollständig kopiert haben, "
            "und verwenden Sie den Link aus der neuesten E-Mail."
        ),
        code="token_unknown",
    )


def check_token(raw: str, purpose: str) -> User:
    """The user a usable token belongs to, without using it up (for showing the form on GET)."""
    token = _find(raw, purpose)
    user = db.session.get(User, token.user_id)
    if user is None:  # pragma: no cover - the foreign key cascades
        raise _unknown()
    return user


def consume_token(raw: str, purpose: str) -> User:
    """Use a token once and return its user; raises TokenError if unknown, used or expired."""
    token = _find(raw, purpose)
    now = utcnow()
    # A conditional UPDATE so two requests racing with the same link cannot both succeed.
    result = db.session.execute(
        update(UserToken)
        .where(UserToken.id == token.id, UserToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise TokenError(
            _("Dieser Link wurde bereits verwendet. Jeder Link funktioniert nur einmal."),
            code="token_used",
        )
    token.used_at = now
    user = db.session.get(User, token.user_id)
    if user is None:  # pragma: no cover - the foreign key cascades
        raise _unknown()
    return user


def drop_tokens(user: User, purpose: str) -> None:
    """Forget every unused token of a purpose (after a password change, older reset links die)."""
    db.session.execute(
        delete(UserToken).where(
            UserToken.user_id == user.id,
            UserToken.purpose == purpose,
            UserToken.used_at.is_(None),
        )
    )
