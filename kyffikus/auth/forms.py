"""Forms of the account pages: shape only; rules that need the database live in the services."""

from __future__ import annotations

from typing import Any, TypeVar

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, Field, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length

# Longer inputs are refused before argon2 spends time on them.
_PASSWORD_INPUT_MAX = 1024
_EMAIL_INPUT_MAX = 320

F = TypeVar("F", bound=Field)


def _required(
    field_class: type[F], label: str, missing: str, *, max_length: int, too_long: str, **kwargs: Any
) -> F:
    """A required input of at most max_length characters, with a message for each refusal.

    A password counts as given even when it is all spaces (InputRequired); other inputs do not.
    """
    required = InputRequired if field_class is PasswordField else DataRequired
    validators = [required(missing), Length(max=max_length, message=too_long)]
    return field_class(label, validators=validators, **kwargs)


def _email_field(label: str | None = None) -> EmailField:
    return _required(
        EmailField,
        label or _l("E-Mail-Adresse"),
        _l("Bitte geben Sie Ihre E-Mail-Adresse an."),
        max_length=_EMAIL_INPUT_MAX,
        too_long=_l("Diese E-Mail-Adresse ist zu lang."),
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
    )


def _password_field(label: str, missing: str, **kwargs: Any) -> PasswordField:
    return _required(
        PasswordField,
        label,
        missing,
        max_length=_PASSWORD_INPUT_MAX,
        too_long=_l("Das Passwort ist zu lang."),
        **kwargs,
    )


def _current_password_field() -> PasswordField:
    return _password_field(
        _l("Aktuelles Passwort"), _l("Bitte geben Sie Ihr aktuelles Passwort ein.")
    )


def _new_password_fields() -> tuple[PasswordField, PasswordField]:
    new = _password_field(
        _l("Neues Passwort"),
        _l("Bitte geben Sie ein Passwort ein."),
        description=_l(
            "Mindestens 10 Zeichen. Ein Satz aus mehreren Wörtern ist gut zu merken und schwer zu erraten."
        ),
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
    password = _password_field(_l("Passwort"), _l("Bitte geben Sie Ihr Passwort ein."))
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

    current_password = _current_password_field()
    password, password_repeat = _new_password_fields()
    submit = SubmitField(_l("Passwort ändern"))


class ConfirmForm(FlaskForm):
    """One button (confirm the e-mail address, start 2FA setup): CSRF only."""

    submit = SubmitField(_l("Bestätigen"))


class CodeForm(FlaskForm):
    """A TOTP code or a recovery code."""

    code = _required(
        StringField,
        _l("Code"),
        _l("Bitte geben Sie den Code ein."),
        max_length=40,
        too_long=_l("Dieser Code ist zu lang."),
    )
    submit = SubmitField(_l("Weiter"))


class NewRecoveryCodesForm(FlaskForm):
    """Replace the recovery codes (the current password confirms it)."""

    codes_password = _current_password_field()
    submit = SubmitField(_l("Neue Wiederherstellungscodes erzeugen"))


class DisableTwoFactorForm(FlaskForm):
    """Switch two-factor sign-in off (the current password confirms it)."""

    disable_password = _current_password_field()
    submit = SubmitField(_l("Zwei-Faktor-Anmeldung abschalten"))
