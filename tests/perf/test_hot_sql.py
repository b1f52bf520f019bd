"""The till's statements straight to the driver (kyffikus.hotsql) and the pool's idle ping (kyffikus.dbpool).

On PostgreSQL a check sends its two statements (API token or user, then the check) through psycopg
directly, outside any transaction (no BEGIN, no COMMIT), and a pooled connection is pinged only
after it sat idle. These tests run an app of its own on committed rows, as production does (the
suite's savepoint session takes the SQLAlchemy path, which every other test covers).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from psycopg.pq import TransactionStatus

from kyffikus.extensions import db
from kyffikus.hotsql import driver_sql
from kyffikus.models import berlin_today
from kyffikus.services import checks
from tests.committed import Tills, app_of_its_own, commit_tills, committed_rows, database_url
from tests.conftest import login_as, postgres_only


def test_driver_sql_is_what_sqlalchemy_sends_to_psycopg() -> None:
    statement = sa.text(
        "SELECT a FROM t WHERE b = :code AND c::date = :on_day AND e LIKE '5%'"
    ).columns(sa.column("a", sa.Integer))
    assert driver_sql(statement) == (
        "SELECT a FROM t WHERE b = %(code)s AND c::date = %(on_day)s AND e LIKE '5%%'"
    )


@contextmanager
def _tills_app(
    session_app: Flask, smtp_port: int, **config: Any
) -> Iterator[tuple[Flask, Tills, Any]]:
    url = database_url(session_app)
    # A name of its own on the server, so a test can end exactly this app's connections.
    name = f"kyffikus-test-{uuid.uuid4().hex[:12]}"
    engine = {"connect_args": {"application_name": name}}
    with committed_rows(url) as committed:
        till = commit_tills(committed, "Kasse", 1, api_tokens=True)
        with app_of_its_own(url, smtp_port, SQLALCHEMY_ENGINE_OPTIONS=engine, **config) as app:
            app.config["TEST_APPLICATION_NAME"] = name
            yield app, till, committed


@pytest.fixture
def tills_app(
    _session_app: Flask,  # noqa: PT019 - its engine's URL names the test database
    smtp_server: Any,
) -> Any:
    """tills_app(**config): an app of its own with a committed till (app, till, committed)."""
    _box, smtp_port = smtp_server
    return lambda **config: _tills_app(_session_app, smtp_port, **config)


@contextmanager
def _statements(app: Flask) -> Iterator[list[tuple[str, Any]]]:
    """(statement, transaction status before it) for every statement the app sends."""
    seen: list[tuple[str, Any]] = []

    def _record(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        status = conn.connection.driver_connection.info.transaction_status
        seen.append((" ".join(statement.split())[:60], status))

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", _record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", _record)


def _api_check(app: Flask, till: Tills, code: str | None = None) -> Any:
    return app.test_client().post(
        "/api/v1/checks",
        json={"code": code or till.pass_token},
        headers={"Authorization": f"Bearer {till.api_tokens[0]}"},
    )


@postgres_only
def test_a_check_sends_its_statements_outside_any_transaction(tills_app: Any) -> None:
    with tills_app() as (app, till, _committed):
        _api_check(app, till)  # the token's last use is written once a minute: not measured
        with _statements(app) as seen:
            answer = _api_check(app, till)
            page = login_as(app.test_client(), till.users[0]).get(f"/v/{till.pass_token}")
        assert answer.status_code == 200
        assert answer.get_json()["status"] == "valid"
        assert page.status_code == 200
        assert "GÜLTIG" in page.get_data(as_text=True)
        # The API: its token and the check in one. The page: its user and the check in one.
        assert [s[:32] for s, _status in seen] == [
            "WITH caller AS (SELECT t.id AS t",
            "WITH su AS (SELECT id AS user_id",
        ]
        # Autocommit: no statement runs inside a transaction (none was begun).
        assert {status for _s, status in seen} == {TransactionStatus.IDLE}
        # Back in the pool, the connection is in transaction mode again for the next request.
        with app.app_context():
            connection = db.session.connection()
            assert connection.connection.driver_connection.autocommit is False
            db.session.execute(sa.text("SELECT 1"))
            status = connection.connection.driver_connection.info.transaction_status
            assert status == TransactionStatus.INTRANS
            db.session.rollback()


@postgres_only
def test_the_driver_path_answers_what_sqlalchemy_answers(tills_app: Any) -> None:
    with tills_app() as (app, till, _committed):
        redeem = app.test_client().post(
            "/api/v1/redemptions",
            json={
                "code": till.pass_token,
                "offer_id": till.offer_id,
                "adults": 1,
                "children": 1,
                "idempotency_key": f"hot-{uuid.uuid4().hex}",
            },
            headers={"Authorization": f"Bearer {till.api_tokens[0]}"},
        )
        assert redeem.status_code == 201
        with app.app_context():
            provider_id = db.session.scalar(
                sa.text("SELECT provider_id FROM offer WHERE id = :id"), {"id": till.offer_id}
            )
            db.session.rollback()
            hot = checks._STATEMENTS[("token", True)]  # noqa: SLF001
            params = {"code": till.pass_token, "provider_id": provider_id, "on": berlin_today()}
            direct = hot.rows(params)
            through_sqlalchemy = db.session.execute(hot.statement, params).all()
            db.session.rollback()
        assert [tuple(r) for r in direct] == [tuple(r) for r in through_sqlalchemy]
        assert list(direct[0]._fields) == list(through_sqlalchemy[0]._fields)
        # The redemption made just now counts, with an aware UTC time, as the API says.
        assert direct[0].today == 1
        assert direct[0].today_at.utcoffset().total_seconds() == 0
        offer = _api_check(app, till).get_json()["offers"][0]
        assert offer["used"] is True
        assert offer["available"] is False


def _terminate_app_connections(committed: Any, app: Flask) -> int:
    """End the server side of every connection the app's pool holds (a database restart)."""
    with committed.engine.connect() as conn:
        ended = conn.scalar(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name"
            ),
            {"name": app.config["TEST_APPLICATION_NAME"]},
        )
        conn.commit()
    time.sleep(0.2)  # the backends are gone once the server has processed the signal
    return int(ended or 0)


