"""Database outage: the check answers 503 with a clear message, never "valid"; then it recovers.

Two ways to lose the database:
- a closed port (nothing listens): runs everywhere, PostgreSQL server or not;
- a TCP proxy this test controls between the app and the real PostgreSQL server: the proxy is cut
  (live connections dropped, new ones refused) and restored, and the same app object must serve
  normally again without a restart (the pool throws away the dead connections: kyffikus.dbpool).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from flask import Flask

from kyffikus.models import User
from kyffikus.services import apitokens, passnumber
from kyffikus.services import passes as passes_service
from tests.committed import Tills, app_of_its_own, commit_tills, committed_rows, database_url
from tests.conftest import free_port, login_as, postgres_only
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


# ---- asking ------------------------------------------------------------------------------------------


def ask_everything(app: Flask, till: Tills) -> dict[str, Any]:
    """The check by every way a till asks: page, QR URL (provider and anonymous), API, by number."""
    from kyffikus.extensions import csrf as _csrf  # noqa: F401 - the app has CSRF on

    provider = login_as(app.test_client(), till.users[0])
    answers: dict[str, Any] = {}
    answers["check page"] = provider.get("/anbieter/pruefen")
    answers["QR URL as provider"] = provider.get(f"/v/{till.pass_token}")
    answers["QR URL anonymous"] = app.test_client().get(f"/v/{till.pass_token}")
    bearer = {"Authorization": f"Bearer {till.api_tokens[0]}"}
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


def _outage_app(url: str, smtp_port: int) -> AbstractContextManager[Flask]:
    # A connection the proxy half-closes mid-transaction would otherwise keep its row locks on
    # the server for ever and block the clean-up; the server ends such a transaction itself.
    engine = {
        "connect_args": {"options": "-c idle_in_transaction_session_timeout=5000"},
    }
    return app_of_its_own(url, smtp_port, SQLALCHEMY_ENGINE_OPTIONS=engine)


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
    user = User(id=1, session_version=1)
    fake = Tills(
        users=[user],
        api_tokens=[apitokens.PREFIX + "x" * 43],
        offer_id=1,
        pass_id=1,
        pass_token=passes_service.new_token(),
        pass_number=passnumber.generate(),
    )
    with _outage_app(url, port) as app:
        answers = ask_everything(app, fake)
        answers["check POST"] = login_as(app.test_client(), user).post(
            "/anbieter/pruefen/ergebnis", data={"code": fake.pass_token}
        )
        problems = _assert_down({k: v for k, v in answers.items() if k != "check POST"})
        # The POST is refused before its CSRF check could even load the user: 503 or 400, never valid.
        if answers["check POST"].status_code not in (400, 503) or _valid(answers["check POST"]):
            problems.append(f"check POST: {answers['check POST'].status_code}")
        # The process itself still answers, even to a browser that sends a session cookie.
        for path in ("/healthz", "/static/css/app.css"):  # the 503 page needs its stylesheet
            status = login_as(app.test_client(), user).get(path).status_code
            if status != 200:
                problems.append(f"{path} with a session cookie: {status}")
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
    real = database_url(_session_app)
    with committed_rows(real) as committed:
        till = commit_tills(committed, "Ausfall", 1, api_tokens=True)
        server = sa.engine.make_url(real)
        proxy = CuttableProxy((server.host or "127.0.0.1", server.port or 5432))
        url = server.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        try:
            with _outage_app(url, smtp_port) as app:
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
