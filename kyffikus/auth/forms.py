"""Forms of the account pages: shape only; rules that need the database live in the services."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length

# Longer inputs are refused before argon2 spends time on them.
_PASSWORD_INPUT_MAX = 1024
_EMAIL_INPUT_MAX = 320


def _email_field(label: str | None = None) -> EmailField:
    return EmailField(
        label or _l("E-Mail-Adresse"),
        validators=[
            DataRequired(_l("Bitte geben Sie Ihre E-Mail-Adresse an.")),
            Length(max=_EMAIL_INPUT_MAX, message=_l("Diese E-Mail-Adresse ist zu lang.")),
        ],
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
    )


def _new_password_fields() -> tuple[PasswordField, PasswordField]:
    new = PasswordField(
        _l("Neues Passwort"),
        description=_l(
            "Mindestens 10 Zeichen. Ein Satz aus mehreren Wörtern ist gut zu merken und schwer zu erraten."
        ),
        validators=[
            InputRequired(_l("Bitte geben Sie ein Passwort ein.")),
            Length(max=_PASSWORD_INPUT_MAX, message=_l("Das Passwort ist zu lang.")),
        ],
    )
    repeat = PasswordField(
        _l("Neues Passwort wiederholen"),
        validators=[
            InputRequired(_l("Bitte wiederholen Sie das Passwort.")),
            EqualTo("password", message=_l("Die beiden Passwörter stimmen nicht überein.")),
        ],
    )
    return new, repeat


class LoginForm(FlaskForm):
    """E-mail address and password."""

    email = _email_field()
    password = PasswordField(
        _l("Passwort"),
        validators=[
            InputRequired(_l("Bitte geben Sie Ihr Passwort ein.")),
            Length(max=_PASSWORD_INPUT_MAX, message=_l("Das Passwort ist zu lang.")),
        ],
    )
    submit = SubmitField(_l("Anmelden"))


class RegisterForm(FlaskForm):
    """A new family account."""

    email = _email_field()
    password, password_repeat = _new_password_fields()
    submit = SubmitField(_l("Konto anlegen"))


class EmailForm(FlaskForm):
    """Just an e-mail address (forgotten password, new confirmation link)."""

    email = _email_field()
    submit = SubmitField(_l("Link senden"))


class SetPasswordForm(FlaskForm):
    """A new password through a reset or invitation link."""

    password, password_repeat = _new_password_fields()
    submit = SubmitField(_l("Passwort speichern"))


class ChangePasswordForm(FlaskForm):
    """Change the password while logged in (the current one is required)."""

    current_password = PasswordField(
        _l("Aktuelles Passwort"),
        validators=[
            InputRequired(_l("Bitte geben Sie Ihr aktuelles Passwort ein.")),
            Length(max=_PASSWORD_INPUT_MAX, message=_l("Das Passwort ist zu lang.")),
        ],
    )
    password, password_repeat = _new_password_fields()
    submit = SubmitField(_l("Passwort ändern"))


class ConfirmForm(FlaskForm):
    """One button (confirm the e-mail address, start 2FA setup): CSRF only."""

    submit = SubmitField(_l("Bestätigen"))


class CodeForm(FlaskForm):
    """A TOTP code or a recovery code."""

    code = StringField(
        _l("Code"),
        validators=[
            DataRequired(_l("Bitte geben Sie den Code ein.")),
            Length(max=40, message=_l("Dieser Code ist zu lang.")),
        ],
    )
    submit = SubmitField(_l("Weiter"))


def _current_password_field() -> PasswordField:
    return PasswordField(
        _l("Aktuelles Passwort"),
        validators=[
            InputRequired(_l("Bitte geben Sie Ihr aktuelles Passwort ein.")),
            Length(max=_PASSWORD_INPUT_MAX, message=_l("Das Passwort ist zu lang.")),
        ],
    )


class NewRecoveryCodesForm(FlaskForm):
    """Replace the recovery codes (the current password confirms it)."""

    codes_password = _current_password_field()
    submit = SubmitField(_l("Neue Wiederherstellungscodes erzeugen"))


class DisableTwoFactorForm(FlaskForm):
    """Switch two-factor sign-in off (the current password confirms it)."""

    disable_password = _current_password_field()
    submit = SubmitField(_l("Zwei-Faktor-Anmeldung abschalten"))
