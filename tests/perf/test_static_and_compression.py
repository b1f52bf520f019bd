"""Fingerprinted static URLs with long cache lifetimes; gzip for HTML, JSON and static text."""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, jsonify, stream_with_context

from kyffikus import create_app
from kyffikus.extensions import db
from tests.conftest import test_config as base_config

STATIC = Path(__file__).resolve().parents[2] / "kyffikus" / "static"
STATIC_LINK = re.compile(r'(?:href|src)="(/static/([^"?]+)\?v=([0-9a-f]+))"')


@pytest.fixture
def bare_app() -> Iterator[Flask]:
    """A fresh app with a few routes of known shape (big JSON, a stream, a PNG, a tiny body)."""
    app = create_app(base_config("sqlite://", 25))

    @app.get("/_t/json")
    def big_json() -> Response:
        return jsonify(
            {"offers": [{"id": i, "title": f"Freibad Sondershausen {i}"} for i in range(200)]}
        )

    @app.get("/_t/tiny")
    def tiny() -> Response:
        return jsonify({"ok": True})

    @app.get("/_t/stream")
    def stream() -> Response:
        def rows() -> Iterator[str]:
            yield "Datum;Angebot\n"
            for i in range(500):
                yield f"2026-01-01;Angebot {i}\n"

        return Response(stream_with_context(rows()), mimetype="text/csv")

    @app.get("/_t/png")
    def png() -> Response:
        return Response(b"\x89PNG\r\n\x1a\n" + b"\0" * 4000, mimetype="image/png")

    yield app
    with app.app_context():
        db.engine.dispose()


def _static_links(html: str) -> list[tuple[str, str, str]]:
    return STATIC_LINK.findall(html)


def test_pages_link_static_files_by_content_fingerprint(client: Any) -> None:
    html = client.get("/").get_data(as_text=True)
    links = _static_links(html)
    names = {name for _url, name, _v in links}
    assert {"css/app.css", "js/app.js"} <= names
    for _url, name, version in links:
        expected = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[: len(version)]
        assert version == expected
        assert len(version) == 12


def test_fingerprinted_static_files_are_cached_for_a_year(client: Any) -> None:
    url, _name, _v = _static_links(client.get("/").get_data(as_text=True))[0]
    response = client.get(url)
    assert response.status_code == 200
    cache = response.headers["Cache-Control"]
    assert "max-age=31536000" in cache
    assert "immutable" in cache
    assert "public" in cache
    assert "no-store" not in cache


@pytest.mark.parametrize("query", ["", "?v=0123456789ab", "?v="])
def test_static_files_without_the_current_fingerprint_get_a_short_lifetime(
    client: Any, query: str
) -> None:
    response = client.get("/static/css/app.css" + query)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert "Expires" not in response.headers


def test_asset_url_template_global(app: Flask) -> None:
    with app.test_request_context():
        url = app.jinja_env.globals["asset_url"]("img/favicon.svg")
    digest = hashlib.sha256((STATIC / "img/favicon.svg").read_bytes()).hexdigest()[:12]
    assert url == f"/static/img/favicon.svg?v={digest}"


def test_html_is_gzipped_when_the_client_accepts_it(client: Any) -> None:
    plain = client.get("/")
    zipped = client.get("/", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert plain.status_code == zipped.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert "Accept-Encoding" in plain.headers["Vary"]
    body = gzip.decompress(zipped.data).decode()
    assert body.startswith("<!doctype html>")
    assert len(zipped.data) < len(plain.data) / 2
    assert int(zipped.headers["Content-Length"]) == len(zipped.data)


def test_json_is_gzipped_when_the_client_accepts_it(bare_app: Flask) -> None:
    client = bare_app.test_client()
    response = client.get("/_t/json", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.mimetype == "application/json"
    import json

    assert len(json.loads(gzip.decompress(response.data))["offers"]) == 200


@pytest.mark.parametrize("size", [500, 511, 512, 513, 4096, 32767, 32768, 32769, 300_000])
def test_gzip_bodies_of_every_size_come_back_whole(size: int) -> None:
    from kyffikus.compression import _gzip

    # Words that repeat across the body (back references as far as the window reaches) and
    # digits that do not.
    text = "".join(f"Freibad Sondershausen {i * 7919 % 10007} " for i in range(size // 8 + 1))
    body = text[:size].encode()
    zipped = _gzip(body)
    assert gzip.decompress(zipped) == body
    assert zipped == _gzip(body)  # the same body, the same bytes (no time in the header)
    if size >= 4096:
        assert len(zipped) < size / 2


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/_t/json", "identity"),  # the client does not take gzip
        ("/_t/json", "gzip;q=0"),
        ("/_t/tiny", "gzip"),  # too small to be worth it
        ("/_t/png", "gzip"),  # already compressed
        ("/_t/stream", "gzip"),  # a streamed export goes out as it is produced
    ],
)
def test_responses_left_alone(bare_app: Flask, path: str, accept: str) -> None:
    response = bare_app.test_client().get(path, headers={"Accept-Encoding": accept})
    assert response.status_code == 200
    assert "Content-Encoding" not in response.headers


def test_streamed_export_still_streams(bare_app: Flask) -> None:
    response = bare_app.test_client().get("/_t/stream", headers={"Accept-Encoding": "gzip"})
    assert response.is_streamed
    assert response.get_data(as_text=True).count("\n") == 501


def test_static_text_is_gzipped_and_revalidates_with_304(client: Any) -> None:
    headers = {"Accept-Encoding": "gzip"}
    first = client.get("/static/css/app.css", headers=headers)
    assert first.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(first.data) == (STATIC / "css/app.css").read_bytes()
    etag = first.headers["ETag"]
    assert etag.startswith("W/")
    again = client.get("/static/css/app.css", headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304
