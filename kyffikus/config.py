"""Configuration: defaults here, then KYFFIKUS_* environment variables, then the test's dict."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """The configuration cannot run the app safely."""


DEFAULTS: dict[str, Any] = {
    # Database: SQLite in instance/ unless DATABASE_URL says otherwise (set in load_config).
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    "SQLALCHEMY_RECORD_QUERIES": False,
    # Public address used in QR codes and e-mails: <BASE_URL>/v/<token>.
    "BASE_URL": "http://127.0.0.1:5000",
    # Mail: make run prints mail to the console (MAIL_BACKEND=console); production uses SMTP.
    "MAIL_BACKEND": "smtp",
    "MAIL_SERVER": "127.0.0.1",
    "MAIL_PORT": 25,
    "MAIL_USE_TLS": False,
    "MAIL_USERNAME": None,
    "MAIL_PASSWORD": None,
    "MAIL_FROM": "Kyffikus <familienpass@kyffhaeuser.example>",
    "MAIL_TIMEOUT": 10,
    # Languages: German first, English second.
    "BABEL_DEFAULT_LOCALE": "de",
    "BABEL_DEFAULT_TIMEZONE": "Europe/Berlin",
    "LANGUAGES": ["de", "en"],
    "BABEL_TRANSLATION_DIRECTORIES": str(REPO_ROOT / "kyffikus" / "translations"),
    # Rate limits (Flask-Limiter); Redis when KYFFIKUS_RATELIMIT_STORAGE_URL is set.
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_HEADERS_ENABLED": True,
    "RATELIMIT_ENABLED": True,
    "CHECK_RATE_LIMIT": "60 per minute;600 per hour",
    # Failed logins (a success costs nothing; see kyffikus/auth/throttle.py): per address (also
    # wrong current passwords of a logged-in user), per account from one address (tight: stops a
    # guesser, not the owner elsewhere), per account from all addresses (loose: many guessers).
    "LOGIN_RATE_LIMIT": "10 per minute;50 per hour",
    "LOGIN_ACCOUNT_ADDRESS_RATE_LIMIT": "5 per minute;10 per hour",
    "LOGIN_ACCOUNT_RATE_LIMIT": "50 per hour;300 per day",
    # Forms that send mail (register, forgotten password, new confirmation link), per address and account.
    "MAIL_RATE_LIMIT": "5 per minute;20 per hour",
    # Entering a TOTP or recovery code, per account and per address.
    "SECOND_FACTOR_RATE_LIMIT": "5 per minute;20 per hour",
    # Sessions and cookies.
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # None: Secure in production, off for local http (decided in finalise).
    "SESSION_COOKIE_SECURE": None,
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
    # The cookie is written again when the session changes, not on every request: an active
    # session changes at least once a minute (seen_at, kyffikus.auth_session), so its expiry
    # still slides, and a scan at the till does not sign and send a new cookie each time.
    "SESSION_REFRESH_EACH_REQUEST": False,
    # Pages each worker keeps rendered (kyffikus.pagecache): the offer directory and the frame of
    # the check page, for this many seconds (0: off) and at most this many pages.
    "PAGE_CACHE_SECONDS": 60,
    "PAGE_CACHE_ENTRIES": 256,
    # PostgreSQL: a pooled connection idle this long is pinged before use (0: ping every checkout).
    "DB_PING_IDLE_SECONDS": 1.0,
    "STAFF_SESSION_IDLE": timedelta(hours=2),
    "STAFF_SESSION_ABSOLUTE": timedelta(hours=12),
    "FAMILY_SESSION_ABSOLUTE": timedelta(days=30),
    "WTF_CSRF_TIME_LIMIT": None,
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    # Security switches.
    # None: required in production, not for local work (decided in finalise); true/false overrides.
    "REQUIRE_STAFF_2FA": None,
    "PREFERRED_URL_SCHEME": "http",
    # Passwords: argon2id (RFC 9106 / OWASP: memory >= 19 MiB, time >= 2).
    "ARGON2_TIME_COST": 2,
    "ARGON2_MEMORY_COST": 19456,
    "ARGON2_PARALLELISM": 1,
    # Tokens sent by e-mail.
    "RESET_TOKEN_MAX_AGE": timedelta(hours=1),
    "CONFIRM_TOKEN_MAX_AGE": timedelta(days=2),
    "INVITE_TOKEN_MAX_AGE": timedelta(days=7),
    "REDEMPTION_UNDO_WINDOW": timedelta(minutes=15),
    # Retention (days), enforced by `flask --app kyffikus retention run`.
    "RETENTION_REJECTED_APPLICATION_DAYS": 180,
    "RETENTION_EXPIRED_PASS_DAYS": 365,
    "RETENTION_REDEMPTION_DAYS": 730,
    # Demo data is never loaded by itself in production.
    "DEMO": False,
}

_PREFIX = "KYFFIKUS_"


def _instance_secret(instance_path: Path) -> str:
    """Read the development SECRET_KEY from instance/, writing a random one on first use."""
    instance_path.mkdir(parents=True, exist_ok=True)
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32), encoding="utf-8")
        key_file.chmod(0o600)
    return key_file.read_text(encoding="utf-8").strip()


def is_production(config: dict[str, Any]) -> bool:
    """Production is anything that is neither debug nor testing nor an explicit dev environment."""
    return not (config.get("DEBUG") or config.get("TESTING") or config.get("ENV") == "development")


def finalise(config: dict[str, Any], instance_path: Path) -> None:
    """Fill in derived values and refuse configurations that are unsafe."""
    if not config.get("SQLALCHEMY_DATABASE_URI"):
        url = os.environ.get("DATABASE_URL")
        if url:
            if url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgres://")
            elif url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            config["SQLALCHEMY_DATABASE_URI"] = url
        else:
            instance_path.mkdir(parents=True, exist_ok=True)
            config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance_path / 'kyffikus.sqlite'}"
    if not config.get("SECRET_KEY"):
        if is_production(config):
            raise ConfigError(
                "KYFFIKUS_SECRET_KEY is not set. In production Kyffikus refuses to start without a "
                "secret key, because sessions, CSRF tokens and e-mailed links are signed with it. "
                "Set KYFFIKUS_SECRET_KEY to a long random value (python -c 'import secrets; "
                "print(secrets.token_hex(32))'), or set KYFFIKUS_ENV=development for local work."
            )
        config["SECRET_KEY"] = _instance_secret(instance_path)
    if config.get("SESSION_COOKIE_SECURE") is None:
        config["SESSION_COOKIE_SECURE"] = is_production(config) or config.get(
            "BASE_URL", ""
        ).startswith("https://")
    config["REMEMBER_COOKIE_SECURE"] = config["SESSION_COOKIE_SECURE"]
    if config.get("REQUIRE_STAFF_2FA") is None:
        # Issue 7 / SECURITY.md: two-factor sign-in for staff and admins is on in production.
        config["REQUIRE_STAFF_2FA"] = is_production(config)
    if config.get("RATELIMIT_STORAGE_URL"):
        # KYFFIKUS_RATELIMIT_STORAGE_URL=redis://... : every worker and host shares the counters.
        config["RATELIMIT_STORAGE_URI"] = config["RATELIMIT_STORAGE_URL"]
    uri = config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite"):
        # SQLite: no pool sizing options; pre-ping is harmless.
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            k: v for k, v in config["SQLALCHEMY_ENGINE_OPTIONS"].items() if k == "pool_pre_ping"
        }
    elif uri.startswith("postgresql"):
        opts = dict(config["SQLALCHEMY_ENGINE_OPTIONS"])
        if float(config["DB_PING_IDLE_SECONDS"]) > 0:
            # kyffikus.dbpool pings only connections idle for a while instead of every checkout.
            opts["pool_pre_ping"] = False
        connect_args = dict(opts.get("connect_args", {}))
        connect_args.setdefault("connect_timeout", 3)
        opts["connect_args"] = connect_args
        opts.setdefault("pool_timeout", 5)
        config["SQLALCHEMY_ENGINE_OPTIONS"] = opts
