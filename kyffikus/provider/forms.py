"""Forms of the provider's pages: check, redeem, undo, history filter, account and API tokens."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    EmailField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
    URLField,
)
from wtforms.validators import (
    URL,
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)
from wtforms.widgets import HiddenInput

from kyffikus.services.checks import MAX_CODE_LENGTH


class CheckForm(FlaskForm):
    """The scanned QR text or the typed pass number (both forms post the field "code")."""

    code = StringField(
        _l("Passnummer"),
        validators=[
            DataRequired(_l("Bitte geben Sie die Passnummer ein oder scannen Sie den QR-Code.")),
            Length(max=MAX_CODE_LENGTH, message=_l("Dieser Code ist zu lang.")),
        ],
    )


class CountField(IntegerField):
    """An integer field that refuses absurdly long numbers before any validator sees them.

    WTForms' NumberRange calls math.isnan(), which raises OverflowError for an int beyond a float
    (a posted "9999…" of 309 digits): that must be a form error, not a 500.
    """

    def process_formdata(self, valuelist: list[Any]) -> None:
        """Parse the number; more than nine characters is no count or id of ours."""
        if valuelist and len(str(valuelist[0]).strip()) > 9:
            self.data = None
            raise ValueError(_l("Bitte geben Sie eine ganze Zahl an."))
        super().process_formdata(valuelist)


class RedeemForm(FlaskForm):
    """Record a redemption of one offer for the checked pass."""

    code = HiddenField(validators=[DataRequired(), Length(max=MAX_CODE_LENGTH)])
    offer_id = CountField(widget=HiddenInput(), validators=[InputRequired()])
    idempotency_key = HiddenField(validators=[DataRequired(), Length(min=8, max=100)])
    adults = CountField(
        _l("Erwachsene"),
        validators=[
            InputRequired(_l("Bitte geben Sie die Zahl der Erwachsenen an.")),
            NumberRange(min=0, max=2, message=_l("Bitte wählen Sie 0 bis 2 Erwachsene.")),
        ],
    )
    children = CountField(
        _l("Kinder"),
        validators=[
            InputRequired(_l("Bitte geben Sie die Zahl der Kinder an.")),
            NumberRange(
                min=0, max=30, message=_l("Bitte geben Sie eine Zahl der Kinder von 0 bis 30 an.")
            ),
        ],
    )


class UndoForm(FlaskForm):
    """Undo a redemption; "code" is set when the undo comes from a check result, to show it again."""

    code = HiddenField(validators=[Optional(), Length(max=MAX_CODE_LENGTH)])


class HistoryFilterForm(FlaskForm):
    """Filters of the history (a GET form: no CSRF, nothing changes); build with formdata=request.args."""

    class Meta:
        csrf = False

    date_from = DateField(_l("Von"), validators=[Optional()])
    date_to = DateField(_l("Bis"), validators=[Optional()])
    offer = SelectField(_l("Angebot"), choices=[], default="", validate_choice=True)

    def validate_date_to(self, field: DateField) -> None:
        """The range must not end before it starts."""
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("Das Enddatum liegt vor dem Anfangsdatum."))

    @property
    def offer_id(self) -> int | None:
        """The chosen offer's id, or None for all offers."""
        value = self.offer.data
        return int(value) if value and str(value).isdigit() else None


def _http_url(_form: Any, field: URLField) -> None:
    if field.data and not field.data.lower().startswith(("https://", "http://")):
        raise ValidationError(_l("Bitte geben Sie eine Adresse beginnend mit https:// an."))


class ContactForm(FlaskForm):
    """The provider's contact details."""

    contact_name = StringField(
        _l("Ansprechperson"),
        validators=[Optional(), Length(max=200)],
        render_kw={"autocomplete": "name"},
    )
    email = EmailField(
        _l("E-Mail-Adresse"),
        validators=[
            Optional(),
            Length(max=254),
            Email(
                message=_l("Bitte geben Sie eine gültige E-Mail-Adresse an."),
                check_deliverability=False,
            ),
        ],
        render_kw={"autocomplete": "email"},
    )
    phone = StringField(
        _l("Telefon"),
        validators=[
            Optional(),
            Length(max=60),
            Regexp(
                r"^[0-9 +()/.\-]*$",
                message=_l("Bitte nur Ziffern, Leerzeichen und + ( ) / - verwenden."),
            ),
        ],
        render_kw={"autocomplete": "tel", "inputmode": "tel"},
    )
    website = URLField(
        _l("Webseite"),
        validators=[
            Optional(),
            Length(max=300),
            URL(message=_l("Bitte geben Sie eine gültige Webadresse an.")),
            _http_url,
        ],
        render_kw={"autocomplete": "url"},
    )


class VenueNotesForm(FlaskForm):
    """A venue's accessibility notes (step-free access, toilets, parking)."""

    accessibility = TextAreaField(
        _l("Hinweise zur Barrierefreiheit"),
        validators=[Optional(), Length(max=2000)],
        description=_l("Zum Beispiel: stufenloser Zugang, barrierefreies WC, Parkplätze."),
    )


class ApiTokenForm(FlaskForm):
    """A new API token's name."""

    name = StringField(
        _l("Name des Schlüssels"),
        validators=[
            DataRequired(_l("Bitte geben Sie dem Schlüssel einen Namen.")),
            Length(max=100),
        ],
        description=_l("Zum Beispiel: Kasse Eingang Nord."),
    )


class ConfirmForm(FlaskForm):
    """A button that changes something: only the CSRF token."""
