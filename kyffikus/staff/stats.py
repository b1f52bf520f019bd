"""Staff pages: the statistics dashboard, its CSV exports and the yearly report for the funding body."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import click
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy import func, select
from werkzeug.wrappers import Response as WerkzeugResponse

from kyffikus.authz import staff_required
from kyffikus.extensions import db
from kyffikus.models import Edition
from kyffikus.models.base import berlin_today
from kyffikus.services import charts, statistics
from kyffikus.services.statistics import Table

# CLI: `flask --app kyffikus statistics refresh` (for cron at state scale, see services.statistics).
bp = Blueprint("staff_stats", __name__, cli_group="statistics")


def _year() -> int:
    """The year asked for in ?jahr=, the current year when none; 400 with a message when invalid."""
    today = berlin_today()
    try:
        return statistics.with_year(request.args.get("jahr"), today)
    except ValueError:
        abort(
            400,
            description=_(
                "Bitte wählen Sie ein Jahr zwischen %(first)s und %(last)s.",
                first=statistics.FIRST_YEAR,
                last=today.year + 1,
            ),
        )


def _years() -> list[int]:
    """The years the year selector offers: from the first edition to next year, newest first."""
    today = berlin_today()
    first = db.session.scalar(select(func.min(Edition.valid_from)))
    start = max(statistics.FIRST_YEAR, min(first.year if first else today.year, today.year))
    return list(range(today.year + 1, start - 1, -1))


def chart_for(table: Table) -> Markup | None:
    """The chart drawn beside a table (months as columns, everything else as bars)."""
    if table.chart_column is None or not table.rows:
        return None
    chart_id = f"chart-{table.key}"
    title = table.chart_title or table.title
    if table.key == "monate":
        return charts.column_chart(chart_id, title, table.bars())
    return charts.bar_chart(chart_id, title, table.bars())


@bp.get("/")
@staff_required
def dashboard() -> str:
    """The dashboard: reach today; applications and use in the chosen year."""
    year = _year()
    stats = statistics.dashboard(year)
    db.session.commit()  # a snapshot written while counting
    years = _years()
    if year not in years:
        years = sorted({*years, year}, reverse=True)
    return render_template(
        "staff/stats/dashboard.html",
        stats=stats,
        year=year,
        years=years,
        chart_for=chart_for,
        cell=statistics.format_cell,
        today=berlin_today(),
    )


@bp.post("/aktualisieren")
@staff_required
def refresh() -> WerkzeugResponse:
    """Count again now instead of showing a snapshot."""
    year = _year()
    statistics.dashboard(year, fresh=True)
    db.session.commit()
    flash(_("Die Statistik wurde neu berechnet."), "success")
    return redirect(url_for(".dashboard", jahr=year))


@bp.cli.command("refresh")
@click.option("--year", type=int, default=None, help="Jahr (Standard: das laufende Jahr)")
def refresh_command(year: int | None) -> None:
    """Count the dashboard's and the yearly report's statistics again (for cron at large scale)."""
    year = year or berlin_today().year
    # The labels are translated, which needs a request context (German, the default).
    with current_app.test_request_context():
        statistics.dashboard(year, fresh=True)
        statistics.yearly(year, fresh=True)
    db.session.commit()
    click.echo(f"Statistik für {year} neu gezählt.")


def _csv_lines(table: Table) -> Iterator[str]:
    """The table as CSV text, one line at a time (UTF-8 BOM first, so spreadsheets read Umlaute)."""
    yield "\ufeff"
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    for row in statistics.csv_rows(table):
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)


@bp.get("/export/<key>.csv")
@staff_required
def export_csv(key: str) -> Response:
    """One table of the dashboard as CSV (semicolons, UTF-8 with BOM), streamed."""
    year = _year()
    table = statistics.table_for_export(key, year)
    if table is None:
        abort(404)
    db.session.commit()
    filename = f"kyffikus-{key}-{year}.csv"
    response = Response(
        stream_with_context(_csv_lines(table)),
        mimetype="text/csv",
        content_type="text/csv; charset=utf-8",
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/bericht.pdf")
@staff_required
def report_pdf() -> Response:
    """The yearly report for the funding body (LSZ) as a PDF."""
    from kyffikus.services.report import yearly_report_pdf

    year = _year()
    pdf = yearly_report_pdf(year)
    db.session.commit()
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="kyffikus-jahresbericht-{year}.pdf"'
    )
    return response
