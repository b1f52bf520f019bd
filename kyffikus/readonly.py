"""Views that write nothing end their transaction with COMMIT, so PostgreSQL keeps its plans.

psycopg prepares a statement on the server after its fifth execution on a connection, and then
PostgreSQL no longer parses and plans it on every call (for the check's statement: 0.08 ms of
database CPU instead of 0.5 ms). But psycopg forgets every prepared statement of a connection at
each ROLLBACK (a ROLLBACK may undo DDL the statements depend on), and every request that does not
commit ends in one: the session is closed with a rollback. A read-only request would therefore
never get a prepared statement. A COMMIT costs the same round trip, and a later rollback of the
idle connection (when it returns to the pool) sends nothing.

`@read_only` marks the hot views that write nothing. After the view has rendered its answer, their
transaction is committed, but only if nothing was written in it: no pending changes and no flush
since it began (a flush is where the ORM writes). Anything else is left to the view's own commit
or to the rollback at the end of the request, as before.

On PostgreSQL such a request goes further: before its first statement (the session's user or the
API token is loaded before the view runs), `init_app`'s hook takes the connection in autocommit
(kyffikus.hotsql.begin_read_only), so neither BEGIN nor COMMIT is sent at all. Every statement
then is its own transaction, which changes nothing for reads under READ COMMITTED (each
statement sees its own snapshot either way); the rare single-row touch such a request writes
(an API token's last use) is committed by its statement.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, current_app, request
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from kyffikus.extensions import db
from kyffikus.hotsql import AUTOCOMMIT_INFO, begin_read_only, close_request_connection

F = TypeVar("F", bound=Callable[..., Any])

_FLUSHED = "kyffikus.flushed"
_MARK = "kyffikus_read_only"
_HOT = "kyffikus_hot_sql"


@event.listens_for(Session, "after_begin")
def _transaction_began(
    session: Session, _transaction: SessionTransaction, _connection: Any
) -> None:
    session.info.pop(_FLUSHED, None)


@event.listens_for(Session, "after_transaction_end")
def _transaction_ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost one: its connection goes back to the pool
        session.info.pop(AUTOCOMMIT_INFO, None)


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _flush_context: Any) -> None:
    session.info[_FLUSHED] = True


def end_read_only() -> None:
    """Commit the session's transaction if it wrote nothing (see the module's docstring)."""
    if not db.session.registry.has():
        return  # the request never used the ORM session (its statements were hot ones)
    session = db.session()
    if not session.in_transaction() or session.info.get(_FLUSHED):
        return
    if session.info.get(AUTOCOMMIT_INFO):
        return  # nothing to end: every statement was its own transaction
    if session.new or session.dirty or session.deleted:
        return
    session.commit()


def read_only(view: F) -> F:
    """A view that writes nothing: its transaction ends with COMMIT instead of ROLLBACK."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        response = view(*args, **kwargs)
        end_read_only()
        return response

    # functools.wraps copies the mark onto the decorators wrapped around this one.
    setattr(wrapped, _MARK, True)
    return wrapped  # type: ignore[return-value]


def hot_sql(view: F) -> F:
    """A read-only view whose statements are all kyffikus.hotsql ones (the till's checks).

    They run on the request's own connection in autocommit, so the ORM session is not taken in
    autocommit ahead of them (it stays unused, or begins a transaction as usual if something
    needs the ORM after all).
    """
    setattr(view, _HOT, True)
    return view


def _begin_if_read_only() -> None:
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and getattr(view, _MARK, False) and not getattr(view, _HOT, False):
        begin_read_only()


def init_app(app: Flask) -> None:
    """Start read-only views' requests in autocommit, before any other hook loads the user."""
    app.before_request_funcs.setdefault(None, []).insert(0, _begin_if_read_only)
    app.teardown_appcontext(close_request_connection)
