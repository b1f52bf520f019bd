"""Home, privacy notice and imprint: what they must say, and how they are built."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kyffikus.models import berlin_today


def html_of(client: FlaskClient, url: str) -> str:
    """The page's HTML (status 200)."""
    response = client.get(url)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_home_explains_the_pass_who_may_apply_and_how(client: FlaskClient, catalogue: Any) -> None:
    html = html_of(client, "/")

    assert "kostenlose Familienpass des Kyffhäuserkreises" in html
    assert "Hauptwohnsitz" in html
    assert "06578" in html
    assert "Oldisleben" in html
    assert "jünger als 18 Jahre" in html
    assert "keine Einkommensgrenze" in html
    assert 'id="so-funktionierts"' in html
    assert "Markt 8, 99706 Sondershausen" in html
    assert 'href="/konto/registrieren"' in html
    assert "Für Anbieter" in html
    assert "warten 47 Angebote auf Sie" in html
    assert "Dabei sind 34 Anbieter." in html
    assert "1. Januar 2026" in html


def test_home_counts_one_offer_in_the_singular(
    client: FlaskClient,
    make_edition: Callable[..., Any],
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
) -> None:
    today = berlin_today()
    edition = make_edition(
        valid_from=today - timedelta(days=10), valid_until=today + timedelta(days=10)
    )
    make_offer(make_provider(), edition=edition)

    html = html_of(client, "/")

    assert "wartet 1 Angebot auf Sie" in html
    assert "Dabei ist 1 Anbieter." in html


def test_home_without_a_catalogue_still_works(client: FlaskClient) -> None:
    html = html_of(client, "/")

    assert 'id="so-funktionierts"' in html
    assert "warten" not in html


def test_privacy_notice_names_controller_data_recipients_and_rights(client: FlaskClient) -> None:
    html = html_of(client, "/datenschutz")

    for text in [
        "Landratsamt Kyffhäuserkreis",
        "Jugend- und Sozialamt",
        "Markt 8",
        "99706 Sondershausen",
        "Geburtsdaten der Kinder",
        "freiwillig eine Telefonnummer",
        "Art. 6 Abs. 1 Buchst. e DSGVO",
        "Einwilligung",
        "Alter in Jahren",
        "sehen sie nie",
        "JSON-Datei herunterladen",
        "Konto jederzeit selbst löschen",
        "Thüringer Landesbeauftragter für den Datenschutz",
        "kein Tracking",
        "lädt nichts von anderen Servern",
    ]:
        assert text in html, text


def test_privacy_notice_shows_the_configured_retention_defaults(client: FlaskClient) -> None:
    html = html_of(client, "/datenschutz")

    assert "Abgelehnte Anträge löschen wir 180 Tage nach der Entscheidung." in html
    assert "Abgelaufene Pässe löschen wir 1 Jahr nach dem Ablauf." in html
    assert (
        "Einlösungen, die älter als 2 Jahre sind, behalten wir nur noch als anonyme Zählung" in html
    )


@pytest.mark.parametrize(
    ("key", "days", "text"),
    [
        ("RETENTION_REJECTED_APPLICATION_DAYS", 90, "Abgelehnte Anträge löschen wir 90 Tage nach"),
        ("RETENTION_EXPIRED_PASS_DAYS", 730, "Abgelaufene Pässe löschen wir 2 Jahre nach"),
        ("RETENTION_REDEMPTION_DAYS", 1, "Einlösungen, die älter als 1 Tag sind"),
    ],
)
def test_privacy_notice_follows_the_configuration(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch, key: str, days: int, text: str
) -> None:
    monkeypatch.setitem(app.config, key, days)

    assert text in html_of(client, "/datenschutz")


def test_imprint(client: FlaskClient) -> None:
    html = html_of(client, "/impressum")

    assert "<h1>Impressum</h1>" in html
    assert "Markt 8" in html
    assert "99706 Sondershausen" in html
    assert "mailto:" in html


PAGES = ["/", "/angebote", "/datenschutz", "/impressum", "/anbieter-verzeichnis/barbarossahoehle"]


@pytest.mark.parametrize("url", PAGES)
def test_pages_are_small_local_and_without_inline_code(
    client: FlaskClient, catalogue: Any, url: str
) -> None:
    response = client.get(url)
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert len(response.data) < 150_000
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in html
    # Nothing is loaded from another host; scripts only from files, with the nonce; no style="".
    assert not re.search(r'<(?:script|link|img|iframe)[^>]+(?:src|href)="(?:https?:)?//', html)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert " style=" not in html
    assert "<main" in html
    assert "<h1" in html
    assert "<nav" in html
    assert "script-src 'self' 'nonce-" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("url", PAGES[:4])
def test_public_pages_change_nothing_and_are_cacheable_for_anonymous_visitors(
    client: FlaskClient, catalogue: Any, url: str
) -> None:
    response = client.get(url)

    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")
    assert client.post(url).status_code in (400, 405)
