"""Fixtures: the app on SQLite (default) or PostgreSQL, each test in a rolled-back transaction.

KYFFIKUS_TEST_BACKEND=postgres with KYFFIKUS_TEST_DATABASE_URL runs the same tests on PostgreSQL
(`make test` does both when the URL is set). The schema is built once per run by the migrations,
never by create_all.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from kyffikus import create_app
from kyffikus.extensions import db, limiter

BACKEND = os.environ.get("KYFFIKUS_TEST_BACKEND", "sqlite")
PG_BASE_URL = os.environ.get("KYFFIKUS_TEST_DATABASE_URL", "")
TEST_PASSWORD = "Korrekt-Pferd-Batterie-42"


def _pg_url(base: str, dbname: str) -> str:
    url = sa.engine.make_url(base).set(drivername="postgresql+psycopg", database=dbname)
    return url.render_as_string(hide_password=False)


def _create_pg_database(worker: str) -> str:
    """A fresh database for this run and xdist worker on the server named by the test URL."""
    base = sa.engine.make_url(PG_BASE_URL)
    name = f"{base.database or 'kyffikus_test'}_{worker}"
    admin = sa.create_engine(_pg_url(PG_BASE_URL, "postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return _pg_url(PG_BASE_URL, name)


def backend_is_postgres() -> bool:
    """Whether this run uses PostgreSQL."""
    return BACKEND == "postgres"


postgres_only = pytest.mark.skipif(
    not backend_is_postgres(),
    reason="needs PostgreSQL (row locks, real concurrency); CI runs it with KYFFIKUS_TEST_BACKEND=postgres",
)


# ---- mail -------------------------------------------------------------------------------------


@dataclass
class Outbox:
    """Messages received by the local SMTP server."""

    messages: list[email.message.EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        """Forget what arrived so far."""
        with self.lock:
            self.messages.clear()

    def to(self, address: str) -> list[email.message.EmailMessage]:
        """Messages addressed to one recipient."""
        with self.lock:
            return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    def wait_for(
        self, address: str, count: int = 1, timeout: float = 5.0
    ) -> list[email.message.EmailMessage]:
        """Wait until `count` messages to the address have arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {count} mail(s) to {address}, got {len(self.to(address))}")

    @staticmethod
    def body(message: email.message.EmailMessage) -> str:
        """The text body of a message."""
        part = message.get_body(preferencelist=("plain",))
        assert part is not None
        return part.get_content()

    @classmethod
    def links(cls, message: email.message.EmailMessage) -> list[str]:
        """Every http(s) link in a message's body."""
        return re.findall(r"https?://\S+", cls.body(message))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.outbox.lock:
            self.outbox.messages.append(msg)  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[Outbox, int]]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that stores what arrives."""
    from aiosmtpd.controller import Controller

    outbox = Outbox()
    port = free_port()
    # SMTPUTF8 like a modern mail server, so addresses such as müller@example.de can be delivered.
    controller = Controller(_Handler(outbox), hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    controller.start()
    try:
        yield outbox, port
    finally:
        controller.stop()


@pytest.fixture
def outbox(smtp_server: tuple[Outbox, int]) -> Outbox:
    """The local SMTP server's messages, emptied for this test."""
    box, _port = smtp_server
    box.clear()
    return box


# ---- the app ------------------------------------------------------------------------------------


