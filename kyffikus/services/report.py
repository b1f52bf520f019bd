"""The yearly report for the funding body as a PDF (A4, German): reach, use, charts and tables.

The figures come from kyffikus.services.statistics.yearly, already protected (small groups shown
as "<5", complementary cells as "x"). Charts are drawn with fpdf2's rectangles; a hidden figure
gets no bar, only its mark. Text uses the vendored DejaVu Sans, so every Umlaut prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from flask_babel import format_date
from flask_babel import gettext as _
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from kyffikus.models.base import berlin_today
from kyffikus.services.charts import nice_scale, shorten
from kyffikus.services.statistics import Cell, Statistics, Table, figures_table, format_cell, yearly

FONT_DIR = Path(__file__).resolve().parent.parent / "static" / "fonts"
FONT = "DejaVu"
GREEN = (31, 95, 63)
GREEN_LIGHT = (231, 241, 234)
GREY = (77, 87, 82)
PROGRAMME = "Solidarisches Zusammenleben der Generationen"
DISTRICT = "Kyffhäuserkreis"
# Tables longer than this are printed without a chart (a chart of 70 providers helps nobody).
CHART_ROWS = 30


class ReportPDF(FPDF):
    """A4 pages with the programme's header and page numbers in the footer."""

    def __init__(self, year: int) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.year = year
        self.add_font(FONT, "", str(FONT_DIR / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
        self.set_margins(18, 18, 18)
        self.set_auto_page_break(auto=True, margin=20)
        self.set_title(_("Familienpass Kyffikus: Jahresbericht %(year)s", year=year))
        self.set_author(_("Landratsamt Kyffhäuserkreis"))
        self.set_subject(PROGRAMME)
        self.set_lang("de")

    def header(self) -> None:
        """The running head from the second page on."""
        if self.page_no() == 1:
            return
        self.set_font(FONT, "", 8)
        self.set_text_color(*GREY)
        self.cell(
            0,
            5,
            _(
                "Familienpass Kyffikus · Jahresbericht %(year)s · %(district)s",
                year=self.year,
                district=DISTRICT,
            ),
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        self.ln(3)
        self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        """Page x of n."""
        self.set_y(-14)
        self.set_font(FONT, "", 8)
        self.set_text_color(*GREY)
        self.cell(
            0, 5, _("Seite %(page)s von %(pages)s", page=self.page_no(), pages="{nb}"), align="C"
        )
        self.set_text_color(0, 0, 0)

    # ---- building blocks ----

    def heading(self, text: str, size: float = 14) -> None:
        """A section heading; starts a new page when too little room is left."""
        if self.get_y() > self.h - 60:
            self.add_page()
        self.ln(3)
        self.set_font(FONT, "B", size)
        self.set_text_color(*GREEN)
        self.multi_cell(0, size * 0.5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0, 0, 0)
        self.ln(2)

    def paragraph(
        self, text: str, size: float = 10, colour: tuple[int, int, int] = (0, 0, 0)
    ) -> None:
        """A paragraph of text."""
        self.set_font(FONT, "", size)
        self.set_text_color(*colour)
        self.multi_cell(0, size * 0.5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0, 0, 0)
        self.ln(2)

    def table_of(self, table: Table) -> None:
        """A statistics table, numbers right-aligned, the total in bold."""
        if not table.rows:
            self.paragraph(_("Keine Einträge."), colour=GREY)
            return
        count = len(table.columns)
        text_columns = [c for c in table.columns if not c.numeric]
        numeric = count - len(text_columns)
        widths = [
            (self.epw - 28 * numeric) / max(len(text_columns), 1) if not c.numeric else 28
            for c in table.columns
        ]
        align = tuple("LEFT" if not c.numeric else "RIGHT" for c in table.columns)
        self.set_font(FONT, "", 9)
        headings = FontFace(emphasis="BOLD", fill_color=GREEN_LIGHT)
        with self.table(
            col_widths=widths,
            text_align=align,
            headings_style=headings,
            line_height=5,
            padding=(1, 1.5),
            first_row_as_headings=True,
            repeat_headings=1,
        ) as pdf_table:
            head = pdf_table.row()
            for column in table.columns:
                head.cell(column.label)
            for row in table.rows:
                pdf_row = pdf_table.row()
                for cell in row:
                    pdf_row.cell(format_cell(cell))
            if table.total:
                total = pdf_table.row(style=FontFace(emphasis="BOLD"))
                for cell in table.total:
                    total.cell(format_cell(cell))
        self.ln(4)

    def bar_chart(self, title: str, bars: Sequence[tuple[str, Cell]]) -> None:
        """Horizontal bars with labels and figures; hidden figures get their mark and no bar."""
        if not bars:
            return
        row = 5.5
        needed = 8 + row * len(bars) + 6
        if self.get_y() + needed > self.h - 22:
            self.add_page()
        self.set_font(FONT, "B", 9)
        self.cell(0, 6, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        left = self.l_margin
        label_w, value_w = 58.0, 16.0
        plot_w = self.epw - label_w - value_w
        top, step = nice_scale(max((c.number or 0.0 for _l, c in bars), default=0.0))
        y0 = self.get_y() + 4
        self.set_font(FONT, "", 7)
        self.set_draw_color(200, 205, 202)
        ticks = int(round(top / step))
        for i in range(ticks + 1):
            x = left + label_w + plot_w * i * step / top
            self.line(x, y0 - 1, x, y0 + row * len(bars))
            self.set_xy(x - 10, y0 - 5)
            self.cell(20, 4, format_cell(Cell(int(i * step))), align="C")
        self.set_font(FONT, "", 8)
        for i, (label, cell) in enumerate(bars):
            y = y0 + i * row
            self.set_xy(left, y)
            self.cell(label_w - 2, row, shorten(label, 34), align="R")
            width = 0.0
            if cell.number is not None and cell.number > 0:
                width = max(plot_w * cell.number / top, 0.6)
                self.set_fill_color(*GREEN)
                self.rect(left + label_w, y + 1, width, row - 2, style="F")
            self.set_xy(left + label_w + width + 1, y)
            self.cell(value_w, row, format_cell(cell))
        self.set_draw_color(0, 0, 0)
        self.set_fill_color(255, 255, 255)
        self.set_xy(left, y0 + row * len(bars) + 4)

    def column_chart(self, title: str, bars: Sequence[tuple[str, Cell]]) -> None:
        """Vertical columns (the months)."""
        height = 55.0
        if self.get_y() + height + 20 > self.h - 22:
            self.add_page()
        self.set_font(FONT, "B", 9)
        self.cell(0, 6, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        left = self.l_margin + 12
        plot_w = self.epw - 12
        top, step = nice_scale(max((c.number or 0.0 for _l, c in bars), default=0.0))
        y0 = self.get_y() + 6
        base = y0 + height
        self.set_font(FONT, "", 7)
        self.set_draw_color(200, 205, 202)
        for i in range(int(round(top / step)) + 1):
            y = base - height * i * step / top
            self.line(left, y, left + plot_w, y)
            self.set_xy(self.l_margin, y - 2)
            self.cell(11, 4, format_cell(Cell(int(i * step))), align="R")
        slot = plot_w / max(len(bars), 1)
        for i, (label, cell) in enumerate(bars):
            x = left + i * slot
            bar_h = 0.0
            if cell.number is not None and cell.number > 0:
                bar_h = max(height * cell.number / top, 0.6)
                self.set_fill_color(*GREEN)
                self.rect(x + slot * 0.15, base - bar_h, slot * 0.7, bar_h, style="F")
            self.set_xy(x, base - bar_h - 4.5)
            self.cell(slot, 4, format_cell(cell), align="C")
            self.set_xy(x, base + 1)
            # German month abbreviations are the first three letters (Jan, Feb, Mär, ...).
            self.cell(slot, 4, label[:3] if len(bars) > 8 else shorten(label, 12), align="C")
        self.set_draw_color(0, 0, 0)
        self.set_fill_color(255, 255, 255)
        self.set_xy(self.l_margin, base + 8)

    def section(
        self, table: Table | None, *, columns: bool = False, part: str | None = None
    ) -> None:
        """A table's heading (after a part's heading), its chart (when it has one) and the table.

        Headings and chart stay on one page with the table's first rows.
        """
        if table is None:
            return
        charted = table.chart_column is not None and table.rows and len(table.rows) <= CHART_ROWS
        needed = 30.0 + (15 if part else 0) + (10 if table.note else 0)
        if charted:
            needed += 75 if columns else 14 + 5.5 * len(table.rows)
        if self.get_y() + needed > self.h - 22:
            self.add_page()
        if part:
            self.heading(part)
        self.heading(table.title, 12)
        if table.note:
            self.paragraph(table.note, 9, GREY)
        if charted:
            if columns:
                self.column_chart(table.chart_title or table.title, table.bars())
            else:
                self.bar_chart(table.chart_title or table.title, table.bars())
        self.table_of(table)


def build_report(year: int, stats: Statistics, *, created: date | None = None) -> bytes:
    """The report for the year from computed statistics, as PDF bytes."""
    created = created or berlin_today()
    pdf = ReportPDF(year)
    pdf.add_page()
    pdf.set_font(FONT, "", 11)
    pdf.set_text_color(*GREY)
    pdf.cell(
        0,
        6,
        _("Landratsamt %(district)s · Jugend- und Sozialamt", district=DISTRICT),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(18)
    pdf.set_text_color(*GREEN)
    pdf.set_font(FONT, "B", 24)
    pdf.multi_cell(0, 11, _("Familienpass Kyffikus"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "B", 18)
    pdf.multi_cell(
        0, 9, _("Jahresbericht %(year)s", year=year), new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    pdf.set_text_color(0, 0, 0)
    pdf.ln(6)
    pdf.paragraph(
        _(
            "Bericht an den Fördermittelgeber im Landesprogramm „%(programme)s“ (LSZ) über Reichweite "
            "und Nutzung des Familienpasses im %(district)s im Jahr %(year)s.",
            programme=PROGRAMME,
            district=DISTRICT,
            year=year,
        ),
        11,
    )
    pdf.paragraph(_("Erstellt am %(date)s.", date=format_date(created, "long")), 10, GREY)
    pdf.heading(_("Kennzahlen %(year)s", year=year))
    pdf.table_of(figures_table(stats, year))
    pdf.heading(_("Schutz kleiner Gruppen"), 11)
    pdf.paragraph(
        _(
            "Damit keine Familie erkennbar wird, stehen Werte von 1 bis 4 als „<5“. Ein „x“ steht für einen "
            "Wert ab 5, der zusätzlich ausgeblendet ist, damit sich kein kleiner Wert aus einer Summe "
            "zurückrechnen lässt. Für Gemeinden mit weniger als 5 Familien werden keine Zahlen gezeigt. "
            "Alle Zahlen sind Zählungen der Datenbank; Einlösungen, die der Anbieter zurückgenommen hat, "
            "zählen nicht."
        ),
        9,
        GREY,
    )

    pdf.add_page()
    pdf.section(stats.table("gemeinden-jahr"), part=_("Reichweite"))
    pdf.section(stats.table("antraege"), part=_("Anträge"))
    pdf.section(stats.table("kategorien"), part=_("Nutzung"))
    pdf.section(stats.table("monate"), columns=True)
    pdf.section(stats.table("meistgenutzt"))
    pdf.section(stats.table("wenigsten-genutzt"))
    pdf.section(stats.table("ungenutzt"))
    pdf.section(stats.table("anbieter"))
    pdf.section(stats.table("angebote"))
    return bytes(pdf.output())


def yearly_report_pdf(year: int) -> bytes:
    """Compute the year's statistics and lay out the report."""
    return build_report(year, yearly(year))
