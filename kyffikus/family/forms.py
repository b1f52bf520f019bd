"""Forms of the family pages (and the staff counter entry, which asks for the same household)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    FieldList,
    Form,
    FormField,
    PasswordField,
    StringField,
    SubmitField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    Optional,
    Regexp,
    ValidationError,
)

from kyffikus.services.applications import (
    MAX_CHILDREN,
    MAX_PHONE,
    MAX_STREET,
    HouseholdInput,
    birth_date_problem,
    clean_name,
    name_problem,
)

CHILD_ROWS = 6
DATE_FORMATS = ["%Y-%m-%d", "%d.%m.%Y", "%d.%m.%y"]


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class LocalDateField(DateField):
    """A date typed as 2019-05-17 (the date picker) or 17.05.2019, with a German error message."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        """Parse the first format that fits; empty means no date."""
        if not valuelist:
            return
        text = " ".join(str(v) for v in valuelist).strip()
        if not text:
            self.data = None
            return
        if len(text) <= 20:
            for fmt in DATE_FORMATS:
                try:
                    self.data = datetime.strptime(text, fmt).date()  # noqa: DTZ007 - a plain date
                    return
                except ValueError:
                    continue
        self.data = None
        raise ValueError(str(_l("Bitte geben Sie ein gültiges Datum an, z. B. 17.05.2019.")))


class AdultForm(Form):
    """One adult named on the pass."""

    first_name = StringField(_l("Vorname"), filters=[_strip], render_kw={"autocomplete": "off"})
    last_name = StringField(_l("Nachname"), filters=[_strip], render_kw={"autocomplete": "off"})


class ChildForm(Form):
    """One child (an empty row is ignored)."""

    first_name = StringField(_l("Vorname"), filters=[_strip], render_kw={"autocomplete": "off"})
    birth_date = LocalDateField(_l("Geburtsdatum"), validators=[Optional()])


class HouseholdForm(FlaskForm):
    """The household: adults on the pass, children, address, phone, consent."""

    adults = FieldList(FormField(AdultForm), min_entries=2, max_entries=2)
    children = FieldList(FormField(ChildForm), min_entries=CHILD_ROWS, max_entries=MAX_CHILDREN)
    street = StringField(
        _l("Straße und Hausnummer"),
        filters=[_strip],
        validators=[
            InputRequired(_l("Bitte geben Sie Straße und Hausnummer an.")),
            Length(max=MAX_STREET, message=_l("Höchstens %(max)d Zeichen.")),
        ],
        render_kw={"autocomplete": "street-address"},
    )
    postal_code = StringField(
        _l("Postleitzahl"),
        filters=[_strip],
        validators=[
            InputRequired(_l("Bitte geben Sie die Postleitzahl an.")),
            Regexp(r"^[0-9]{5}$", message=_l("Die Postleitzahl hat fünf Ziffern.")),
        ],
        render_kw={"autocomplete": "postal-code", "inputmode": "numeric", "maxlength": 5},
    )
    # Rendered as a <select> of the district's localities grouped by postal code (see the template).
    locality = StringField(_l("Ort"), filters=[_strip])
    phone = StringField(
        _l("Telefon"),
        filters=[_strip],
        description=_l("Nur für Rückfragen zu Ihrem Antrag."),
        validators=[
            Optional(),
            Length(max=MAX_PHONE, message=_l("Höchstens %(max)d Zeichen.")),
            Regexp(
                r"^[0-9 +()/\-]{3,}$", message=_l("Bitte nur Ziffern, Leerzeichen und + ( ) / -.")
            ),
        ],
        render_kw={"autocomplete": "tel", "inputmode": "tel"},
    )
    consent = BooleanField(
        _l(
            "Ich habe die Datenschutzerklärung gelesen und bin mit der Verarbeitung meiner Angaben einverstanden."
        ),
        validators=[DataRequired(_l("Bitte stimmen Sie der Datenschutzerklärung zu."))],
    )
    add_child = SubmitField(_l("Weiteres Kind hinzufügen"))
    submit = SubmitField(_l("Angaben speichern"))

    def validate_locality(self, field: StringField) -> None:
        """A choice from the list is required; whether it fits the postal code the service decides."""
        if not field.data:
            raise ValidationError(_l("Bitte wählen Sie Ihren Wohnort aus der Liste."))

    def validate(self, extra_validators: Any = None) -> bool:
        """Check the rows: the first adult is required, a started row must be complete, one child at least."""
        ok = super().validate(extra_validators)
        for index, entry in enumerate(self.adults.entries):
            first, last = entry.form.first_name, entry.form.last_name
            if index > 0 and not first.data and not last.data:
                continue
            for sub in (first, last):
                problem = name_problem(sub.data)
                if problem:
                    sub.errors = [*sub.errors, problem]
                    ok = False
        children = 0
        today = _today()
        for entry in self.children.entries:
            first, born = entry.form.first_name, entry.form.birth_date
            raw_date = (born.raw_data or [""])[0] if born.raw_data else ""
            if not first.data and not raw_date:
                continue
            children += 1
            problem = name_problem(first.data)
            if problem:
                first.errors = [*first.errors, problem]
                ok = False
            if not born.errors:
                problem = birth_date_problem(born.data, today)
                if problem:
                    born.errors = [*born.errors, problem]
                    ok = False
            else:
                ok = False
        if children == 0:
            first_child = self.children.entries[0].form.first_name
            first_child.errors = [
                *first_child.errors,
                str(_l("Bitte nennen Sie mindestens ein Kind.")),
            ]
            ok = False
        self._summarise_row_errors()
        return ok

    def _summarise_row_errors(self) -> None:
        """Rows are not top-level fields: name their errors in the summary at the top of the form."""
        rows = [
            (_l("Erwachsene Person %(number)d", number=i + 1), e)
            for i, e in enumerate(self.adults.entries)
        ]
        rows += [
            (_l("Kind %(number)d", number=i + 1), e) for i, e in enumerate(self.children.entries)
        ]
        for row_label, entry in rows:
            for sub in entry.form:
                for error in sub.errors:
                    self.form_errors.append(f"{row_label}, {sub.label.text}: {error}")

    def to_input(self) -> HouseholdInput:
        """The shaped household for the services."""
        adults = [
            (clean_name(e.form.first_name.data), clean_name(e.form.last_name.data))
            for e in self.adults.entries
            if e.form.first_name.data or e.form.last_name.data
        ]
        children: list[tuple[str, date]] = [
            (clean_name(e.form.first_name.data), e.form.birth_date.data)
            for e in self.children.entries
            if e.form.first_name.data or e.form.birth_date.data
        ]
        return HouseholdInput(
            adults=adults,
            children=children,
            street=self.street.data or "",
            postal_code=self.postal_code.data or "",
            locality=self.locality.data or "",
            phone=self.phone.data or None,
            consent=bool(self.consent.data),
        )

    def fill_from(self, household: Any) -> None:
        """Show a saved household in the form (GET)."""
        for index, adult in enumerate(household.adults[:2]):
            self.adults.entries[index].form.first_name.data = adult.first_name
            self.adults.entries[index].form.last_name.data = adult.last_name
        while (
            len(self.children.entries) < len(household.children) + 1
            and len(self.children.entries) < MAX_CHILDREN
        ):
            self.children.append_entry()
        for index, child in enumerate(household.children):
            self.children.entries[index].form.first_name.data = child.first_name
            self.children.entries[index].form.birth_date.data = child.birth_date
        self.street.data = household.street
        self.postal_code.data = household.postal_code
        self.locality.data = str(household.locality_id or "")
        self.phone.data = household.phone or ""
        self.consent.data = household.consent_at is not None


class SubmitApplicationForm(FlaskForm):
    """Send the application (a button; the household is already saved)."""

    submit = SubmitField(_l("Antrag abschicken"))


class ConfirmForm(FlaskForm):
    """A button that confirms an action (withdraw, replace)."""

    reason = StringField(
        _l("Was ist passiert? (optional)"), filters=[_strip], validators=[Length(max=500)]
    )
    submit = SubmitField(_l("Bestätigen"))


class DeleteAccountForm(FlaskForm):
    """Delete the account: confirmed with the password."""

    password = PasswordField(
        _l("Ihr Passwort"),
        validators=[InputRequired(_l("Bitte geben Sie Ihr Passwort ein."))],
        render_kw={"autocomplete": "current-password"},
    )
    confirm = BooleanField(
        _l("Ich möchte mein Konto und alle Angaben löschen. Mein Familienpass wird gesperrt."),
        validators=[DataRequired(_l("Bitte bestätigen Sie die Löschung."))],
    )
    submit = SubmitField(_l("Konto endgültig löschen"))


def _today() -> date:
    from kyffikus.models.base import berlin_today

    return berlin_today()
