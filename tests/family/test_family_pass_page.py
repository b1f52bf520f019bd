"""The pass on the phone and on paper: page, QR image (caching), PDF card; and who may see them."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from kyffikus.services.passes import revoke_pass
from tests.family.family_helpers import decode_qr, pdf_text, render_pdf_pages

MM_PER_PT = 25.4 / 72


@pytest.fixture
def holder(client, login, family_with_pass) -> tuple[Any, Any]:
    household, pass_ = family_with_pass(
        adults=[("Ŝimon", "Müller-Lüdenscheidt"), ("Siobhán", "O'Brien")],
        children=[date(2016, 4, 12), date(2020, 9, 3)],
    )
    login(household.user)
    return household, pass_


def test_pass_page_shows_number_names_validity(client, holder) -> None:
    _household, pass_ = holder
    response = client.get("/familie/pass")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert pass_.grouped_number in html
    assert "Ŝimon Müller-Lüdenscheidt" in html
    assert "Siobhán O&#39;Brien" in html
    assert pass_.valid_until.strftime("%d.%m.%Y") in html
    assert f"/familie/pass/{pass_.id}/qr.png" in html
    assert "2 Kinder" in html
    assert pass_.token not in html  # the secret is only in the QR image
    assert "<script>" not in html.replace("<script src", "")  # no inline script (CSP)


def test_qr_image_decodes_to_the_pass_url_and_is_cached(client, holder) -> None:
    _household, pass_ = holder
    url = f"/familie/pass/{pass_.id}/qr.png"
    response = client.get(url)
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert decode_qr(response.data) == [f"http://localhost/v/{pass_.token}"]
    assert response.headers["Cache-Control"] == "private, max-age=86400"
    etag = response.headers["ETag"]
    assert etag
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["Cache-Control"] == "private, max-age=86400"
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_qr_holds_nothing_but_the_url(client, holder, app) -> None:
    _household, pass_ = holder
    app.config["BASE_URL"] = "https://familienpass.kyffhaeuser.example"
    try:
        (text,) = decode_qr(client.get(f"/familie/pass/{pass_.id}/qr.png").data)
    finally:
        app.config["BASE_URL"] = "http://localhost"
    assert text == f"https://familienpass.kyffhaeuser.example/v/{pass_.token}"
    for personal in ("Simon", "Ŝimon", "Müller", "Brien", "99706", "Markt"):
        assert personal not in text


def test_pdf_card_is_id1_two_pages_and_its_qr_decodes(client, holder) -> None:
    import pypdfium2 as pdfium

    _household, pass_ = holder
    response = client.get(f"/familie/pass/{pass_.id}/karte.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    doc = pdfium.PdfDocument(response.data)
    try:
        assert len(doc) == 2
        for page in doc:
            width, height = page.get_size()
            assert width * MM_PER_PT == pytest.approx(85.6, abs=0.1)
            assert height * MM_PER_PT == pytest.approx(54.0, abs=0.1)
    finally:
        doc.close()
    front, back = render_pdf_pages(response.data, dpi=600)
    assert decode_qr(front) == [f"http://localhost/v/{pass_.token}"]
    assert decode_qr(back) == []
    text = pdf_text(response.data)
    for expected in (
        "Kyffikus",
        "Ŝimon Müller-Lüdenscheidt",
        "O'Brien",
        pass_.grouped_number,
        "Sondershausen",
    ):
        assert expected in text
    assert pass_.valid_until.strftime("%d.%m.%Y") in text


def test_pdf_card_at_print_resolution(client, holder) -> None:
    """A 300 dpi office printer is enough for the QR code."""
    _household, pass_ = holder
    front = render_pdf_pages(client.get(f"/familie/pass/{pass_.id}/karte.pdf").data, dpi=300)[0]
    assert decode_qr(front) == [f"http://localhost/v/{pass_.token}"]


def test_very_long_names_still_fit(client, login, family_with_pass) -> None:
    household, pass_ = family_with_pass(
        adults=[("Maximiliane-Anastasia", "von " + "Überlangenamen" * 6)]
    )
    login(household.user)
    response = client.get(f"/familie/pass/{pass_.id}/karte.pdf")
    assert response.status_code == 200
    assert decode_qr(render_pdf_pages(response.data)[0]) == [f"http://localhost/v/{pass_.token}"]


def test_revoked_pass_is_shown_as_such_and_not_printed(client, holder) -> None:
    _household, pass_ = holder
    revoke_pass(pass_, None, reason="Test")
    html = client.get("/familie/pass").get_data(as_text=True)
    assert "Dieser Pass gilt nicht mehr" in html
    assert "Gesperrt" in html
    assert client.get(f"/familie/pass/{pass_.id}/karte.pdf").status_code == 409


def test_no_pass_yet(client, localities, make_family, login) -> None:
    login(make_family().user)
    response = client.get("/familie/pass")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/familie/")


# ---- one family cannot read another's data -----------------------------------------------------


@pytest.fixture
def two_families(localities, family_with_pass) -> tuple[Any, Any, Any, Any]:
    a_household, a_pass = family_with_pass(adults=[("Alma", "Amsel")], street="Amselweg 1")
    b_household, b_pass = family_with_pass(adults=[("Bert", "Bussard")], street="Bussardweg 2")
    return a_household, a_pass, b_household, b_pass


@pytest.mark.parametrize("suffix", ["qr.png", "karte.pdf"])
def test_family_b_cannot_read_a_s_pass(client, login, two_families, suffix: str) -> None:
    a_household, a_pass, b_household, b_pass = two_families
    login(b_household.user)
    assert client.get(f"/familie/pass/{b_pass.id}/{suffix}").status_code == 200
    response = client.get(f"/familie/pass/{a_pass.id}/{suffix}")
    assert response.status_code == 404
    assert a_pass.token.encode() not in response.data
    assert client.get(f"/familie/pass/999999/{suffix}").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/familie/",
        "/familie/haushalt",
        "/familie/antrag",
        "/familie/pass",
        "/familie/einloesungen",
        "/familie/daten/export.json",
    ],
)
def test_family_b_sees_only_its_own_household(client, login, two_families, url: str) -> None:
    a_household, a_pass, b_household, _b_pass = two_families
    login(b_household.user)
    response = client.get(url)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    for secret in (
        "Amsel",
        "Amselweg",
        a_pass.grouped_number,
        a_pass.number,
        a_pass.token,
        a_household.user.email,
    ):
        assert secret not in body


@pytest.mark.parametrize("role", ["provider", "staff", "admin"])
def test_other_roles_cannot_open_a_family_s_qr(
    client, make_user, make_provider, login, two_families, role
) -> None:
    _a, a_pass, _b, _bp = two_families
    login(make_user(role, provider=make_provider() if role == "provider" else None))
    assert client.get(f"/familie/pass/{a_pass.id}/qr.png").status_code == 403


def test_anonymous_cannot_open_the_qr(client, two_families) -> None:
    _a, a_pass, _b, _bp = two_families
    response = client.get(f"/familie/pass/{a_pass.id}/qr.png")
    assert response.status_code == 302
    assert "/konto/anmelden" in response.headers["Location"]
