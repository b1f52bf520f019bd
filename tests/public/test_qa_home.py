"""QA: the home page tells providers what they really do (staff keep the offers), in both languages."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.public.directory_data import use_compiled_english


def test_home_says_the_district_office_enters_the_offers(app: Flask, client: FlaskClient) -> None:
    use_compiled_english(app)
    german = client.get("/").get_data(as_text=True)
    english = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)

    # Providers edit contact details and venue notes only; the provider account page says so too.
    assert "Ihre Angebote trägt das Landratsamt für Sie ein." in german
    assert "pflegen Ihre Angebote selbst" not in german
    assert "the district office enters your offers for you." in english
