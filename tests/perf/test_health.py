"""/healthz and /readyz: what a load balancer polls every few seconds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from kyffikus import create_app
from kyffikus.extensions import db
from tests.conftest import postgres_only
from tests.conftest import test_config as base_config
from tests.perf.conftest import sent_statements

# Nothing listens on port 1: connecting is refused at once, like a database host that is down.
DEAD_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/kyffikus_nowhere"


@pytest.fixture
def dead_db_app() -> Iterator[Flask]:
    """An app whose database cannot be reached."""
    app = create_app(base_config(DEAD_DATABASE, 25))
    yield app
    with app.app_context():
        db.engine.dispose()


def test_healthz_answers_without_the_database(dead_db_app: Flask) -> None:
    started = time.monotonic()
    response = dead_db_app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert time.monotonic() - started < 1
    assert "Set-Cookie" not in response.headers


def test_healthz_sends_no_query(client: Any) -> None:
    with sent_statements() as statements:
        assert client.get("/healthz").status_code == 200
    assert statements == []


def test_readyz_is_ok_when_the_database_answers(client: Any) -> None:
    with sent_statements() as statements:
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    # SELECT 1, plus the short statement timeout on PostgreSQL: nothing more.
    assert any("SELECT 1" in s for s in statements)
    assert len(statements) <= 2


def test_readyz_is_503_within_seconds_when_the_database_is_down(dead_db_app: Flask) -> None:
    client = dead_db_app.test_client()
    for _ in range(2):  # the second try must not hang on a broken pooled connection either
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.get_json() == {"status": "unavailable"}
        assert elapsed < 5, f"/readyz took {elapsed:.1f} s"
        assert "Set-Cookie" not in response.headers


@postgres_only
def test_readyz_timeout_does_not_stay_on_the_connection(app: Flask, client: Any) -> None:
    before = db.session.execute(text("SHOW statement_timeout")).scalar_one()
    app.config["READYZ_TIMEOUT_MS"] = 1234
    try:
        assert client.get("/readyz").status_code == 200
    finally:
        app.config.pop("READYZ_TIMEOUT_MS")
    assert db.session.execute(text("SHOW statement_timeout")).scalar_one() == before


@postgres_only
def test_readyz_is_503_when_the_database_is_too_slow(
    app: Flask, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database that takes longer than the timeout is as good as down for the balancer.
    import kyffikus.health as health

    real_text = health.text
    monkeypatch.setattr(
        health, "text", lambda sql: real_text("SELECT pg_sleep(1), 1" if sql == "SELECT 1" else sql)
    )
    app.config["READYZ_TIMEOUT_MS"] = 50
    try:
        started = time.monotonic()
        response = client.get("/readyz")
    finally:
        app.config.pop("READYZ_TIMEOUT_MS")
    assert response.status_code == 503
    assert time.monotonic() - started < 0.9


def test_bench_floor_exists_only_when_asked(client: Any) -> None:
    assert client.get("/bench/floor").status_code == 404
    app = create_app({**base_config("sqlite://", 25), "BENCH_FLOOR": 1})
    response = app.test_client().get("/bench/floor")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "ok\n"
