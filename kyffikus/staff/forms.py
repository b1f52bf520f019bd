"""Forms of the staff pages: they check shape only; the catalogue rules live in the services."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    HiddenField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from kyffikus.models.catalogue import DISCOUNT_KINDS, REDEMPTION_LIMITS


def _max(length: int) -> Length:
    """At most length characters, said in German."""
    return Length(max=length, message=_l("Höchstens %(max)d Zeichen erlaubt."))


DISCOUNT_KIND_LABELS = {
    "percent": _l("Prozent Ermäßigung"),
    "amount": _l("Betrag in Euro günstiger"),
    "children_free": _l("Kinder frei"),
    "family_price": _l("Familienpreis in Euro"),
    "other": _l("anderer Vorteil (im Titel beschrieben)"),
}
LIMIT_LABELS = {
    "unlimited": _l("beliebig oft"),
    "per_day": _l("einmal am Tag"),
    "per_edition": _l("einmal je Ausgabe"),
}
ROLE_LABELS = {
    "family": _l("Familie"),
    "provider": _l("Anbieter"),
    "staff": _l("Mitarbeitende"),
    "admin": _l("Administration"),
}


# The largest value of an INTEGER column on PostgreSQL; bigger numbers are a typing mistake.
MAX_INT = 2_147_483_647


def db_id(value: Any) -> int:
    """An id chosen in a form; a number no row can have becomes 0 (unknown), not a database error."""
    number = int(value)
    return number if 0 < number <= MAX_INT else 0


def _name_field(label: Any, length: int) -> StringField:
    """A name that must be given, of at most length characters."""
    return StringField(
        label, validators=[InputRequired(_l("Bitte geben Sie den Namen an.")), _max(length)]
    )


def _provider_field() -> SelectField:
    """The provider of an account (choices filled by the view; 0 is none)."""
    return SelectField(
        _l("Anbieter"),
        coerce=db_id,
        validate_choice=False,
        description=_l("Nur für Anbieter-Konten."),
    )


class NumberField(StringField):
    """A number typed with a decimal comma or point; empty is None."""

    data: Any

    def __init__(
        self, label: Any = None, validators: Any = None, integer: bool = False, **kwargs: Any
    ) -> None:
        render_kw = dict(kwargs.pop("render_kw", None) or {})
        render_kw.setdefault("inputmode", "numeric" if integer else "decimal")
        super().__init__(label, validators, render_kw=render_kw, **kwargs)
        self.integer = integer

    def process_formdata(self, valuelist: list[Any]) -> None:
        """Parse the typed text."""
        raw = (valuelist[0] if valuelist else "") or ""
        raw = str(raw).strip().replace(" ", "")
        self.raw_text = raw
        if not raw:
            self.data = None
            return
        try:
            number = Decimal(raw.replace(",", "."))
            if not number.is_finite():
                raise InvalidOperation(raw)
        except InvalidOperation:
            self.data = None
            raise ValueError(
                _l("Bitte geben Sie eine ganze Zahl ein.")
                if self.integer
                else _l("Bitte geben Sie eine Zahl ein, z. B. 12,50.")
            ) from None
        if self.integer:
            if number != number.to_integral_value():
                self.data = None
                raise ValueError(_l("Bitte geben Sie eine ganze Zahl ein."))
            if abs(number) > MAX_INT:
                self.data = None
                raise ValueError(_l("Diese Zahl ist zu groß."))
            self.data = int(number)
        else:
            self.data = number

    def _value(self) -> str:
        if self.data is None:
            return str(getattr(self, "raw_text", "") or "")
        if isinstance(self.data, Decimal):
            return format(self.data, "f").replace(".", ",")
        return str(self.data)


class DayField(StringField):
    """A date (the browser's date picker sends YYYY-MM-DD; TT.MM.JJJJ is accepted too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("render_kw", {})
        kwargs["render_kw"].setdefault("type", "date")
        super().__init__(*args, **kwargs)

    def process_formdata(self, valuelist: list[Any]) -> None:
        """Parse the date."""
        raw = str((valuelist[0] if valuelist else "") or "").strip()
        self.raw_text = raw
        if not raw:
            self.data = None
            return
        try:
            if "." in raw:
                day, month, year = (int(p) for p in raw.split("."))
                self.data = date(year, month, day)
            else:
                self.data = date.fromisoformat(raw)
        except ValueError:
            self.data = None
            raise ValueError(_l("Bitte geben Sie ein gültiges Datum ein (TT.MM.JJJJ).")) from None

    def _value(self) -> str:
        if isinstance(self.data, date):
            return self.data.isoformat()
        return str(getattr(self, "raw_text", "") or "")


class MultiCheckboxField(SelectMultipleField):
    """Several check boxes (the macro renders them as a fieldset)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ConfirmForm(FlaskForm):
    """Only a CSRF token: for buttons that change state (publish, delete, deactivate)."""


class ProviderForm(FlaskForm):
    """A provider's details."""

    name = _name_field(_l("Name"), 200)
    slug = StringField(
        _l("Schlüssel für Adressen"),
        validators=[Optional(), _max(80)],
        description=_l("Leer lassen: wird aus dem Namen gebildet (ä wird ae, ß wird ss)."),
    )
    description = TextAreaField(_l("Beschreibung"), validators=[Optional(), _max(5000)])
    contact_name = StringField(_l("Ansprechperson"), validators=[Optional(), _max(200)])
    email = StringField(
        _l("E-Mail-Adresse"), validators=[Optional(), _max(254)], render_kw={"type": "email"}
    )
    phone = StringField(_l("Telefon"), validators=[Optional(), _max(60)], render_kw={"type": "tel"})
    website = StringField(
        _l("Webseite"),
        validators=[Optional(), _max(300)],
        description=_l("Mit http:// oder https://"),
        render_kw={"type": "url"},
    )
    published = BooleanField(_l("Im Verzeichnis veröffentlicht"), default=True)
    is_sample = BooleanField(
        _l("Beispiel-Eintrag"),
        description=_l("Beispiele werden für Familien als „Beispiel“ gekennzeichnet."),
    )


class VenueForm(FlaskForm):
    """A venue of a provider."""

    name = _name_field(_l("Name"), 200)
    key = StringField(
        _l("Schlüssel"),
        validators=[Optional(), _max(60)],
        description=_l("Leer lassen: wird aus dem Namen gebildet."),
    )
    street = StringField(_l("Straße und Hausnummer"), validators=[Optional(), _max(200)])
    postal_code = StringField(
        _l("Postleitzahl"),
        validators=[Optional(), _max(5)],
        render_kw={"inputmode": "numeric"},
    )
    town = StringField(
        _l("Ort"), validators=[InputRequired(_l("Bitte geben Sie den Ort an.")), _max(120)]
    )
    latitude = NumberField(_l("Breitengrad"), description=_l("Optional, z. B. 51,3641"))
    longitude = NumberField(_l("Längengrad"), description=_l("Optional, z. B. 10,8695"))
    accessibility = TextAreaField(_l("Barrierefreiheit"), validators=[Optional(), _max(5000)])


class OfferForm(FlaskForm):
    """An offer; the venue and edition choices are filled by the view."""

    title = StringField(
        _l("Titel"),
        validators=[InputRequired(_l("Bitte geben Sie einen Titel an.")), _max(200)],
    )
    key = StringField(
        _l("Schlüssel"),
        validators=[Optional(), _max(80)],
        description=_l(
            "Leer lassen: wird aus dem Titel gebildet. Gleich über die Ausgaben hinweg."
        ),
    )
    edition_id = SelectField(_l("Ausgabe"), coerce=db_id, validate_choice=False)
    category_id = SelectField(_l("Kategorie"), coerce=db_id, validate_choice=False)
    description = TextAreaField(_l("Beschreibung"), validators=[Optional(), _max(5000)])
    discount_kind = SelectField(
        _l("Art des Vorteils"),
        choices=[SelectChoice(k, DISCOUNT_KIND_LABELS[k]) for k in DISCOUNT_KINDS],
        validate_choice=False,
    )
    discount_value = NumberField(
        _l("Wert"),
        description=_l(
            "Prozent: 1 bis 100. Betrag oder Familienpreis: Euro, größer als 0. Kinder frei: leer (alle) oder Anzahl. Anderer Vorteil: leer."
        ),
    )
    conditions = TextAreaField(_l("Bedingungen"), validators=[Optional(), _max(5000)])
    min_age = NumberField(
        _l("Mindestalter der Kinder"), integer=True, description=_l("0 bis 17 Jahre, optional")
    )
    max_age = NumberField(
        _l("Höchstalter der Kinder"), integer=True, description=_l("0 bis 17 Jahre, optional")
    )
    redemption_limit = SelectField(
        _l("Wie oft nutzbar"),
        choices=[SelectChoice(k, LIMIT_LABELS[k]) for k in REDEMPTION_LIMITS],
        validate_choice=False,
    )
    venues = MultiCheckboxField(_l("Standorte"), coerce=db_id, validate_choice=False)
    published = BooleanField(_l("Im Verzeichnis veröffentlicht"))


class CategoryForm(FlaskForm):
    """A category of offers."""

    name_de = _name_field(_l("Name (deutsch)"), 80)
    name_en = _name_field(_l("Name (englisch)"), 80)
    slug = StringField(
        _l("Schlüssel"),
        validators=[Optional(), _max(40)],
        description=_l("Leer lassen: wird aus dem Namen gebildet."),
    )
    position = NumberField(
        _l("Reihenfolge"), integer=True, description=_l("Kleinere Zahlen stehen weiter vorn.")
    )


class EditionForm(FlaskForm):
    """An edition of the pass."""

    number = NumberField(
        _l("Nummer"), integer=True, validators=[InputRequired(_l("Bitte geben Sie die Nummer an."))]
    )
    name = _name_field(_l("Name"), 120)
    valid_from = DayField(
        _l("Gültig ab"), validators=[InputRequired(_l("Bitte geben Sie das Datum an."))]
    )
    valid_until = DayField(
        _l("Gültig bis"), validators=[InputRequired(_l("Bitte geben Sie das Datum an."))]
    )


class NewEditionForm(EditionForm):
    """A new edition, optionally with the previous edition's offers as drafts."""

    copy_offers = BooleanField(
        _l("Angebote der vorigen Ausgabe als Entwürfe übernehmen"),
        default=True,
        description=_l(
            "Die Kopien sind nicht veröffentlicht, bis Sie sie geprüft und freigegeben haben."
        ),
    )


class MunicipalityForm(FlaskForm):
    """A municipality of the district."""

    name = _name_field(_l("Name"), 120)
    active = BooleanField(_l("Aktiv (gehört zum Kreis)"), default=True)


class LocalityForm(FlaskForm):
    """A locality with its postal code."""

    name = _name_field(_l("Name des Orts"), 120)
    postal_code = StringField(
        _l("Postleitzahl"),
        validators=[InputRequired(_l("Bitte geben Sie die Postleitzahl an.")), _max(5)],
        render_kw={"inputmode": "numeric"},
    )
    municipality_id = SelectField(_l("Gemeinde"), coerce=db_id, validate_choice=False)
    active = BooleanField(
        _l("Aktiv (Familien aus diesem Ort können den Pass beantragen)"), default=True
    )


class PostalCodeForm(FlaskForm):
    """Whether a postal code is shared with another district, and the note to families."""

    shared = BooleanField(_l("Auch von Orten außerhalb des Kreises genutzt"))
    note_de = TextAreaField(
        _l("Hinweis für Familien (deutsch)"),
        validators=[Optional(), _max(2000)],
        description=_l(
            "Zum Beispiel: welche Orte mit dieser Postleitzahl zum Kyffhäuserkreis gehören."
        ),
    )
    note_en = TextAreaField(
        _l("Hinweis für Familien (englisch)"), validators=[Optional(), _max(2000)]
    )


class ImportForm(FlaskForm):
    """A CSV file of providers or offers."""

    kind = RadioField(
        _l("Art der Datei"),
        choices=[
            SelectChoice("providers", _l("Anbieter mit Standorten")),
            SelectChoice("offers", _l("Angebote")),
        ],
        default="providers",
        validators=[InputRequired(_l("Bitte wählen Sie die Art der Datei."))],
    )
    file = FileField(_l("CSV-Datei"), description=_l("UTF-8, getrennt durch Semikolon oder Komma."))
    content = HiddenField()


class UserSearchForm(FlaskForm):
    """Search users by e-mail address (or provider name) and role."""

    class Meta:
        csrf = False  # a GET search changes nothing

    q = StringField(
        _l("E-Mail-Adresse oder Anbieter enthält"),
        validators=[Optional(), _max(254)],
        render_kw={"type": "search"},
    )
    role = SelectField(
        _l("Rolle"),
        choices=[SelectChoice("", _l("alle Rollen"))]
        + [SelectChoice(k, v) for k, v in ROLE_LABELS.items()],
        validate_choice=False,
    )
    state = SelectField(
        _l("Status"),
        choices=[
            SelectChoice("", _l("alle")),
            SelectChoice("active", _l("aktiv")),
            SelectChoice("inactive", _l("deaktiviert")),
        ],
        validate_choice=False,
    )


class InviteForm(FlaskForm):
    """Invite a provider, staff or admin account; role and provider choices are filled by the view."""

    email = StringField(
        _l("E-Mail-Adresse"),
        validators=[InputRequired(_l("Bitte geben Sie die E-Mail-Adresse an.")), _max(254)],
        render_kw={"type": "email", "autocomplete": "off"},
    )
    role = SelectField(_l("Rolle"), validate_choice=False)
    provider_id = _provider_field()


class RoleForm(FlaskForm):
    """Change a user's role (admins)."""

    role = SelectField(
        _l("Neue Rolle"),
        choices=[SelectChoice(k, ROLE_LABELS[k]) for k in ("provider", "staff", "admin")],
        validate_choice=False,
    )
    provider_id = _provider_field()


class SettingsForm(FlaskForm):
    """The settings admins can change."""

    auto_approve = BooleanField(
        _l("Anträge, die alle Voraussetzungen erfüllen, automatisch bewilligen"),
        description=_l("Aus: Mitarbeitende prüfen jeden Antrag selbst."),
    )
    district_family_count = NumberField(
        _l("Zahl der Familien mit Kindern im Kreis"),
        integer=True,
        description=_l(
            "Für den Anteil der erreichten Familien in der Statistik. Leer lassen, wenn unbekannt."
        ),
    )
    require_staff_2fa = BooleanField(
        _l("Zwei-Faktor-Anmeldung für Mitarbeitende und Administration verlangen"),
    )
