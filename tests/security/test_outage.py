"""Database outage: the check answers 503 with a clear message, never "valid"; then it recovers.

Two ways to lose the database:
- a closed port (nothing listens): runs everywhere, PostgreSQL server or not;
- a TCP proxy this test controls between the app and the real PostgreSQL server: the proxy is cut
  (live connections dropped, new ones refused) and restored, and the same app object must serve
  normally again without a restart (pool_pre_ping throws away the dead pooled connections).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from kyffikus import create_app
from kyffikus.extensions import db
from kyffikus.models import (
    ApiToken,
    AuditEntry,
    Category,
    Edition,
    Offer,
    Pass,
    PassEvent,
    Provider,
    User,
    berlin_today,
)
from kyffikus.services import apitokens, passnumber
from kyffikus.services import passes as passes_service
from tests.conftest import free_port, postgres_only
from tests.conftest import test_config as base_config
from tests.security.figures import record_figure

VALID_WORDS = (">GÜLTIG</h2>", ">VALID</h2>")  # the result's big word (not "NICHT GÜLTIG")
OUTAGE_MESSAGE = "Die Datenbank ist gerade nicht erreichbar"


# ---- a proxy we can cut ---------------------------------------------------------------------------


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to the database server until cut; restore() listens again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        """Listen (again) on the same port."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Stop listening and drop every live connection (the database is gone)."""
        if self.listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not on Linux.
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self.listener.close()
            self.listener = None
        with self.lock:
            for sock in list(self.sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
            self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _addr = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


# ---- data -------------------------------------------------------------------------------------------


@dataclass
class Till:
    """A provider user with an API token and a valid pass to check."""

    user_id: int
    session_id: str
    api_token: str
    pass_token: str
    pass_number: str


@contextlib.contextmanager
def committed_till(url: str) -> Iterator[Till]:
    """Provider, user, token, offer and pass committed for real on the server; deleted after."""
    engine = sa.create_engine(url)
    tag = uuid.uuid4().hex[:8]
    today = berlin_today()
    raw = apitokens.PREFIX + secrets.token_urlsafe(32)
    with Session(engine) as s:
        edition = Edition(
            number=700_000 + secrets.randbelow(99_999),
            name=f"Ausfall {tag}",
            valid_from=today - timedelta(days=5),
            valid_until=today + timedelta(days=60),
        )
        category = Category(slug=f"ausfall-{tag}", name_de="Ausfall", name_en="Outage", position=97)
        provider = Provider(slug=f"ausfall-{tag}", name=f"Museum {tag}", description="Test")
        user = User(
            email=f"kasse-{tag}@example.org", role="provider", provider=provider, password_hash="x"
        )
        offer = Offer(
            key=f"ausfall-{tag}",
            provider=provider,
            edition=edition,
            category=category,
            title="Eintritt",
            discount_kind="percent",
            discount_value=10,
            redemption_limit="per_day",
            published=True,
        )
        pass_ = Pass(
            number=passnumber.generate(),
            token=passes_service.new_token(),
            status="active",
            valid_from=today - timedelta(days=1),
            valid_until=today + timedelta(days=30),
            holders=[{"first_name": "Olga", "last_name": "Ausfall"}],
            children_birth_dates=[(today - timedelta(days=2000)).isoformat()],
        )
        s.add_all([edition, category, provider, user, offer, pass_])
        s.flush()
        token = ApiToken(
            provider_id=provider.id,
            user_id=user.id,
            name="Kasse",
            token_hash=apitokens.hash_token(raw),
            prefix=raw[:12],
        )
        s.add(token)
        s.commit()
        ids = (edition.id, category.id, provider.id, user.id, offer.id, pass_.id, token.id)
        till = Till(user.id, user.get_id(), raw, pass_.token, pass_.number)
    try:
        yield till
    finally:
        with Session(engine) as s:
            # Never hang the suite on a stray lock: fail after a while instead.
            s.execute(sa.text("SET lock_timeout = '30s'"))
            s.execute(sa.delete(AuditEntry).where(AuditEntry.actor_id == ids[3]))
            s.execute(sa.delete(PassEvent).where(PassEvent.pass_id == ids[5]))
            s.execute(sa.delete(Pass).where(Pass.id == ids[5]))
            s.execute(sa.delete(ApiToken).where(ApiToken.id == ids[6]))
            s.execute(sa.delete(Offer).where(Offer.id == ids[4]))
            s.execute(sa.delete(User).where(User.id == ids[3]))
            s.execute(sa.delete(Provider).where(Provider.id == ids[2]))
            s.execute(sa.delete(Category).where(Category.id == ids[1]))
            s.execute(sa.delete(Edition).where(Edition.id == ids[0]))
            s.commit()
        engine.dispose()


# ---- asking ------------------------------------------------------------------------------------------


def _provider_client(app: Flask, till: Till) -> FlaskClient:
    client = app.test_client()
    now = datetime.now(UTC).timestamp()
    with client.session_transaction() as sess:
        sess.update(_user_id=till.session_id, _fresh=True, login_at=now, seen_at=now, mfa_ok=True)
    return client


def ask_everything(app: Flask, till: Till) -> dict[str, Any]:
    """The check by every way a till asks: page, QR URL (provider and anonymous), API, by number."""
    from kyffikus.extensions import csrf as _csrf  # noqa: F401 - the app has CSRF on

    provider = _provider_client(app, till)
    answers: dict[str, Any] = {}
    answers["check page"] = provider.get("/anbieter/pruefen")
    answers["QR URL as provider"] = provider.get(f"/v/{till.pass_token}")
    answers["QR URL anonymous"] = app.test_client().get(f"/v/{till.pass_token}")
    bearer = {"Authorization": f"Bearer {till.api_token}"}
    client = app.test_client()
    answers["API check by token"] = client.post(
        "/api/v1/checks", json={"code": till.pass_token}, headers=bearer
    )
    answers["API check by number"] = client.post(
        "/api/v1/checks", json={"code": till.pass_number}, headers=bearer
    )
    return answers


def _valid(response: Any) -> bool:
    text = response.get_data(as_text=True)
    if response.is_json:
        body = response.get_json(silent=True) or {}
        return body.get("status") == "valid" or body.get("valid") is True
    return any(word in text for word in VALID_WORDS)


def _outage_app(url: str, smtp_port: int) -> Flask:
    config = base_config(url, smtp_port)
    config["RATELIMIT_ENABLED"] = False
    if url.startswith("postgresql"):
        # A connection the proxy half-closes mid-transaction would otherwise keep its row locks on
        # the server for ever and block the clean-up; the server ends such a transaction itself.
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            "pool_pre_ping": True,
            "connect_args": {"options": "-c idle_in_transaction_session_timeout=5000"},
        }
    return create_app(config)


