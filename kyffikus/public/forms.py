"""Forms of the public pages."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from flask_babel import get_locale, ngettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import BooleanField, Field, SearchField, SelectChoice, SelectField
from wtforms.widgets import Select, html_params

from kyffikus.models.catalogue import Category
from kyffikus.services.directory import (
    MAX_AGE,
    MAX_QUERY_LENGTH,
    MIN_AGE,
    CategoryInfo,
    category_name,
)


class PlainSelect(Select):
    """WTForms' Select widget for a plain list of options: the same HTML, built in one pass.

    The directory's filter renders some fifty options on every request; WTForms formats each
    one through html_params and Markup, which made them a large share of the page's CPU time.
    Grouped, multiple or per-option attributes go the regular way.
    """

    def __call__(self, field: Field, **kwargs: Any) -> Markup:
        """The <select> with its options, as Select renders it."""
        choices = list(field._iter_choices_normalized())  # type: ignore[attr-defined]
        if self.multiple or field.has_groups() or any(c.render_kw for c in choices):  # type: ignore[attr-defined]
            return super().__call__(field, **kwargs)
        kwargs.setdefault("id", field.id)
        flags = getattr(field, "flags", {})
        for name in dir(flags):
            if name in self.validation_attrs and name not in kwargs:
                kwargs[name] = getattr(flags, name)
        html = [f"<select {html_params(name=field.name, **kwargs)}>"]
        for choice in choices:
            value = str(choice.value) if isinstance(choice.value, bool) else choice.value
            # html_params sorts the attributes: "selected" comes before "value".
            selected = "selected " if choice.selected else ""
            quoted = escape(value).replace(Markup('"'), Markup("&quot;"))
            label = escape(choice.label or choice.value)
            html.append(f'<option {selected}value="{quoted}">{label}</option>')
        html.append("</select>")
        return Markup("".join(html))  # noqa: S704 - every value and label is escaped above


class OfferFilterForm(FlaskForm):
    """The directory's search and filters: a GET form, so the filter state is in the URL.

    The form only renders; the values are checked by kyffikus.services.directory.parse_filters,
    which the JSON API shares, and its errors are shown on the fields.
    """

    class Meta:
        csrf = False  # GET, changes nothing, and its URL must be shareable

    q = SearchField(
        _l("Suchbegriffe"),
        description=_l("Sucht in Titel, Beschreibung und Anbieter; alle Wörter müssen vorkommen."),
        render_kw={"maxlength": MAX_QUERY_LENGTH, "autocomplete": "off"},
    )
    category = SelectField(_l("Kategorie"), choices=[], validate_choice=False, widget=PlainSelect())
    town = SelectField(_l("Ort"), choices=[], validate_choice=False, widget=PlainSelect())
    age = SelectField(
        _l("Alter des Kindes"),
        choices=[],
        validate_choice=False,
        description=_l("Zeigt Angebote, die für ein Kind dieses Alters passen."),
        widget=PlainSelect(),
    )
    free_for_children = BooleanField(
        _l("Nur Angebote mit „Kinder frei“"),
        false_values=("", "0", "false", "off", "no", "n"),
    )
    sort = SelectField(
        _l("Sortieren nach"),
        choices=[SelectChoice("name", _l("Name")), SelectChoice("town", _l("Ort"))],
        validate_choice=False,
        widget=PlainSelect(),
    )

    def fill_choices(self, categories: Sequence[Category | CategoryInfo], towns: list[str]) -> None:
        """Set the choices that come from the database and the current language."""
        self.category.choices = [SelectChoice("", _l("Alle Kategorien"))] + [
            SelectChoice(c.slug, category_name(c)) for c in categories
        ]
        town_choices = [SelectChoice("", _l("Alle Orte"))] + [SelectChoice(t, t) for t in towns]
        wanted = (self.town.data or "").strip()
        if wanted:
            canonical = next((t for t in towns if t.lower() == wanted.lower()), None)
            if canonical is not None:
                self.town.data = canonical
            else:
                # A shared link may name a town without offers now: keep it visible as chosen.
                town_choices.append(SelectChoice(wanted, wanted))
        self.town.choices = town_choices
        self.age.choices = [SelectChoice("", _l("Jedes Alter")), *_ages(str(get_locale() or ""))]


@lru_cache(maxsize=8)
def _ages(locale: str) -> tuple[SelectChoice, ...]:
    # The same eighteen words on every directory page: translated once per language.
    return tuple(
        SelectChoice(str(n), ngettext("%(num)s Jahr", "%(num)s Jahre", n))
        for n in range(MIN_AGE, MAX_AGE + 1)
    )
