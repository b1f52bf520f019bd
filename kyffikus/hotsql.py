"""The hottest read-only statements, sent straight to the database driver on PostgreSQL.

Every check at every till runs two statements: its API token (or session user) and the check
itself. Through SQLAlchemy each costs about as much Python as the database needs to answer it
(the session's transaction, the statement's cache key, the result's metadata and row processors),
and every read-only request spends two more round trips on BEGIN and COMMIT. Here:

- `begin_read_only()`, called before a hot read-only request's first statement, takes the
  session's connection in autocommit: each statement is its own transaction, so no BEGIN and no
  COMMIT are sent. SQLAlchemy puts the connection back into transaction mode when it returns to
  the pool, so the next request that writes gets its transaction as always. psycopg keeps its
  prepared statements (it forgets them only at a ROLLBACK, and there is none).
- `rows()` runs one plain SQL statement on the session's connection with psycopg directly:
  prepared by psycopg after a few runs, rows as named tuples of a class made once. SQLAlchemy's statement events
  (before and after) still fire (the query-count tests count these statements too), and a driver error is handled
  by SQLAlchemy as if it had sent the statement: a lost connection invalidates the pool, and the
  error is SQLAlchemy's (the outage handler answers 503).

Other databases (SQLite in development and tests) and a session bound to a connection of its own
(the test suite's savepoints) take the SQLAlchemy path with the same statement, so the answers are
the same everywhere; `rows()` converts the few types psycopg gives differently (timestamps to
aware UTC, as UTCDateTime does).
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from flask import g
from psycopg.rows import tuple_row
from psycopg.types.string import TextLoader
from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.selectable import TextualSelect

from kyffikus.extensions import db

_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}
AUTOCOMMIT_INFO = "kyffikus.autocommit"
_REQUEST_CONNECTION = "kyffikus_hot_connection"
_CURSOR = "kyffikus.hot_cursor"
_DIALECT = PGDialect_psycopg()


def driver_sql(statement: TextualSelect) -> str:
    """A text() statement as SQLAlchemy would send it to psycopg (`:name` as `%(name)s`)."""
    return str(statement.compile(dialect=_DIALECT))


def _direct(session: Any) -> bool:
    bind = session.get_bind()
    return isinstance(bind, Engine) and bind.dialect.name == "postgresql"


def begin_read_only() -> None:
    """Take the session's connection in autocommit for a request that writes nothing.

    Call it before the request's first statement. A session that is already in a transaction,
    bound to a connection of its own, or on another database is left as it is.
    """
    session = db.session()
    if session.in_transaction() or not _direct(session):
        return
    session.connection(execution_options=_AUTOCOMMIT)
    session.info[AUTOCOMMIT_INFO] = True  # until the session's transaction ends


def _connection_for_hot_statement() -> Connection | None:
    """Where a hot statement runs: None for the SQLAlchemy path, else a connection for psycopg.

    The request's ORM transaction if it has one (its pending changes flushed first: text
    statements do not autoflush, and e.g. a redemption of this request must count); else, on
    PostgreSQL, the request's own connection in autocommit, outside the ORM session altogether
    (no session to create, begin and close for a request that needs none).
    """
    registry = db.session.registry
    session = registry() if registry.has() else None
    if session is not None and (
        session.in_transaction() or session.new or session.dirty or session.deleted
    ):
        if not _direct(session):
            return None
        session.flush()
        return session.connection()
    bind = db.session.session_factory.kw.get("bind")
    if bind is not None and not isinstance(bind, Engine):
        return None  # a session bound to a connection of its own (the test suite's savepoints)
    engine = db.engine
    if engine.dialect.name != "postgresql":
        return None
    connection: Connection | None = g.get(_REQUEST_CONNECTION)
    if connection is None or connection.closed:
        connection = engine.connect()
        # Autocommit set on the driver's connection directly (SQLAlchemy's isolation_level
        # option costs more Python than the statement): put back when the connection returns.
        connection.connection.driver_connection.autocommit = True
        setattr(g, _REQUEST_CONNECTION, connection)
    return connection


def close_request_connection(_exc: BaseException | None = None) -> None:
    """At the end of a request: the hot statements' own connection goes back to the pool,
    in transaction mode again (or thrown away if it cannot be put back so)."""
    connection = g.pop(_REQUEST_CONNECTION, None)
    if connection is None:
        return
    try:
        if not connection.invalidated:
            connection.connection.driver_connection.autocommit = False
    except Exception:  # e.g. the server went away: nobody must get this connection again
        connection.invalidate()
    finally:
        connection.close()


class HotStatement:
    """One plain SQL statement with its typed SQLAlchemy twin (for other databases)."""

    def __init__(self, statement: TextualSelect, utc_columns: Sequence[str] = ()) -> None:
        self.statement = statement
        self.driver_sql = driver_sql(statement)
        names = [c.key for c in statement.selected_columns]
        # The rows' class, made once: psycopg need not describe the columns on every run.
        self.row_class = namedtuple("Row", names)  # type: ignore[misc]  # noqa: PYI024
        self.utc_positions = [names.index(name) for name in utc_columns]
        # JSON columns come from the driver as text and are parsed here, once per distinct text:
        # a check repeats the pass's columns on every offer's row.
        self.json_positions = [
            i for i, c in enumerate(statement.selected_columns) if isinstance(c.type, JSON)
        ]

    def rows(self, params: Mapping[str, Any]) -> Sequence[Any]:
        """The statement's rows (attribute access by column name)."""
        connection = _connection_for_hot_statement()
        if connection is None:
            return db.session.execute(self.statement, params).all()
        make = self.row_class._make
        found = self._run(connection, params)
        if not self.utc_positions and not self.json_positions:
            return [make(values) for values in found]
        parsed: dict[str, Any] = {}
        return [make(self._converted(values, parsed)) for values in found]

    def _converted(self, row: tuple[Any, ...], parsed: dict[str, Any]) -> list[Any]:
        """A driver row as SQLAlchemy's typed columns give it: aware UTC times, parsed JSON."""
        values = list(row)
        for position in self.utc_positions:
            value = values[position]
            if isinstance(value, datetime):
                values[position] = value.astimezone(UTC)
        for position in self.json_positions:
            value = values[position]
            if isinstance(value, str):
                if value not in parsed:
                    parsed[value] = json.loads(value)
                values[position] = parsed[value]
        return values

    def _run(self, connection: Connection, params: Mapping[str, Any]) -> list[Any]:
        cursor = _cursor(connection)
        statement, parameters = self.driver_sql, dict(params)
        events = connection._has_events or connection.engine._has_events  # noqa: SLF001
        try:
            if events:
                connection.dispatch.before_cursor_execute(
                    connection, cursor, statement, parameters, None, False
                )
            cursor.execute(statement, parameters)
            if events:
                connection.dispatch.after_cursor_execute(
                    connection, cursor, statement, parameters, None, False
                )
            return cursor.fetchall()
        except Exception as exc:  # a driver error: SQLAlchemy's handling, SQLAlchemy's error
            connection.connection.info.pop(_CURSOR, None)
            cursor.close()
            connection._handle_dbapi_exception(exc, statement, parameters, cursor, None)  # noqa: SLF001
            raise  # not reached: the handler raises


def _cursor(connection: Connection) -> Any:
    """The pooled connection's own cursor for hot statements, made once per driver connection.

    A psycopg cursor learns how to read each column type of the results it sees; a cursor made
    for every statement learns the check's 26 columns anew each time (a third of the statement's
    client CPU). The cursor lives in the pooled connection's info, which lives as long as the
    driver connection; a request uses the connection alone, so nobody shares the cursor.
    """
    raw = connection.connection.driver_connection
    info = connection.connection.info
    cursor = info.get(_CURSOR)
    if cursor is None or cursor.closed or cursor.connection is not raw:
        cursor = info[_CURSOR] = raw.cursor(row_factory=tuple_row)
        # JSON as text: HotStatement parses each distinct value once (see json_positions).
        for name in ("json", "jsonb"):
            cursor.adapters.register_loader(name, TextLoader)
    return cursor
