"""The yearly report for the funding body: a PDF that renders, in German, with the year's figures."""

from __future__ import annotations

from typing import Any

import pypdfium2 as pdfium
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import login_as
from tests.staff.test_statistics import Dataset, build_dataset


@pytest.fixture
def dataset(
    localities: None,
    make_family: Any,
    make_pass: Any,
    make_edition: Any,
    make_provider: Any,
    make_offer: Any,
    make_user: Any,
    app: Flask,
) -> Dataset:
    """The statistics tests' generated data set."""
    with app.test_request_context():
        return build_dataset(
            make_family, make_pass, make_edition, make_provider, make_offer, make_user
        )


def _text(pdf_bytes: bytes) -> tuple[int, str]:
    document = pdfium.PdfDocument(pdf_bytes)
    try:
        pages = len(document)
        text = "\n".join(document[i].get_textpage().get_text_range() for i in range(pages))
    finally:
        document.close()
    return pages, " ".join(text.split())


def test_report_pdf_renders_with_the_year_and_the_district(
    client: FlaskClient, dataset: Dataset, make_user: Any
) -> None:
    login_as(client, make_user("staff"))
    response = client.get(f"/verwaltung/statistik/bericht.pdf?jahr={dataset.year}")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert f"kyffikus-jahresbericht-{dataset.year}.pdf" in response.headers["Content-Disposition"]
    pages, text = _text(response.get_data())
    assert pages >= 2
    assert str(dataset.year) in text
    assert "Kyffhäuserkreis" in text
    assert "Solidarisches Zusammenleben der Generationen" in text
    # Reach by municipality, use by category, with the small group hidden.
    for words in ("Sondershausen", "Greußen", "Kultur", "Statistikangebot 1", "<5"):
        assert words in text, words
    # Every page renders to an image without error.
    document = pdfium.PdfDocument(response.get_data())
    try:
        for i in range(len(document)):
            image = document[i].render(scale=0.5).to_pil()
            assert image.width > 200
    finally:
        document.close()


def test_report_for_a_year_without_data_still_renders(
    client: FlaskClient, app: Flask, make_user: Any
) -> None:
    login_as(client, make_user("admin"))
    response = client.get("/verwaltung/statistik/bericht.pdf?jahr=2020")
    assert response.status_code == 200
    pages, text = _text(response.get_data())
    assert pages >= 2
    assert "2020" in text
    assert "Keine Einträge" in text


def test_report_pages_are_a4(client: FlaskClient, app: Flask, make_user: Any) -> None:
    login_as(client, make_user("staff"))
    document = pdfium.PdfDocument(
        client.get("/verwaltung/statistik/bericht.pdf?jahr=2021").get_data()
    )
    try:
        width, height = document[0].get_size()
    finally:
        document.close()
    # A4 is 595 x 842 points.
    assert round(width) == 595
    assert round(height) == 842


def test_a_bad_year_gets_no_report(client: FlaskClient, app: Flask, make_user: Any) -> None:
    login_as(client, make_user("staff"))
    response = client.get("/verwaltung/statistik/bericht.pdf?jahr=zwanzig")
    assert response.status_code == 400