def test_config(db_url: str, smtp_port: int) -> dict[str, Any]:
    """The configuration every test app gets."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "SQLALCHEMY_DATABASE_URI": db_url,
        "MAIL_BACKEND": "smtp",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": smtp_port,
        "BASE_URL": "http://localhost",
        "SERVER_NAME": None,
        "WTF_CSRF_ENABLED": True,
        "RATELIMIT_STORAGE_URI": "memory://",
        # Statistics are snapshotted when counting is slow; on a loaded test machine that would
        # depend on timing, so tests count afresh unless a test switches snapshots on.
        "STATISTICS_SNAPSHOT_AFTER": 3600,
    }


@pytest.fixture(scope="session")
def _session_app(smtp_server: tuple[Outbox, int]) -> Iterator[Flask]:
    """One app per run (per xdist worker) with the schema built by the migrations."""
    from flask_migrate import upgrade

    _box, port = smtp_server
    if backend_is_postgres():
        if not PG_BASE_URL:
            pytest.exit(
                "KYFFIKUS_TEST_BACKEND=postgres needs KYFFIKUS_TEST_DATABASE_URL", returncode=2
            )
        url = _create_pg_database(os.environ.get("PYTEST_XDIST_WORKER", "main"))
    else:
        url = "sqlite://"
    app = create_app(test_config(url, port))
    _fresh_g_per_request(app)
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            # pysqlite needs this to support SAVEPOINT (SQLAlchemy's documented recipe).
            @event.listens_for(engine, "connect")
            def _no_autobegin(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.isolation_level = None

            @event.listens_for(engine, "begin")
            def _begin(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN")

        upgrade()
    # The limiter is one object shared by every app a test creates; each app's init_app points it
    # at that app's storage. Remember this app's, so every test starts on it again (see `app`).
    app.extensions["kyffikus_test_limiter"] = (limiter._storage, limiter._limiter)
    yield app
    with app.app_context():
        db.engine.dispose()


def _fresh_g_per_request(app: Flask) -> None:
    """Empty flask.g when a request starts.

    The `app` fixture keeps one app context open for the whole test (the session is bound to it),
    and a request reuses an open app context, so without this g would carry Flask-Login's cached
    user, the CSRF token and the locale from one request (or client) to the next.
    """
    from flask import g, request_started

    def _reset(sender: Flask, **_extra: Any) -> None:
        for key in list(vars(g)):
            delattr(g, key)

    request_started.connect(_reset, app, weak=False)


class _BoundSession(Session):
    """A plain Session bound to the test's connection (Flask-SQLAlchemy's ignores `bind`)."""

    def __init__(self, db: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)


@pytest.fixture
def app(_session_app: Flask) -> Iterator[Flask]:
    """The app, with every change of the test rolled back at its end (savepoint pattern)."""
    app = _session_app
    with app.app_context():
        connection = db.engine.connect()
        transaction = connection.begin()
        original = db.session
        db.session = db._make_scoped_session(
            {
                "bind": connection,
                "join_transaction_mode": "create_savepoint",
                "class_": _BoundSession,
                "expire_on_commit": False,
            }
        )
        limiter._storage, limiter._limiter = app.extensions["kyffikus_test_limiter"]
        limiter.reset()
        # Pages a worker keeps (kyffikus.pagecache) are per app: each test starts without any.
        app.extensions.pop("kyffikus.page_cache", None)
        try:
            yield app
        finally:
            db.session.remove()
            db.session = original
            if transaction.is_active:
                transaction.rollback()
            connection.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    """A CLI runner."""
    return app.test_cli_runner()


@pytest.fixture
def db_session(app: Flask) -> Any:
    """The test's database session."""
    return db.session


# ---- helpers ----------------------------------------------------------------------------------


def csrf_token(client: FlaskClient, url: str) -> str:
    """GET a page and return the CSRF token of its first form."""
    html = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def post_form(
    client: FlaskClient,
    url: str,
    data: dict[str, Any],
    *,
    token_from: str | None = None,
    **kwargs: Any,
) -> Any:
    """POST a form with a valid CSRF token taken from the page (or token_from)."""
    data = dict(data)
    data["csrf_token"] = csrf_token(client, token_from or url)
    return client.post(url, data=data, **kwargs)


def login_as(client: FlaskClient, user: Any) -> FlaskClient:
    """Log the client in as the user without the login form (fast; the form has its own tests)."""
    with client.session_transaction() as sess:
        now = datetime.now(UTC).timestamp()
        sess["_user_id"] = user.get_id()
        sess["_fresh"] = True
        sess["login_at"] = now
        sess["seen_at"] = now
        sess["mfa_ok"] = True
    return client


@pytest.fixture
def login(client: FlaskClient) -> Callable[[Any], FlaskClient]:
    """login(user) logs the test client in."""
    return lambda user: login_as(client, user)


# ---- factories --------------------------------------------------------------------------------

_HASH_CACHE: dict[str, str] = {}


def hashed(password: str = TEST_PASSWORD) -> str:
    """An argon2id hash of the password, computed once per run."""
    from kyffikus.services.passwords import hash_password

    if password not in _HASH_CACHE:
        _HASH_CACHE[password] = hash_password(password)
    return _HASH_CACHE[password]


_counter = {"n": 0}


def _seq() -> int:
    _counter["n"] += 1
    return _counter["n"]


@pytest.fixture
def localities(app: Flask) -> None:
    """The district's municipalities, localities and postal codes."""
    from kyffikus.services.catalogue_load import load_localities

    load_localities()
    db.session.flush()


@pytest.fixture
def catalogue(app: Flask) -> Any:
    """The first edition's catalogue and the localities, loaded from the package's data files."""
    from kyffikus.services.catalogue_load import load_catalogue

    report = load_catalogue()
    db.session.flush()
    return report


@pytest.fixture
def make_user(app: Flask) -> Callable[..., Any]:
    """make_user(role="family", email=None, provider=None, **fields) -> User (flushed)."""
    from kyffikus.models import User

    def _make(
        role: str = "family",
        email: str | None = None,
        provider: Any = None,
        password: str = TEST_PASSWORD,
        confirmed: bool = True,
        **fields: Any,
    ) -> User:
        user = User(
            email=email or f"{role}{_seq()}@example.org",
            role=role,
            provider=provider,
            password_hash=hashed(password),
            email_confirmed_at=datetime.now(UTC) if confirmed else None,
            **fields,
        )
        db.session.add(user)
        db.session.flush()
        return user

    return _make


