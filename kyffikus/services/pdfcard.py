"""The printable pass card: ID-1 size (85.6 x 54 mm), front and back, built with fpdf2.

fpdf2's core fonts are Latin-1 only, so the card embeds DejaVu Sans (shipped in
kyffikus/static/fonts/ with its licence): names like Ŝimon or Łukasz print correctly and the app
does not depend on the server's fonts. The QR code is drawn as vector squares, sharp at any
printer resolution.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

from flask import current_app
from flask_babel import format_date
from flask_babel import gettext as _
from fpdf import FPDF

from kyffikus.models.passes import Pass
from kyffikus.services.passes import pass_url
from kyffikus.services.qr import qr_matrix

CARD_W = 85.6
CARD_H = 54.0
MARGIN = 4.0
BAND_H = 10.0
QR_SIZE = 31.0
FONT_DIR = Path(__file__).resolve().parent.parent / "static" / "fonts"
FONT = "DejaVu"
GREEN = (31, 95, 63)  # the district green of the web pages
GREY = (77, 87, 82)
DISTRICT_OFFICE = (
    "Landratsamt Kyffhäuserkreis · Jugend- und Sozialamt",
    "Markt 8 · 99706 Sondershausen",
)

# fontTools logs every subsetting step at INFO; that is noise in the app's log.
logging.getLogger("fontTools").setLevel(logging.WARNING)


def render_card(pass_: Pass) -> bytes:
    """The two-page PDF card for a pass (front: names, number, validity, QR; back: how to use it)."""
    pdf = FPDF(orientation="L", unit="mm", format=(CARD_H, CARD_W))
    pdf.set_auto_page_break(False)
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.add_font(FONT, "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.set_title(_("Familienpass Kyffikus"))
    pdf.set_creator("Kyffikus")
    _front(pdf, pass_)
    _back(pdf)
    return bytes(pdf.output())


def _front(pdf: FPDF, pass_: Pass) -> None:
    pdf.add_page()
    # Header band.
    pdf.set_fill_color(*GREEN)
    pdf.rect(0, 0, CARD_W, BAND_H, style="F")
    pdf.set_text_color(255, 255, 255)
    pdf.set_font(FONT, "B", 12)
    pdf.set_xy(MARGIN, 1.2)
    pdf.cell(40, 5.5, "Kyffikus")
    pdf.set_font(FONT, "", 6.5)
    pdf.set_xy(MARGIN, 6.0)
    pdf.cell(60, 3, _("Familienpass Kyffhäuserkreis"))

    # The QR code on the right, black on white with its quiet zone.
    qr_x = CARD_W - MARGIN - QR_SIZE + 1.5
    qr_y = BAND_H + 1.0
    _draw_qr(pdf, pass_url(pass_), qr_x, qr_y, QR_SIZE)
    pdf.set_text_color(*GREY)
    pdf.set_font(FONT, "", 5)
    pdf.set_xy(qr_x, qr_y + QR_SIZE - 1.0)
    pdf.cell(QR_SIZE, 2.5, _("Zum Prüfen scannen"), align="C")

    # Names and validity on the left.
    left_w = qr_x - MARGIN - 1.5
    y = BAND_H + 2.5
    pdf.set_text_color(*GREY)
    pdf.set_font(FONT, "", 5.5)
    pdf.set_xy(MARGIN, y)
    pdf.cell(left_w, 2.5, _("Gilt für"))
    y += 3.0
    pdf.set_text_color(0, 0, 0)
    for name in pass_.holder_names[:2]:
        y = _fitted_name(pdf, name, MARGIN, y, left_w)
    y = max(y + 1.0, BAND_H + 16.0)
    pdf.set_text_color(*GREY)
    pdf.set_font(FONT, "", 5.5)
    pdf.set_xy(MARGIN, y)
    pdf.cell(left_w, 2.5, _("Gültig"))
    pdf.set_text_color(0, 0, 0)
    pdf.set_font(FONT, "B", 7.5)
    pdf.set_xy(MARGIN, y + 2.7)
    pdf.cell(
        left_w,
        3.5,
        _(
            "%(start)s bis %(end)s",
            start=format_date(pass_.valid_from, "medium"),
            end=format_date(pass_.valid_until, "medium"),
        ),
    )

    # The number for typing at a till, large, at the bottom.
    pdf.set_text_color(*GREY)
    pdf.set_font(FONT, "", 5.5)
    pdf.set_xy(MARGIN, CARD_H - 12.5)
    pdf.cell(left_w, 2.5, _("Passnummer"))
    pdf.set_text_color(0, 0, 0)
    pdf.set_font(FONT, "B", 11)
    pdf.set_xy(MARGIN, CARD_H - 9.5)
    pdf.cell(left_w, 5, pass_.grouped_number)
    pdf.set_draw_color(*GREEN)
    pdf.set_line_width(0.4)
    pdf.line(0, CARD_H - 0.2, CARD_W, CARD_H - 0.2)


def _back(pdf: FPDF) -> None:
    pdf.add_page()
    base = current_app.config["BASE_URL"].rstrip("/")
    pdf.set_fill_color(*GREEN)
    pdf.rect(0, 0, CARD_W, 2.0, style="F")
    pdf.set_text_color(*GREEN)
    pdf.set_font(FONT, "B", 8)
    pdf.set_xy(MARGIN, 4.0)
    pdf.cell(CARD_W - 2 * MARGIN, 4, _("So nutzen Sie Ihren Familienpass"))
    pdf.set_text_color(0, 0, 0)
    pdf.set_font(FONT, "", 6)
    pdf.set_xy(MARGIN, 9.0)
    steps = [
        _("1. Zeigen Sie den Pass an der Kasse vor – gedruckt oder auf dem Handy."),
        _("2. Die Kasse scannt den QR-Code oder tippt die Passnummer ein."),
        _(
            "3. Bitte halten Sie einen Ausweis bereit: Der Pass gilt für die genannten Erwachsenen "
            "und ihre Kinder unter 18 Jahren."
        ),
        _("Alle Angebote: %(url)s", url=f"{base}/angebote"),
        _(
            "Pass verloren? Ersetzen Sie ihn unter %(url)s oder beim Landratsamt – der alte Pass wird "
            "sofort gesperrt.",
            url=f"{base}/familie",
        ),
    ]
    for step in steps:
        pdf.multi_cell(CARD_W - 2 * MARGIN, 2.9, step, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(pdf.get_y() + 0.6)
    pdf.set_text_color(*GREY)
    pdf.set_font(FONT, "", 5)
    for index, line in enumerate(DISTRICT_OFFICE):
        pdf.set_xy(MARGIN, CARD_H - 9.0 + index * 2.6)
        pdf.cell(CARD_W - 2 * MARGIN, 2.6, line)


def _fitted_name(pdf: FPDF, name: str, x: float, y: float, width: float) -> float:
    """Print a name as large as fits (9 pt down to 6 pt); very long names wrap to two lines."""
    for size in (9.0, 8.5, 8.0, 7.5, 7.0, 6.5, 6.0):
        pdf.set_font(FONT, "B", size)
        if pdf.get_string_width(name) <= width:
            pdf.set_xy(x, y)
            pdf.cell(width, size * 0.45, name)
            return y + size * 0.45
    pdf.set_font(FONT, "B", 6.0)
    lines = cast(list[str], pdf.multi_cell(width, 2.7, name, dry_run=True, output="LINES"))
    if len(lines) > 2:
        second = lines[1]
        while second and pdf.get_string_width(second + "…") > width:
            second = second[:-1]
        lines = [lines[0], second.rstrip() + "…"]
    for line in lines:
        pdf.set_xy(x, y)
        pdf.cell(width, 2.7, line)
        y += 2.7
    return y


def _draw_qr(pdf: FPDF, data: str, x: float, y: float, size: float) -> None:
    """Draw the QR code as filled squares; adjacent dark modules in a row merge into one rectangle."""
    matrix = qr_matrix(data)
    module = size / len(matrix)
    pdf.set_fill_color(255, 255, 255)
    pdf.rect(x, y, size, size, style="F")
    pdf.set_fill_color(0, 0, 0)
    for row_index, row in enumerate(matrix):
        col = 0
        while col < len(row):
            if not row[col]:
                col += 1
                continue
            start = col
            while col < len(row) and row[col]:
                col += 1
            # A hair of overlap hides the white seams some renderers draw between squares.
            pdf.rect(
                x + start * module,
                y + row_index * module,
                (col - start) * module + 0.01,
                module + 0.01,
                style="F",
            )
