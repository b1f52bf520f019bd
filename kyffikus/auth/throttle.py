"""Login throttling: only FAILED logins are counted, in three budgets, so a guesser is stopped and
the owner is not.

A budget per account alone let anybody lock the owner out by guessing at the account from
anywhere. Instead, like careful services:

- per address (LOGIN_RATE_LIMIT, 10 a minute and 50 an hour; the decorator on the login view):
  one address guessing at many accounts. Everybody behind that address (a school, a mobile
  network) shares it, so it cannot be tight.
- per account from one address (LOGIN_ACCOUNT_ADDRESS_RATE_LIMIT, 5 a minute and 10 an hour):
  one address guessing at one account. Failures from address A never block the owner at B.
- per account from all addresses (LOGIN_ACCOUNT_RATE_LIMIT, 50 an hour and 300 a day): guessing
  spread over many addresses. One address cannot reach it (10 in each of its hours, so at most
  20 in any hour and 250 in a day), a handful of them can. Once spent it refuses the right
  password too (an answer that let the right guess in would tell the guesser it was right), and
  the owner gets back in through the password-reset mail: setting a password through a mailed
  link clears this budget and the account's budget at the address the link is opened from.

An unknown e-mail address is counted and refused exactly like a known one, so the answers do not
tell which addresses have accounts. Keys are hashes: Redis keeps them and Flask-Limiter logs them,
and neither may hold an e-mail address. The counters live in Flask-Limiter's storage (Redis when
KYFFIKUS_RATELIMIT_STORAGE_URL is set), so `limiter.reset()` clears them too and
RATELIMIT_ENABLED=false switches them off like every other limit.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from functools import lru_cache

from flask import current_app
from flask_babel import gettext as _
from limits import RateLimitItem, parse_many

from kyffikus.extensions import limiter, remote_address
from kyffikus.models.people import User
from kyffikus.services import DomainError, accounts
from kyffikus.services.accounts import normalise_email

log = logging.getLogger("kyffikus.auth")

# Budget -> the setting with its limits; the tight budget first, so its refusal is the one reported.
BUDGETS = {
    "login-account-address": "LOGIN_ACCOUNT_ADDRESS_RATE_LIMIT",
    "login-account": "LOGIN_ACCOUNT_RATE_LIMIT",
}


class TooManyFailedLogins(DomainError):
    """An account budget is spent: refused before the password is checked."""

    code = "too_many_failed_logins"
    status = 429


def _hashed(kind: str, *parts: str) -> str:
    return f"{kind}:" + hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:32]


def email_key(email: str | None) -> str:
    """Throttle key of the account a form names: normalised (case tricks do not help), hashed."""
    return _hashed("email", normalise_email(email)[:320])


@lru_cache(maxsize=16)
def _windows(limit: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(limit))


def _counters(email: str | None) -> Iterator[tuple[str, RateLimitItem, list[str]]]:
    """Each window of both account budgets: budget, limit, and the identifiers of its counter."""
    config = current_app.config
    if not config.get("RATELIMIT_ENABLED", True):
        return
    prefix = [config["RATELIMIT_KEY_PREFIX"]] if config.get("RATELIMIT_KEY_PREFIX") else []
    account = normalise_email(email)[:320]
    keys = {
        "login-account-address": _hashed("email-addr", account, remote_address()),
        "login-account": email_key(email),
    }
    for budget, setting in BUDGETS.items():
        for item in _windows(str(config[setting])):
            yield budget, item, [*prefix, keys[budget], budget]


def authenticate(email: str | None, password: str | None) -> User:
    """accounts.authenticate within the account's budgets of failed logins (see the module)."""
    for budget, item, identifiers in _counters(email):
        if not limiter.limiter.test(item, *identifiers):
            # Neither the address nor the account goes into the log: the budget's name is enough.
            log.info("login refused: %s budget spent (%s)", budget, item)
            raise TooManyFailedLogins(
                _(
                    "Zu viele fehlgeschlagene Anmeldeversuche mit dieser E-Mail-Adresse. Bitte "
                    "versuchen Sie es später noch einmal. Wenn Sie Ihr Passwort vergessen haben "
                    "oder jetzt gleich hinein müssen: Über „Passwort vergessen?“ wählen Sie ein "
                    "neues, danach können Sie sich wieder anmelden."
                )
            )
    try:
        return accounts.authenticate(email, password)
    except DomainError:
        for _budget, item, identifiers in _counters(email):
            limiter.limiter.hit(item, *identifiers)
        raise


def forgive_failed_logins(user: User) -> None:
    """Clear the account's budgets after its owner set a password through a mailed link."""
    # Only the budget of the address the link is opened from: the others stay with their guessers.
    for _budget, item, identifiers in _counters(user.email):
        limiter.limiter.clear(item, *identifiers)