def _assert_down(answers: dict[str, Any]) -> list[str]:
    problems = []
    for name, response in answers.items():
        if response.status_code != 503:
            problems.append(f"{name}: {response.status_code}, not 503")
        if _valid(response):
            problems.append(f"{name}: said valid while the database is down")
        if response.is_json:
            error = (response.get_json(silent=True) or {}).get("error", {})
            if error.get("code") != "unavailable" or OUTAGE_MESSAGE not in error.get("message", ""):
                problems.append(f"{name}: JSON error without the outage message: {error}")
        elif OUTAGE_MESSAGE not in response.get_data(as_text=True):
            problems.append(f"{name}: page without the outage message")
    return problems


# ---- the tests ---------------------------------------------------------------------------------------


def test_closed_port_answers_503_never_valid(smtp_server: Any) -> None:
    """Nothing listens where the database should be: every check way answers 503, none 'valid'."""
    _box, port = smtp_server
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/kyffikus"
    app = _outage_app(url, port)
    fake = Till(
        1, "1:1", apitokens.PREFIX + "x" * 43, passes_service.new_token(), passnumber.generate()
    )
    answers = ask_everything(app, fake)
    answers["check POST"] = _provider_client(app, fake).post(
        "/anbieter/pruefen/ergebnis", data={"code": fake.pass_token}
    )
    problems = _assert_down({k: v for k, v in answers.items() if k != "check POST"})
    # The POST is refused before its CSRF check could even load the user: 503 or 400, never valid.
    if answers["check POST"].status_code not in (400, 503) or _valid(answers["check POST"]):
        problems.append(f"check POST: {answers['check POST'].status_code}")
    # The process itself still answers, even to a browser that sends a session cookie.
    for path in ("/healthz", "/static/css/app.css"):  # the 503 page needs its stylesheet
        status = _provider_client(app, fake).get(path).status_code
        if status != 200:
            problems.append(f"{path} with a session cookie: {status}")
    with app.app_context():
        db.engine.dispose()
    record_figure(
        "outage-closed-port",
        "checks while the database port is closed (page, QR URL, API by token and number)",
        len(answers),
        sum(1 for r in answers.values() if _valid(r)),
        sum(1 for r in answers.values() if r.status_code >= 500 and r.status_code != 503),
        outcome=f"{sum(1 for r in answers.values() if _valid(r))} said valid, "
        f"{sum(1 for r in answers.values() if r.status_code == 503)} answered 503",
        order=80,
    )
    assert problems == []


@postgres_only
def test_database_lost_and_back_the_same_app_recovers(
    _session_app: Flask,  # noqa: PT019 - its engine's URL names the test database
    smtp_server: Any,
) -> None:
    """Cut the connection under a running app: 503, never valid; restore it: the same app serves."""
    _box, smtp_port = smtp_server
    with _session_app.app_context():
        real = db.engine.url
    with committed_till(real.render_as_string(hide_password=False)) as till:
        proxy = CuttableProxy((real.host or "127.0.0.1", real.port or 5432))
        url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        app = _outage_app(url, smtp_port)
        try:
            before = ask_everything(app, till)
            assert {k: r.status_code for k, r in before.items()} == dict.fromkeys(before, 200)
            assert all(_valid(r) for k, r in before.items() if k != "check page")

            proxy.cut()
            down = ask_everything(app, till)
            problems = _assert_down(down)

            proxy.restore()
            after = ask_everything(app, till)
            back = {k: r.status_code for k, r in after.items()}
        finally:
            proxy.cut()
            with app.app_context():
                db.engine.dispose()
    record_figure(
        "outage-recovery",
        "checks with the database cut and restored under a running app (page, QR URL, API)",
        len(before) + len(down) + len(after),
        sum(1 for r in down.values() if _valid(r)),
        sum(
            1
            for r in [*down.values(), *after.values()]
            if r.status_code >= 500 and r.status_code != 503
        ),
        outcome=f"{sum(1 for r in down.values() if _valid(r))} said valid while down; "
        f"{sum(1 for s in back.values() if s == 200)} of {len(back)} served again after",
        order=81,
    )
    assert problems == []
    assert back == dict.fromkeys(after, 200)
    assert all(_valid(r) for k, r in after.items() if k != "check page")
