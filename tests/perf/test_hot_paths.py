"""The hot paths stay cheap without changing what they answer.

- The QR image's repeat (If-None-Match) answers 304 from the signed session cookie alone: no query,
  and only for the session that was shown the image.
- The check budgets (per user and per address) are counted in one round trip to the storage, with
  Flask-Limiter's semantics and headers.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from limits import parse_many
from limits.storage import MemoryStorage, RedisStorage
from sqlalchemy import event

from kyffikus.extensions import db
from kyffikus.models import berlin_today
from kyffikus.provider import ratelimit
from tests.conftest import login_as

REDIS_URL = "redis://127.0.0.1:6379/15"


@contextmanager
def statements() -> Iterator[list[str]]:
    """The statements the app sends inside the block (the test's own savepoints left out)."""
    db.session.expunge_all()
    seen: list[str] = []

    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "SAVEPOINT" not in statement:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", _record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", _record)


# ---- the QR image -------------------------------------------------------------------------------


@pytest.fixture
def family_pass(
    localities: None, make_family: Callable[..., Any], make_pass: Callable[..., Any]
) -> Callable[[str], tuple[Any, Any]]:
    """family_pass(surname) -> (household with a user, its active pass)."""
    today = berlin_today()

    def _make(surname: str) -> tuple[Any, Any]:
        household = make_family(adults=[("Anna", surname)], children=[date(2016, 5, 1)])
        pass_ = make_pass(
            household,
            valid_from=today - timedelta(days=10),
            valid_until=today + timedelta(days=300),
        )
        return household, pass_

    return _make


def test_qr_repeat_is_304_without_a_query(
    app: Flask, family_pass: Callable[[str], tuple[Any, Any]]
) -> None:
    household, pass_ = family_pass("Amsel")
    client = login_as(app.test_client(), household.user)
    url = f"/familie/pass/{pass_.id}/qr.png"
    first = client.get(url)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    with statements() as seen:
        again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == "private, max-age=86400"
    assert again.headers["X-Content-Type-Options"] == "nosniff"
    assert seen == []


def test_qr_etag_belongs_to_one_session_and_pass(
    app: Flask, family_pass: Callable[[str], tuple[Any, Any]]
) -> None:
    a_household, a_pass = family_pass("Amsel")
    b_household, b_pass = family_pass("Bussard")
    a = login_as(app.test_client(), a_household.user)
    a_url = f"/familie/pass/{a_pass.id}/qr.png"
    a_etag = a.get(a_url).headers["ETag"]
    b = login_as(app.test_client(), b_household.user)
    # Family B presenting A's tag for A's pass (or "*") gets the full check: 404, never 304.
    for tag in (a_etag, "*"):
        response = b.get(a_url, headers={"If-None-Match": tag})
        assert response.status_code == 404
    # A's tag names A's pass only: for B's own pass it is just an unknown tag.
    b_url = f"/familie/pass/{b_pass.id}/qr.png"
    assert b.get(b_url, headers={"If-None-Match": a_etag}).status_code == 200
    assert b.get(b_url).headers["ETag"] != a_etag
    # Without a session there is no shortcut: the login page.
    anonymous = app.test_client().get(a_url, headers={"If-None-Match": a_etag})
    assert anonymous.status_code == 302
    # A new session (after every session of A ended) gets a new tag.
    from kyffikus.auth_session import end_all_sessions

    end_all_sessions(a_household.user)
    db.session.commit()
    renewed = login_as(app.test_client(), a_household.user)
    fresh = renewed.get(a_url, headers={"If-None-Match": a_etag})
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] != a_etag


def test_qr_shortcut_respects_the_session_limit(
    app: Flask, family_pass: Callable[[str], tuple[Any, Any]]
) -> None:
    household, pass_ = family_pass("Amsel")
    client = login_as(app.test_client(), household.user)
    url = f"/familie/pass/{pass_.id}/qr.png"
    etag = client.get(url).headers["ETag"]
    long_ago = time.time() - app.config["FAMILY_SESSION_ABSOLUTE"].total_seconds() - 60
    with client.session_transaction() as sess:
        sess["login_at"] = long_ago
        sess["seen_at"] = long_ago
    # The expired session is not answered from the cookie: the full path ends it.
    response = client.get(url, headers={"If-None-Match": etag})
    assert response.status_code == 302