@pytest.fixture
def make_edition(app: Flask) -> Callable[..., Any]:
    """make_edition(number=None, valid_from=..., valid_until=...) -> Edition."""
    from kyffikus.models import Edition

    def _make(
        number: int | None = None,
        valid_from: date = date(2026, 1, 1),
        valid_until: date = date(2027, 12, 31),
        name: str | None = None,
    ) -> Edition:
        n = number or 100 + _seq()
        edition = Edition(
            number=n,
            name=name or f"Testauflage {n}",
            valid_from=valid_from,
            valid_until=valid_until,
        )
        db.session.add(edition)
        db.session.flush()
        return edition

    return _make


@pytest.fixture
def make_provider(app: Flask) -> Callable[..., Any]:
    """make_provider(name=None, **fields) -> Provider with one venue."""
    from kyffikus.models import Provider, Venue

    def _make(name: str | None = None, **fields: Any) -> Provider:
        n = _seq()
        provider = Provider(
            slug=f"anbieter-{n}",
            name=name or f"Testanbieter {n}",
            description="Ein Anbieter für Tests.",
            **fields,
        )
        provider.venues.append(
            Venue(
                key="main",
                name=provider.name,
                street="Markt 1",
                postal_code="99706",
                town="Sondershausen",
            )
        )
        db.session.add(provider)
        db.session.flush()
        return provider

    return _make


@pytest.fixture
def make_offer(app: Flask, make_edition: Callable[..., Any]) -> Callable[..., Any]:
    """make_offer(provider, edition=None, limit="per_day", **fields) -> Offer."""
    from sqlalchemy import select

    from kyffikus.models import Category, Offer

    def _make(provider: Any, edition: Any = None, limit: str = "per_day", **fields: Any) -> Offer:
        category = db.session.scalars(select(Category).order_by(Category.id)).first()
        if category is None:
            category = Category(slug="sport", name_de="Sport", name_en="Sports", position=1)
            db.session.add(category)
        n = _seq()
        values: dict[str, Any] = {
            "key": f"angebot-{n}",
            "title": f"Testangebot {n}",
            "description": "Für Tests.",
            "discount_kind": "percent",
            "discount_value": 10,
            "redemption_limit": limit,
            "published": True,
        }
        values.update(fields)
        offer = Offer(
            provider=provider, edition=edition or make_edition(), category=category, **values
        )
        offer.venues = list(provider.venues)
        db.session.add(offer)
        db.session.flush()
        return offer

    return _make


@pytest.fixture
def make_family(app: Flask, make_user: Callable[..., Any]) -> Callable[..., Any]:
    """make_family(adults=[("Anna", "Muster")], children=[date], with_user=True) -> Household."""
    from sqlalchemy import select

    from kyffikus.models import Adult, Child, Household, Locality

    def _make(
        adults: list[tuple[str, str]] | None = None,
        children: list[date] | None = None,
        with_user: bool = True,
        email: str | None = None,
        street: str = "Markt 8",
        postal_code: str = "99706",
        locality: str = "Sondershausen",
    ) -> Household:
        loc = db.session.scalars(
            select(Locality).where(Locality.postal_code == postal_code, Locality.name == locality)
        ).first()
        user = make_user("family", email=email) if with_user else None
        household = Household(
            user=user,
            street=street,
            postal_code=postal_code,
            locality=loc,
            consent_at=datetime.now(UTC),
        )
        for i, (first, last) in enumerate(adults or [("Anna", f"Muster{_seq()}")], start=1):
            household.adults.append(Adult(position=i, first_name=first, last_name=last))
        for j, born in enumerate(children or [date(2019, 5, 17)]):
            household.children.append(Child(first_name=f"Kind{j + 1}", birth_date=born))
        db.session.add(household)
        db.session.flush()
        return household

    return _make


@pytest.fixture
def make_pass(app: Flask, make_edition: Callable[..., Any]) -> Callable[..., Any]:
    """make_pass(household, status="active", valid_from=..., valid_until=...) -> Pass."""
    import secrets

    from kyffikus.models import Pass, PassEvent
    from kyffikus.services import passnumber

    def _make(
        household: Any,
        status: str = "active",
        valid_from: date = date(2026, 1, 1),
        valid_until: date = date(2027, 12, 31),
        edition: Any = None,
    ) -> Pass:
        pass_ = Pass(
            number=passnumber.generate(),
            token=secrets.token_urlsafe(24),
            household=household,
            edition=edition,
            status=status,
            valid_from=valid_from,
            valid_until=valid_until,
            holders=[
                {"first_name": a.first_name, "last_name": a.last_name} for a in household.adults
            ],
            children_birth_dates=[c.birth_date.isoformat() for c in household.children],
        )
        pass_.events.append(PassEvent(kind="issued"))
        db.session.add(pass_)
        db.session.flush()
        return pass_

    return _make
