"""The application factory, configuration and error pages."""

from __future__ import annotations

import pytest

from kyffikus import create_app
from kyffikus.config import ConfigError


def test_production_refuses_to_start_without_secret_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.delenv("KYFFIKUS_SECRET_KEY", raising=False)
    monkeypatch.delenv("KYFFIKUS_ENV", raising=False)
    monkeypatch.setenv("KYFFIKUS_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="KYFFIKUS_SECRET_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_development_writes_a_random_secret_key_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.delenv("KYFFIKUS_SECRET_KEY", raising=False)
    monkeypatch.setenv("KYFFIKUS_INSTANCE_PATH", str(tmp_path))
    first = create_app({"DEBUG": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    second = create_app({"DEBUG": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    key = (tmp_path / "secret_key").read_text()
    assert len(key) == 64
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == key


def test_secret_key_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("KYFFIKUS_SECRET_KEY", "from-the-environment")
    monkeypatch.setenv("KYFFIKUS_INSTANCE_PATH", str(tmp_path))
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["SECRET_KEY"] == "from-the-environment"
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_database_url_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://kyf@db.internal/kyffikus")
    monkeypatch.setenv("KYFFIKUS_INSTANCE_PATH", str(tmp_path))
    app = create_app({"TESTING": True, "SECRET_KEY": "x"})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://kyf@db.internal/kyffikus"


def test_unknown_page_is_404_in_german(client) -> None:
    response = client.get("/gibt-es-nicht")
    assert response.status_code == 404
    assert "Diese Seite gibt es nicht" in response.get_data(as_text=True)


def test_unknown_api_route_is_json_404(client) -> None:
    response = client.get("/api/v1/gibt-es-nicht")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
