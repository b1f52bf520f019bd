"""The sample gunicorn.conf.py: settings from the environment, no personal data in the access log."""

from __future__ import annotations

import runpy
import secrets
from pathlib import Path
from typing import Any

import pytest

CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


def _load(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return runpy.run_path(str(CONF))


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = _load(
        monkeypatch,
        GUNICORN_WORKERS="3",
        GUNICORN_BIND="10.0.0.5:8000",
        GUNICORN_FORWARDED_ALLOW_IPS="10.0.0.1",
        GUNICORN_ACCESS_LOG="off",
        GUNICORN_REUSE_PORT="1",
    )
    assert conf["workers"] == 3
    assert conf["reuse_port"] is True
    assert conf["bind"] == "10.0.0.5:8000"
    assert conf["forwarded_allow_ips"] == "10.0.0.1"
    assert conf["accesslog"] is None


def test_workers_share_one_socket_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUNICORN_REUSE_PORT", raising=False)
    assert runpy.run_path(str(CONF))["reuse_port"] is False


def test_access_log_has_no_query_string_address_referrer_or_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fmt = _load(monkeypatch)["access_log_format"]
    for atom in ("%(q)s", "%(r)s", "%(h)s", "%(f)s", "%(a)s", "%(u)s"):
        assert atom not in fmt
    assert "%(U)s" in fmt


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        # Fixed values: xdist workers must collect identical test ids.
        ("/v/EbDaDcy7oG_oeFQs5jPupGLlEJ3wy9Vh", "/v/…"),
        ("/anbieter/pruefen/7KQ3-M9XA-2B", "/anbieter/pruefen/…"),
        (
            "/konto/passwort-neu/lSmAi3MnXA8CUMqgUDOz6N-1Z9_YZXxjW4WzMUNsUJ8",
            "/konto/passwort-neu/…",
        ),
        (
            "/anbieter-verzeichnis/schwimmbad-sondershausen",
            "/anbieter-verzeichnis/schwimmbad-sondershausen",
        ),
        ("/familie/pass/12/qr.png", "/familie/pass/12/qr.png"),
        ("/static/css/app.css", "/static/css/app.css"),
    ],
)
def test_secrets_in_paths_are_not_logged(
    monkeypatch: pytest.MonkeyPatch, path: str, logged: str
) -> None:
    assert _load(monkeypatch)["redact_path"](path) == logged


def test_the_access_log_line_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config

    conf = _load(monkeypatch)
    logger = conf["RedactingLogger"](Config())
    token = secrets.token_urlsafe(24)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/v/{token}?x=1", "SERVER_PROTOCOL": "HTTP/1.1",
               "PATH_INFO": f"/v/{token}", "QUERY_STRING": "x=1", "REMOTE_ADDR": "192.0.2.7"}  # fmt: skip
    atoms = logger.atoms(
        SimpleNamespace(status="200 OK", sent=10, headers=[]),
        {},
        environ,
        timedelta(milliseconds=3),
    )
    line = conf["access_log_format"] % atoms
    assert token not in line
    assert "192.0.2.7" not in line
    assert '"GET /v/…" 200' in line
