"""Pooled PostgreSQL connections are tested before use only when they sat idle for a while.

SQLAlchemy's pool_pre_ping sends a `SELECT 1` on every checkout: one more round trip for every
request, the cheapest ones most of all (a check at the till costs two statements). A connection
used less than DB_PING_IDLE_SECONDS ago (default 1 s) is handed out as it is; one idle for longer
is pinged first, and a dead one is replaced before the request sees it (the pool's own retry of a
checkout, as with pre-ping). Under load every connection is back in use within milliseconds, so
no ping is sent; on a quiet day every request pings, as before.

What this gives up: if the database restarts within the second after a connection's last use,
the first statement on that connection fails. SQLAlchemy then throws away the whole pool, the
request answers 503 ("try again"), and the next request connects afresh.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

_IDLE_SINCE = "kyffikus.idle_since"


def install_idle_ping(engine: Engine, seconds: float) -> None:
    """Ping a pooled connection on checkout only when it has been idle for `seconds` or more."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < seconds:
            return  # new, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any driver error: the pool replaces the connection
            raise DisconnectionError("a pooled connection no longer answers") from exc