@postgres_only
@pytest.mark.parametrize(
    ("idle_seconds", "statuses"),
    [
        # Idle for longer than DB_PING_IDLE_SECONDS: pinged, found dead, replaced unseen.
        (0.1, [200]),
        # Used a moment ago: no ping. The driver's error is SQLAlchemy's, so the outage answer
        # (503 with its message) comes, never a 500; the pool is thrown away and rebuilt.
        (60, [503, 200]),
    ],
)
def test_a_connection_lost_while_pooled(
    tills_app: Any, idle_seconds: float, statuses: list[int]
) -> None:
    config = {"DB_PING_IDLE_SECONDS": idle_seconds}
    with tills_app(**config) as (app, till, committed):
        assert _api_check(app, till).status_code == 200
        assert _terminate_app_connections(committed, app) >= 1
        time.sleep(0.2)
        answers = [_api_check(app, till) for _ in statuses]
        assert [a.status_code for a in answers] == statuses
        if statuses[0] == 503:
            assert answers[0].get_json()["error"]["code"] == "unavailable"
        assert answers[-1].get_json()["status"] == "valid"


# ---- the till's pages load the session's user as a few columns -----------------------------------


def test_till_pages_get_a_session_user_that_answers_like_the_user(
    app: Flask, make_provider: Any, make_user: Any
) -> None:
    from kyffikus.auth_session import SessionUser, load_user
    from kyffikus.models import User

    user = make_user("provider", provider=make_provider(), locale="en")
    with app.test_request_context("/v/" + "A" * 32):
        hot = load_user(user.get_id())
        assert isinstance(hot, SessionUser)
        assert (hot.id, hot.role, hot.provider_id, hot.locale) == (
            user.id,
            "provider",
            user.provider_id,
            "en",
        )
        assert hot.get_id() == user.get_id()
        assert hot.is_authenticated
        assert hot.is_active
        assert not hot.is_anonymous
        # Anything else comes from the full User, loaded on first use.
        assert hot.email == user.email
        assert hot.provider.id == user.provider_id
        assert hot.orm_user is db.session.get(User, user.id)
    with app.test_request_context("/anbieter/verlauf"):
        assert isinstance(load_user(user.get_id()), User)  # other pages: the ORM user


def test_a_session_user_of_an_ended_session_is_refused(
    app: Flask, make_provider: Any, make_user: Any
) -> None:
    from kyffikus.auth_session import end_all_sessions, load_user

    user = make_user("provider", provider=make_provider())
    old_id = user.get_id()
    with app.test_request_context("/v/" + "A" * 32):
        assert load_user(old_id) is not None
        end_all_sessions(user)  # logout everywhere, password change
        db.session.flush()
        assert load_user(old_id) is None
        assert load_user(user.get_id()) is not None
        user.active = False
        db.session.flush()
        assert load_user(user.get_id()) is None
        assert load_user("99999999999:1") is None  # beyond any id: no query, no error
        assert load_user("x:1") is None
