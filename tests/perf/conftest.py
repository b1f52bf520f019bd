"""Shared by the performance tests: the statements a request sends, and an edition covering today."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from kyffikus.extensions import db
from kyffikus.models import Edition, berlin_today


@contextmanager
def sent_statements() -> Iterator[list[str]]:
    """The statements the app sends inside the block (the test's own savepoints left out).

    The test shares one session with the app; emptying it first makes every request start from
    nothing, as each request does in production.
    """
    db.session.expunge_all()
    seen: list[str] = []

    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "SAVEPOINT" not in statement:
            seen.append(" ".join(statement.split())[:160])

    event.listen(db.engine, "before_cursor_execute", _record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", _record)


@pytest.fixture
def current_edition(make_edition: Callable[..., Edition]) -> Edition:
    """An edition from 300 days ago until 300 days ahead: the directory's current one."""
    today = berlin_today()
    return make_edition(
        valid_from=today - timedelta(days=300), valid_until=today + timedelta(days=300)
    )
