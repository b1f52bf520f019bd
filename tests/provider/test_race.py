"""Two (or twenty-four) tills redeeming the same once-per-day offer for the same pass at once.

This cannot run inside the test's rolled-back transaction: every till has its own connection and
really commits. The data is committed through an engine of its own and deleted after
(tests/committed.py).
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import scoped_session, sessionmaker

from kyffikus.extensions import db
from kyffikus.models import Offer, Pass, User, berlin_today
from kyffikus.services import Conflict
from kyffikus.services.redemptions import redeem_offer
from tests.committed import (
    Committed,
    Tills,
    commit_tills,
    committed_rows,
    database_url,
    run_together,
)
from tests.conftest import postgres_only

TILLS = 24


@pytest.fixture
def committed(_session_app: Flask) -> Iterator[Committed]:
    """An engine with a connection for every till; what the test commits is deleted after."""
    url = database_url(_session_app)
    with committed_rows(url, pool_size=TILLS + 4, max_overflow=0) as rows:
        yield rows


@pytest.fixture
def tills(committed: Committed) -> Tills:
    """A provider with TILLS people at the till, a daily offer and a pass, committed for real."""
    return commit_tills(committed, "Rennen", TILLS)


@pytest.fixture
def thread_sessions(committed: Committed, monkeypatch: pytest.MonkeyPatch) -> scoped_session[Any]:
    """db.session as one session (and connection) per thread, on the committed rows' engine."""
    sessions = scoped_session(
        sessionmaker(bind=committed.engine, expire_on_commit=False), scopefunc=threading.get_ident
    )
    monkeypatch.setattr(db, "session", sessions)
    return sessions


def _load(tills: Tills, user_index: int) -> tuple[Pass, Offer, User]:
    """The pass, the offer (with its edition) and one till's user, in this thread's session."""
    pass_ = db.session.get(Pass, tills.pass_id)
    offer = db.session.get(Offer, tills.offer_id)
    user = db.session.get(User, tills.user_ids[user_index])
    assert pass_ is not None
    assert offer is not None
    assert user is not None
    _edition = offer.edition  # loaded before the start, so all tills insert at once
    return pass_, offer, user


@postgres_only
def test_racing_tills_record_exactly_one_daily_redemption(
    _session_app: Flask,  # noqa: PT019 - the app whose services the tills call
    committed: Committed,
    tills: Tills,
    thread_sessions: scoped_session[Any],
) -> None:
    today = berlin_today()

    def till(i: int, start: Callable[[], None]) -> str:
        try:
            with _session_app.test_request_context():
                pass_, offer, user = _load(tills, i)
                start()
                try:
                    redeem_offer(pass_, offer, 1, 1, user, f"till-{i}-{uuid.uuid4().hex}", today)
                    db.session.commit()
                except Conflict:
                    db.session.rollback()
                    return "conflict"
                return "recorded"
        finally:
            thread_sessions.remove()

    outcomes, errors = run_together(TILLS, till)
    rows = committed.redemptions(tills.pass_id)
    print(
        f"\nrace: tried {TILLS}, recorded {outcomes['recorded']}, conflicts {outcomes['conflict']}, "
        f"errors {outcomes['error']}, rows in the database {rows}"
    )
    assert errors == []
    assert outcomes == Counter({"recorded": 1, "conflict": TILLS - 1})
    assert rows == 1


@postgres_only
def test_racing_retries_with_one_key_answer_one_redemption(
    _session_app: Flask,  # noqa: PT019 - the app whose services the retries call
    committed: Committed,
    tills: Tills,
    thread_sessions: scoped_session[Any],
) -> None:
    """The same request sent by several threads at once (a retrying client) is recorded once."""
    n = 8
    today = berlin_today()

    def retry(_i: int, start: Callable[[], None]) -> str:
        try:
            with _session_app.test_request_context():
                pass_, offer, user = _load(tills, 0)
                start()
                redemption = redeem_offer(pass_, offer, 1, 0, user, "same-key-for-all", today)
                db.session.commit()
                return str(redemption.id)
        finally:
            thread_sessions.remove()

    outcomes, errors = run_together(n, retry)
    print(f"\nretries: tried {n}, answers {dict(outcomes)}, errors {errors}")
    assert errors == []
    # Every thread answers with the id of the one redemption recorded.
    assert len(outcomes) == 1
    assert next(iter(outcomes)).isdigit()
    assert sum(outcomes.values()) == n
    assert committed.redemptions(tills.pass_id) == 1
