"""Forms of the public pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from wtforms import BooleanField, SearchField, SelectChoice, SelectField

from kyffikus.models.catalogue import Category
from kyffikus.services.directory import MAX_AGE, MAX_QUERY_LENGTH, MIN_AGE, category_name


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
    category = SelectField(_l("Kategorie"), choices=[], validate_choice=False)
    town = SelectField(_l("Ort"), choices=[], validate_choice=False)
    age = SelectField(
        _l("Alter des Kindes"),
        choices=[],
        validate_choice=False,
        description=_l("Zeigt Angebote, die für ein Kind dieses Alters passen."),
    )
    free_for_children = BooleanField(
        _l("Nur Angebote mit „Kinder frei“"),
        false_values=("", "0", "false", "off", "no", "n"),
    )
    sort = SelectField(
        _l("Sortieren nach"),
        choices=[SelectChoice("name", _l("Name")), SelectChoice("town", _l("Ort"))],
        validate_choice=False,
    )

    def fill_choices(self, categories: list[Category], towns: list[str]) -> None:
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
        self.age.choices = [SelectChoice("", _l("Jedes Alter"))] + [
            SelectChoice(str(n), ngettext("%(num)s Jahr", "%(num)s Jahre", n))
            for n in range(MIN_AGE, MAX_AGE + 1)
        ]
