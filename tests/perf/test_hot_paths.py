"""The hot paths stay cheap without changing what they answer.

- The QR image's repeat (If-None-Match) answers 304 from the signed session cookie alone: no query,
  and only for the session that was shown the image.
- The check budgets (per user and per address) are counted in one round trip to the storage, with
  Flask-Limiter's semantics and headers.
- Read-only views end with COMMIT, never with a write, so psycopg keeps its prepared statements.
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
from kyffikus.models import Edition, berlin_today
from kyffikus.provider import ratelimit
from kyffikus.readonly import end_read_only
from tests.committed import app_of_its_own
from tests.conftest import login_as, postgres_only
from tests.perf.conftest import sent_statements

REDIS_URL = "redis://127.0.0.1:6379/15"


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
    with sent_statements() as seen:
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


def _plan(windows: str) -> tuple[tuple[str, Any], ...]:
    items = sorted(parse_many(windows), key=lambda item: item.get_expiry())
    suffix = time.monotonic_ns()
    plan = [(item.key_for(f"user:{suffix}", "check-user"), item) for item in items]
    return tuple(plan + [(item.key_for(f"addr:{suffix}", "check-address"), item) for item in items])


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
def test_a_check_costs_one_round_trip_to_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    from redis.connection import Connection

    storage = RedisStorage(REDIS_URL)
    sent: list[bytes] = []
    original = Connection.send_packed_command

    def counting(self: Connection, command: Any, *args: Any, **kwargs: Any) -> Any:
        # Every command goes through here, packed (send_command packs and calls it too).
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        return original(self, command, *args, **kwargs)

    plan = _plan("60 per minute;600 per hour")
    ratelimit._count(storage, plan)  # loads the script
    monkeypatch.setattr(Connection, "send_packed_command", counting)
    try:
        counted = ratelimit._count(storage, plan)
    finally:
        monkeypatch.undo()
        for key, _item in plan:
            storage.clear(key)
    assert [c.count for c in counted] == [2, 2, 2, 2]
    assert len(sent) == 1
    assert sent[0].split(b"\r\n")[2] == b"EVALSHA"
    assert all(key.encode() in sent[0] for key, _item in plan)


class _Trickle:
    """A socket that hands out a reply a few bytes at a time, as a slow network may."""

    def __init__(self, reply: bytes, size: int) -> None:
        self.reply, self.size = reply, size

    def recv(self, _limit: int) -> bytes:
        part, self.reply = self.reply[: self.size], self.reply[self.size :]
        return part


@pytest.mark.parametrize("size", [1, 3, 1024])
def test_the_budgets_answer_is_read_whole_however_it_arrives(size: int) -> None:
    from types import SimpleNamespace

    reply = b"*4\r\n:1\r\n:60\r\n:12\r\n:3600\r\n"
    connection = SimpleNamespace(_sock=_Trickle(reply, size))
    assert ratelimit._read_counts(connection) == [1, 60, 12, 3600]


@pytest.mark.parametrize(
    "reply",
    [
        b"-NOSCRIPT No matching script. Please use EVAL.\r\n",
        b"*2\r\n:1\r\n$2\r\nhi\r\n",
        b"*4\r\n:1\r\n",  # and then the connection closes
        b"",
    ],
)
def test_any_other_answer_of_redis_is_left_to_the_client(reply: bytes) -> None:
    from types import SimpleNamespace

    from redis.exceptions import RedisError

    with pytest.raises(RedisError):
        ratelimit._read_counts(SimpleNamespace(_sock=_Trickle(reply, 1024)))


@pytest.mark.skipif(not _redis_answers(), reason="needs Redis on 127.0.0.1:6379")
def test_the_budget_script_is_loaded_again_after_a_redis_restart() -> None:
    storage = RedisStorage(REDIS_URL)
    plan = _plan("60 per minute;600 per hour")
    try:
        assert [c.count for c in ratelimit._count(storage, plan)] == [1, 1, 1, 1]
        storage.get_connection().script_flush()  # what a restarted Redis has forgotten
        assert [c.count for c in ratelimit._count(storage, plan)] == [2, 2, 2, 2]
    finally:
        for key, _item in plan:
            storage.clear(key)


@pytest.mark.skipif(not _redis_answers(), reason="needs Redis on 127.0.0.1:6379")
def test_a_check_counts_on_after_redis_dropped_the_connection() -> None:
    storage = RedisStorage(REDIS_URL)
    plan = _plan("60 per minute;600 per hour")
    try:
        assert [c.count for c in ratelimit._count(storage, plan)] == [1, 1, 1, 1]
        own = ratelimit._thread.connection  # this thread's connection for the budgets
        client_id = own.send_command("CLIENT", "ID") or own.read_response()
        killed = storage.get_connection().client_kill_filter(_id=client_id)  # as a restart would
        assert killed == 1
        assert [c.count for c in ratelimit._count(storage, plan)] == [2, 2, 2, 2]
        assert [c.count for c in ratelimit._count(storage, plan)] == [3, 3, 3, 3]
    finally:
        for key, _item in plan:
            storage.clear(key)


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


# ---- read-only views end with COMMIT ------------------------------------------------------------


@contextmanager
def commits() -> Iterator[list[int]]:
    """Count the session's commits inside the block."""
    seen: list[int] = []
    session = db.session()

    def _commit(_session: Any) -> None:
        seen.append(1)

    event.listen(session, "after_commit", _commit)
    try:
        yield seen
    finally:
        event.remove(session, "after_commit", _commit)