# ---- the check budgets --------------------------------------------------------------------------


def _plan(windows: str) -> list[tuple[str, Any]]:
    items = sorted(parse_many(windows), key=lambda item: item.get_expiry())
    suffix = time.monotonic_ns()
    plan = [(item.key_for(f"user:{suffix}", "check-user"), item) for item in items]
    return plan + [(item.key_for(f"addr:{suffix}", "check-address"), item) for item in items]


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.3):
            return True
    except OSError:
        return False


def _storages() -> list[Any]:
    found: list[Any] = [MemoryStorage()]
    if _redis_answers():
        found.append(RedisStorage(REDIS_URL))
    return found


@pytest.mark.parametrize("storage", _storages(), ids=lambda s: type(s).__name__)
def test_budgets_count_every_window_until_the_first_breach(storage: Any) -> None:
    plan = _plan("2 per minute;3 per hour")
    try:
        counts = [[c.count for c in ratelimit._count(storage, plan)] for _ in range(3)]
        # user minute, user hour, address minute, address hour; the third request goes over the
        # user's minute window, and nothing after it is counted (as Flask-Limiter stops there).
        assert counts == [[1, 1, 1, 1], [2, 2, 2, 2], [3]]
        counted = ratelimit._count(storage, plan)
        assert [c.count for c in counted] == [4]
        assert counted[0].breached
        assert time.time() < counted[0].reset_at <= time.time() + 61
    finally:
        for key, _item in plan:
            storage.clear(key)


@pytest.mark.skipif(not _redis_answers(), reason="needs Redis on 127.0.0.1:6379")
def test_a_check_costs_one_round_trip_to_redis() -> None:
    storage = RedisStorage(REDIS_URL)
    connection = storage.get_connection()
    sent: list[str] = []
    original = connection.execute_command

    def counting(*args: Any, **kwargs: Any) -> Any:
        sent.append(str(args[0]))
        return original(*args, **kwargs)

    plan = _plan("60 per minute;600 per hour")
    ratelimit._count(storage, plan)  # loads the script
    connection.execute_command = counting  # type: ignore[method-assign]
    try:
        counted = ratelimit._count(storage, plan)
    finally:
        connection.execute_command = original  # type: ignore[method-assign]
        for key, _item in plan:
            storage.clear(key)
    assert [c.count for c in counted] == [2, 2, 2, 2]
    assert sent == ["EVALSHA"]


def test_check_answers_carry_the_rate_limit_headers(
    app: Flask,
    client: FlaskClient,
    localities: None,
    make_edition: Callable[..., Any],
    make_provider: Callable[..., Any],
    make_user: Callable[..., Any],
    make_family: Callable[..., Any],
    make_pass: Callable[..., Any],
) -> None:
    from kyffikus.services.apitokens import create_token

    provider = make_provider()
    user = make_user("provider", provider=provider)
    pass_ = make_pass(make_family(), valid_until=berlin_today() + timedelta(days=30))
    _token, raw = create_token(user, "Kasse")
    headers = {"Authorization": f"Bearer {raw}"}
    app.config["CHECK_RATE_LIMIT"] = "3 per minute;10 per hour"
    try:
        answers = [
            client.post("/api/v1/checks", json={"code": pass_.token}, headers=headers)
            for _ in range(4)
        ]
    finally:
        app.config["CHECK_RATE_LIMIT"] = "60 per minute;600 per hour"
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Limit"] for a in answers] == ["3"] * 4
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    for answer in answers:
        reset = int(answer.headers["X-RateLimit-Reset"])
        assert time.time() < reset <= time.time() + 62
        assert 0 <= int(answer.headers["Retry-After"]) <= 61
    assert answers[-1].get_json()["error"]["code"] == "rate_limited"
