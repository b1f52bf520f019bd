"""Helpers for the family tests: household form data, localities by name, QR and PDF decoding."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

from sqlalchemy import select

from kyffikus.extensions import db


def locality_value(name: str, postal_code: str | None = None) -> str:
    """The <select> value of a locality (district) or outside locality ("a<id>")."""
    from kyffikus.models import Locality, OutsideLocality

    query = select(Locality).where(Locality.name == name)
    if postal_code:
        query = query.where(Locality.postal_code == postal_code)
    loc = db.session.scalars(query).first()
    if loc is not None:
        return str(loc.id)
    outside = db.session.scalars(
        select(OutsideLocality).where(OutsideLocality.name == name)
    ).first()
    assert outside is not None, f"no locality {name}"
    return f"a{outside.id}"


def household_form(
    *,
    adults: list[tuple[str, str]] | None = None,
    children: list[tuple[str, str]] | None = None,
    street: str = "Markt 8",
    postal_code: str = "99706",
    locality: str | None = None,
    phone: str = "",
    consent: bool = True,
) -> dict[str, Any]:
    """Form fields of the household page (locality: a <select> value; default Sondershausen)."""
    data: dict[str, Any] = {
        "street": street,
        "postal_code": postal_code,
        "locality": locality if locality is not None else locality_value("Sondershausen", "99706"),
        "phone": phone,
    }
    if consent:
        data["consent"] = "y"
    for i, (first, last) in enumerate(
        (adults if adults is not None else [("Anna", "Muster")]) + [("", "")] * 2
    ):
        if i >= 2:
            break
        data[f"adults-{i}-first_name"] = first
        data[f"adults-{i}-last_name"] = last
    rows = children if children is not None else [("Lina", "2019-05-17")]
    for i in range(max(6, len(rows))):
        first, born = rows[i] if i < len(rows) else ("", "")
        data[f"children-{i}-first_name"] = first
        data[f"children-{i}-birth_date"] = born
    return data


def decode_qr(image: Any) -> list[str]:
    """The texts of every QR code zxing-cpp finds in a PIL image or PNG bytes."""
    import zxingcpp
    from PIL import Image

    if isinstance(image, bytes | bytearray):
        image = Image.open(io.BytesIO(image))
    return [r.text for r in zxingcpp.read_barcodes(image)]


def render_pdf_pages(data: bytes, dpi: int = 600) -> list[Any]:
    """Every page of a PDF rendered with pypdfium2 as a PIL image."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(data)
    try:
        return [doc[i].render(scale=dpi / 72).to_pil() for i in range(len(doc))]
    finally:
        doc.close()


def pdf_text(data: bytes) -> str:
    """All text of a PDF (for checking names and numbers)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(data)
    try:
        texts = []
        for i in range(len(doc)):
            textpage = doc[i].get_textpage()
            texts.append(textpage.get_text_range())
            textpage.close()
        return "\n".join(texts)
    finally:
        doc.close()


def years_ago(on: date, years: int, days: int = 0) -> date:
    """A birth date `years` years and `days` days before `on` (29 Feb safe)."""
    from datetime import timedelta

    try:
        born = on.replace(year=on.year - years)
    except ValueError:
        born = on.replace(year=on.year - years, day=28)
    return born - timedelta(days=days)
