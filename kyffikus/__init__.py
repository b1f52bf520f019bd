"""Kyffikus: the digital family pass of the Kyffhäuserkreis."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from kyffikus.config import DEFAULTS, REPO_ROOT, finalise

__all__ = ["create_app"]


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, extensions, blueprints, CLI and error handlers."""
    app = Flask(
        __name__,
        template_folder=str(REPO_ROOT / "templates"),
        instance_path=os.environ.get("KYFFIKUS_INSTANCE_PATH", str(REPO_ROOT / "instance")),
        instance_relative_config=True,
    )
    app.config.update(DEFAULTS)
    app.config.from_prefixed_env(prefix="KYFFIKUS")
    if config:
        app.config.update(config)
    finalise(app.config, Path(app.instance_path))
    if app.config.get("PROXY_FIX"):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]

    from kyffikus.cookie_session import RememberingSessionInterface

    app.session_interface = RememberingSessionInterface()
    _configure_logging(app)
    _init_extensions(app)
    _register_blueprints(app)

    from kyffikus import web

    web.init_app(app)

    from kyffikus import input_guard

    input_guard.init_app(app)

    from kyffikus import compression, static_assets

    static_assets.init_app(app)
    compression.init_app(app)

    from kyffikus.cli import register_cli

    register_cli(app)
    return app


def _configure_logging(app: Flask) -> None:
    """Log to stderr at INFO; personal data never goes into a log line."""
    level = app.config.get("LOG_LEVEL", "INFO")
    logging.getLogger("kyffikus").setLevel(level)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Alembic announces each plugin at INFO on every CLI command; that buries what `make run` prints.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _init_extensions(app: Flask) -> None:
    """Bind the extensions created in kyffikus.extensions."""
    from kyffikus import auth_session, readonly
    from kyffikus.extensions import (
        babel,
        csrf,
        db,
        limiter,
        login_manager,
        migrate,
        skip_limiter_for_unlimited_views,
    )
    from kyffikus.i18n import install_template_gettext, locale_selector, select_timezone

    db.init_app(app)
    _sqlite_foreign_keys(app)
    _idle_ping(app)
    migrate.init_app(app, db, directory=str(REPO_ROOT / "migrations"))
    csrf.init_app(app)
    babel.init_app(app, locale_selector=locale_selector, timezone_selector=select_timezone)
    install_template_gettext(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    limiter.init_app(app)
    skip_limiter_for_unlimited_views(app)
    login_manager.init_app(app)
    auth_session.init_app(app, login_manager)
    # First of the hooks so far (the QR image's 304, which needs no database, goes ahead of it).
    readonly.init_app(app)


def _idle_ping(app: Flask) -> None:
    """PostgreSQL: ping pooled connections only after they sat idle (kyffikus.dbpool)."""
    seconds = float(app.config["DB_PING_IDLE_SECONDS"])
    if seconds <= 0 or not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return
    from kyffikus.dbpool import install_idle_ping
    from kyffikus.extensions import db

    with app.app_context():
        install_idle_ping(db.engine, seconds)


def _sqlite_foreign_keys(app: Flask) -> None:
    """SQLite enforces foreign keys only when asked, on every connection."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return

    @event.listens_for(Engine, "connect")
    def _fk_on(dbapi_connection: Any, _record: Any) -> None:
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            # SQLite's lower() folds ASCII only; the directory's search must match "Ü" with "ü"
            # as on PostgreSQL, so lower() is replaced by Python's Unicode-aware str.lower.
            dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)


def _unicode_lower(value: Any) -> Any:
    """lower() for SQLite: Unicode-aware like PostgreSQL's; other types unchanged."""
    return value.lower() if isinstance(value, str) else value


def _register_blueprints(app: Flask) -> None:
    """Register every audience's blueprint explicitly."""
    from kyffikus.api.checks import bp as api_checks_bp
    from kyffikus.api.views import bp as api_bp
    from kyffikus.auth.views import bp as auth_bp
    from kyffikus.family.views import bp as family_bp
    from kyffikus.health import bp as health_bp
    from kyffikus.provider.verify import bp as verify_bp
    from kyffikus.provider.views import bp as provider_bp
    from kyffikus.public.views import bp as public_bp
    from kyffikus.staff.auditlog import bp as staff_audit_bp
    from kyffikus.staff.passes import bp as staff_passes_bp
    from kyffikus.staff.review import bp as review_bp
    from kyffikus.staff.stats import bp as staff_stats_bp
    from kyffikus.staff.views import bp as staff_bp

    app.register_blueprint(public_bp)
    app.register_blueprint(auth_bp, url_prefix="/konto")
    app.register_blueprint(family_bp, url_prefix="/familie")
    app.register_blueprint(provider_bp, url_prefix="/anbieter")
    app.register_blueprint(staff_bp, url_prefix="/verwaltung")
    app.register_blueprint(staff_audit_bp, url_prefix="/verwaltung/protokoll")
    app.register_blueprint(staff_passes_bp, url_prefix="/verwaltung/paesse")
    app.register_blueprint(review_bp, url_prefix="/verwaltung/antraege")
    app.register_blueprint(staff_stats_bp, url_prefix="/verwaltung/statistik")
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    app.register_blueprint(api_checks_bp, url_prefix="/api/v1")
    app.register_blueprint(verify_bp)
    app.register_blueprint(health_bp)