def test_end_read_only_commits_only_what_wrote_nothing(
    app: Flask, make_provider: Callable[..., Any]
) -> None:
    from sqlalchemy import select

    from kyffikus.models import Provider

    db.session.commit()
    with commits() as seen:
        db.session.scalars(select(Provider.id)).all()
        end_read_only()
    assert seen == [1]
    # A flushed change (or a pending one) is never committed by it.
    provider = make_provider()  # flushes
    with commits() as seen:
        end_read_only()
        provider.name = "Geändert, nicht gespeichert"
        end_read_only()
    assert seen == []
    db.session.rollback()


@postgres_only
def test_read_only_requests_keep_prepared_statements(app: Flask) -> None:
    from sqlalchemy import text

    # An app of its own on the same database: its requests run real transactions (no test
    # savepoints), on one pooled connection; without the page cache, every request queries.
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    with app_of_its_own(url, 25, SQLALCHEMY_ENGINE_OPTIONS={}, PAGE_CACHE_SECONDS=0) as other:
        client = other.test_client()
        for _ in range(8):
            assert client.get("/angebote", query_string={"q": "Museum"}).status_code == 200
        with other.app_context():
            prepared = db.session.execute(
                text("SELECT count(*) FROM pg_prepared_statements")
            ).scalar()
    # psycopg prepares a statement at its fifth execution and forgets all at a ROLLBACK: only
    # requests that end with COMMIT keep them.
    assert (prepared or 0) > 0


# ---- the directory's metadata -------------------------------------------------------------------


def test_directory_metadata_is_kept_until_the_catalogue_changes(
    app: Flask,
    current_edition: Edition,
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
) -> None:
    from kyffikus.models import Category
    from kyffikus.services.directory import listing_metadata

    make_offer(make_provider(name="Kletterwald Anbieter"), edition=current_edition)
    with app.test_request_context("/angebote"):
        first = listing_metadata()
        with sent_statements() as seen:
            again = listing_metadata()
        assert seen == []  # kept: no query
        assert again is first
        assert first.edition is not None
        assert first.edition.id == current_edition.id
        # A change to the catalogue in this process is seen at once, not after the minute.
        category = db.session.get(Category, first.categories[0].id)
        category.name_de = "Umbenannt"
        db.session.flush()
        renamed = listing_metadata()
        assert renamed is not first
        assert renamed.categories[0].name_de == "Umbenannt"
        # Without a lifetime nothing is kept.
        app.config["DIRECTORY_METADATA_SECONDS"] = 0
        try:
            assert listing_metadata() is not listing_metadata()
        finally:
            app.config.pop("DIRECTORY_METADATA_SECONDS")


def test_directory_metadata_forgets_a_rolled_back_edition(
    app: Flask, make_edition: Callable[..., Any]
) -> None:
    from kyffikus.services.directory import listing_metadata

    today = berlin_today()
    with app.test_request_context("/angebote"):
        before = listing_metadata()
        make_edition(
            name="Ausgabe Probe",
            valid_from=today - timedelta(days=1),
            valid_until=today + timedelta(days=9),
        )
        seen = listing_metadata()
        assert seen.edition is not None
        assert seen.edition.name == "Ausgabe Probe"
        db.session.rollback()  # the edition is gone again
        after = listing_metadata()
    assert after == before


# ---- templates: the same output, cheaper --------------------------------------------------------


def test_template_gettext_follows_the_locale(app: Flask) -> None:
    from flask import render_template_string
    from flask_babel import force_locale

    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        assert render_template_string("{{ _('Angebote') }}") == "Angebote"
        with force_locale("en"):
            assert render_template_string("{{ _('Angebote') }}") == "Offers"
        assert render_template_string("{{ _('Angebote') }}") == "Angebote"
        assert (
            render_template_string("{{ ngettext('%(num)s Kind', '%(num)s Kinder', 2) }}")
            == "2 Kinder"
        )


def test_plain_select_renders_what_wtforms_renders(app: Flask) -> None:
    from wtforms import SelectChoice
    from wtforms.widgets import Select

    from kyffikus.public.forms import OfferFilterForm, PlainSelect

    query = "/angebote?town=Bad+%22Frankenhausen%22&age=5&category=kultur&sort=town"
    with app.test_request_context(query):
        from flask import request

        form = OfferFilterForm(formdata=request.args)
        form.category.choices = [
            SelectChoice("", "Alle"),
            SelectChoice("kultur", 'Kultur & "Museen" <b>'),
        ]
        form.town.choices = [
            SelectChoice("", "Alle Orte"),
            SelectChoice('Bad "Frankenhausen"', 'Bad "Frankenhausen"'),
            SelectChoice("Ärger<&>", "Ärger<&>"),
        ]
        form.age.choices = [SelectChoice("", "Jedes Alter")] + [
            SelectChoice(str(n), f"{n} Jahre") for n in range(18)
        ]
        for field in (form.category, form.town, form.age, form.sort):
            for extra in ({}, {"aria-describedby": "x-hint", "aria-invalid": "true"}):
                assert PlainSelect()(field, **dict(extra)) == Select()(field, **dict(extra))
        assert 'selected value="Bad &#34;Frankenhausen&#34;"' in PlainSelect()(form.town)
