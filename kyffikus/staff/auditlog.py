"""Staff pages: the audit log, read only (search by person, object and date; newest first).

There is deliberately no route here that edits or deletes an entry: the log is written by the
services only.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Blueprint, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import Select, select
from wtforms import DateField, SearchField, StringField
from wtforms.validators import Length, Optional, ValidationError

from kyffikus.authz import staff_required
from kyffikus.extensions import db
from kyffikus.models import AuditEntry
from kyffikus.models.base import BERLIN
from kyffikus.services.statistics import utc_start
from kyffikus.web import no_store

bp = Blueprint("staff_audit", __name__)

PER_PAGE = 50
# Object types the services write (for the input's suggestions; any other text works too).
OBJECT_TYPES = (
    "pass",
    "application",
    "household",
    "redemption",
    "offer",
    "provider",
    "venue",
    "category",
    "edition",
    "locality",
    "municipality",
    "user_account",
    "api_token",
    "setting",
)


class AuditSearchForm(FlaskForm):
    """The audit log's filters (a GET form: nothing changes, so no CSRF token)."""

    class Meta:
        csrf = False

    person = SearchField(_l("Person (E-Mail-Adresse)"), validators=[Optional(), Length(max=254)])
    object_type = StringField(_l("Objekttyp"), validators=[Optional(), Length(max=40)])
    object_id = StringField(_l("Objektnummer"), validators=[Optional(), Length(max=40)])
    date_from = DateField(_l("Von (Datum)"), validators=[Optional()])
    date_to = DateField(_l("Bis (Datum)"), validators=[Optional()])

    def validate_date_to(self, field: DateField) -> None:
        """The end of the range is not before its start."""
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("Das Enddatum darf nicht vor dem Anfangsdatum liegen."))


def _like(text: str) -> str:
    """A LIKE pattern that matches the text literally anywhere."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_query(
    person: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> Select[tuple[AuditEntry]]:
    """Audit entries matching the filters, newest first (dates are days in Europe/Berlin)."""
    query = select(AuditEntry)
    if person:
        query = query.where(AuditEntry.actor_label.ilike(_like(person.strip()), escape="\\"))
    if object_type:
        query = query.where(AuditEntry.object_type == object_type.strip())
    if object_id:
        query = query.where(AuditEntry.object_id == object_id.strip())
    if date_from:
        query = query.where(AuditEntry.at >= utc_start(date_from))
    if date_to:
        query = query.where(AuditEntry.at < utc_start(date_to + timedelta(days=1)))
    return query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())


def details_lines(details: Any) -> list[tuple[str, str]]:
    """An entry's details as (field, text) pairs: "old → new" for changes."""
    if not isinstance(details, dict):
        return [("", str(details))] if details else []
    lines = []
    for key, value in details.items():
        if isinstance(value, dict) and set(value) == {"old", "new"}:
            lines.append((str(key), f"{_text(value['old'])} → {_text(value['new'])}"))
        else:
            lines.append((str(key), _text(value)))
    return lines


def _text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


@bp.get("/")
@staff_required
def index() -> tuple[str, int]:
    """The audit log with its search form, newest first, 50 entries a page."""
    no_store()
    form = AuditSearchForm(request.args)
    valid = form.validate() if request.args else True
    for field in form:  # lazily translated messages as text, for the error summary
        field.errors = [str(e) for e in field.errors]
    # Bounded: a huge page number would overflow the database's OFFSET.
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 100_000)
    if valid:
        query = search_query(
            form.person.data,
            form.object_type.data,
            form.object_id.data,
            form.date_from.data,
            form.date_to.data,
        )
    else:
        query = search_query().where(AuditEntry.id.is_(None))
    entries = db.paginate(query, page=max(page, 1), per_page=PER_PAGE, error_out=False, count=True)
    filtered = any(
        request.args.get(k) for k in ("person", "object_type", "object_id", "date_from", "date_to")
    )
    return (
        render_template(
            "staff/audit/index.html",
            form=form,
            entries=entries,
            filtered=filtered,
            object_types=OBJECT_TYPES,
            details_lines=details_lines,
            berlin=BERLIN,
        ),
        200 if valid else 400,
    )
