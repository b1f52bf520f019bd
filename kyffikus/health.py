"""Health checks for the load balancer: /healthz (the process answers), /readyz (the database answers).

Both are polled every few seconds by every balancer, so they are cheap: no template, no session, no
rate limit. /readyz runs ``SELECT 1`` under a short statement timeout; the connection itself is bounded
by ``connect_timeout`` and ``pool_timeout`` (set for PostgreSQL in kyffikus.config.finalise).

With ``KYFFIKUS_BENCH_FLOOR=1`` the same blueprint also serves ``GET /bench/floor``, a bare route
that answers a short text through the full request stack: the floor that bench/run.py measures every
other route against. It does not exist otherwise.
"""

from __future__ import annotations

import contextlib
import logging

from flask import Blueprint, Response, current_app, jsonify
from flask.blueprints import BlueprintSetupState
from sqlalchemy import text

from kyffikus.extensions import db, not_limited

log = logging.getLogger("kyffikus.health")

bp = Blueprint("health", __name__)

# How long /readyz lets the database take for SELECT 1 (KYFFIKUS_READYZ_TIMEOUT_MS overrides it).
DEFAULT_READYZ_TIMEOUT_MS = 2000


def _status(status: str, code: int) -> Response:
    response = jsonify({"status": status})
    response.status_code = code
    # A balancer must see the live answer, never one a proxy kept.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
@not_limited
def healthz() -> Response:
    """The process answers (no database)."""
    return _status("ok", 200)


@bp.get("/readyz")
@not_limited
def readyz() -> Response:
    """The database answers SELECT 1 within a short timeout, else 503."""
    timeout_ms = int(current_app.config.get("READYZ_TIMEOUT_MS", DEFAULT_READYZ_TIMEOUT_MS))
    try:
        if db.session.get_bind().dialect.name == "postgresql":
            # SET LOCAL lasts only until the rollback below, so no pooled connection keeps it.
            db.session.execute(text(f"SET LOCAL statement_timeout = {timeout_ms:d}"))
        db.session.execute(text("SELECT 1")).scalar_one()
    except Exception as exc:  # any failure means "not ready"; the type is enough for the log
        log.warning("readiness check failed: %s", type(exc).__name__)
        _rollback_quietly()
        return _status("unavailable", 503)
    _rollback_quietly()
    return _status("ok", 200)


def _rollback_quietly() -> None:
    # The database may be the thing that is down.
    with contextlib.suppress(Exception):
        db.session.rollback()


def bench_floor() -> Response:
    """The benchmark's floor: a short text through the full request stack, nothing else."""
    return Response("ok\n", mimetype="text/plain")


@bp.record_once
def _register_bench_floor(state: BlueprintSetupState) -> None:
    # Only bench/run.py sets this; otherwise the route does not exist (and the route table test
    # never sees it).
    if str(state.app.config.get("BENCH_FLOOR", "")).lower() in ("1", "true"):
        state.add_url_rule("/bench/floor", "bench_floor", bench_floor, methods=["GET"])
