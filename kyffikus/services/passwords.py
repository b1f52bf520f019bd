"""Passwords: argon2id hashing and the policy (length, common-password list; no composition rules)."""

from __future__ import annotations

import contextlib
import gzip
from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import gettext as _

MIN_LENGTH = 10
MAX_LENGTH = 256


def hasher() -> PasswordHasher:
    """The argon2id hasher with the configured parameters."""
    cfg = current_app.config
    return _hasher(cfg["ARGON2_TIME_COST"], cfg["ARGON2_MEMORY_COST"], cfg["ARGON2_PARALLELISM"])


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
    )


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return hasher().hash(password)


# A fixed hash to verify against when no user exists, so timing does not reveal accounts.
_DUMMY: dict[tuple[int, int, int], str] = {}


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; always spends the same work, even without a stored hash."""
    h = hasher()
    if not password_hash:
        key = (h.time_cost, h.memory_cost, h.parallelism)
        if key not in _DUMMY:
            _DUMMY[key] = h.hash("kyffikus-dummy-password")
        with contextlib.suppress(VerificationError, InvalidHashError):
            h.verify(_DUMMY[key], password + "x")
        return False
    try:
        return h.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords (lower case)."""
    data = resources.files("kyffikus") / "data"
    with (
        (data / "common-passwords.txt.gz").open("rb") as raw,
        gzip.open(raw, "rt", encoding="utf-8") as fh,
    ):
        words = {line.strip().lower() for line in fh if line.strip()}
    words |= {
        line.strip().lower()
        for line in (data / "common-passwords-de.txt").read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    return frozenset(words)


def password_problem(password: str, *, email: str | None = None) -> str | None:
    """Why a new password is refused (localised), or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return _("Das Passwort muss mindestens %(n)d Zeichen lang sein.", n=MIN_LENGTH)
    if len(password) > MAX_LENGTH:
        return _("Das Passwort darf höchstens %(n)d Zeichen lang sein.", n=MAX_LENGTH)
    if password.lower() in common_passwords():
        return _(
            "Dieses Passwort ist zu verbreitet und leicht zu erraten. Bitte wählen Sie ein anderes."
        )
    if email and password.lower() == email.lower():
        return _("Das Passwort darf nicht Ihre E-Mail-Adresse sein.")
    return None
