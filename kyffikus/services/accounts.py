"""Accounts: registration, e-mail confirmation, login, passwords, invitations and deactivation.

Answers never reveal whether an e-mail address is registered: registration and the password-reset
request look the same either way; the difference is only in the mail the address receives.
"""

from __future__ import annotations

import logging
import smtplib
from typing import Any

from email_validator import EmailNotValidError
from email_validator import validate_email as _validate_email
from flask import current_app, has_request_context, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from kyffikus.auth_session import end_all_sessions
from kyffikus.extensions import db
from kyffikus.models.base import utcnow
from kyffikus.models.catalogue import Provider
from kyffikus.models.people import ROLES, User
from kyffikus.services import Conflict, DomainError, NotAllowed
from kyffikus.services.audit import changes, record
from kyffikus.services.mail import send_mail
from kyffikus.services.passwords import hash_password, hasher, password_problem, verify_password
from kyffikus.services.tokens import check_token, consume_token, drop_tokens, issue_token

log = logging.getLogger("kyffikus.auth")

EMAIL_MAX_LENGTH = 254
STAFF_ROLES = ("staff", "admin")


class LoginFailed(DomainError):
    """Wrong e-mail address or password (one message for both, so accounts cannot be probed)."""

    code = "login_failed"
    status = 401


class AccountInactive(DomainError):
    """The password was right but the account is deactivated."""

    code = "account_inactive"
    status = 403


class MailNotSent(DomainError):
    """The mail server refused or could not be reached; nothing was changed."""

    code = "mail_not_sent"
    status = 503


# ---- e-mail addresses ---------------------------------------------------------------------------


def normalise_email(raw: str | None) -> str:
    """Strip and lower-case an address (for lookups; validation is separate)."""
    return (raw or "").strip().lower()


def validate_email_address(raw: str | None) -> str:
    """The normalised address, or DomainError(field="email") with a message saying what is wrong."""
    value = (raw or "").strip()
    if not value:
        raise DomainError(_("Bitte geben Sie Ihre E-Mail-Adresse an."), field="email")
    if len(value) > EMAIL_MAX_LENGTH or any(ord(c) < 32 for c in value):
        raise DomainError(_("Diese E-Mail-Adresse ist ungültig."), field="email")
    try:
        result = _validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise DomainError(
            _(
                "Diese E-Mail-Adresse ist ungültig. Bitte prüfen Sie die Schreibweise (Beispiel: name@example.de)."
            ),
            field="email",
        ) from exc
    normalised = result.normalized.lower()
    if len(normalised) > EMAIL_MAX_LENGTH:
        raise DomainError(_("Diese E-Mail-Adresse ist ungültig."), field="email")
    return normalised


def find_user_by_email(email: str | None) -> User | None:
    """The user with this address (compared normalised), or None."""
    normalised = normalise_email(email)
    if not normalised or len(normalised) > EMAIL_MAX_LENGTH or "\x00" in normalised:
        # PostgreSQL refuses NUL in text; such an address is never stored anyway.
        return None
    # Addresses are stored normalised (see validate_email_address), so the unique index serves this.
    return db.session.scalars(select(User).where(User.email == normalised)).first()


def is_confirmed(user: User | None) -> bool:
    """Whether the user has confirmed their e-mail address (needed before submitting an application)."""
    return user is not None and user.email_confirmed_at is not None


# ---- mail -----------------------------------------------------------------------------------


def link(endpoint: str, **values: Any) -> str:
    """An absolute link for a mail: BASE_URL plus the endpoint's path."""
    base = current_app.config["BASE_URL"].rstrip("/")
    if has_request_context():
        path = url_for(endpoint, _external=False, **values)
    else:
        with current_app.test_request_context("/"):
            path = url_for(endpoint, _external=False, **values)
    return base + path


def _mail(to: str, subject: str, template: str, **context: Any) -> None:
    """Send a mail; raise MailNotSent (logged without the address) when the server fails."""
    try:
        send_mail(to, subject, template, **context)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("mail not sent (%s): %s", template, type(exc).__name__)
        raise MailNotSent(
            _(
                "Die E-Mail konnte gerade nicht versendet werden. Bitte versuchen Sie es in einigen "
                "Minuten noch einmal."
            )
        ) from exc


def _mail_quietly(to: str, subject: str, template: str, **context: Any) -> bool:
    """Send a notice whose failure must not undo the action (or reveal whether an account exists)."""
    try:
        _mail(to, subject, template, **context)
    except MailNotSent:
        return False
    return True


def _hours(purpose_key: str) -> int:
    """A token lifetime in whole hours, for the mail text."""
    return max(1, int(current_app.config[purpose_key].total_seconds() // 3600))


def send_confirmation(user: User) -> None:
    """Mail a fresh confirmation link to the user (raises MailNotSent)."""
    raw = issue_token(user, "confirm")
    _mail(
        user.email,
        _("Bitte bestätigen Sie Ihre E-Mail-Adresse"),
        "confirm",
        link=link("auth.confirm_email", token=raw),
        hours=_hours("CONFIRM_TOKEN_MAX_AGE"),
    )


def _send_already_registered(user: User) -> None:
    """Tell an address that registered again that it already has an account."""
    confirm_link = None
    if not is_confirmed(user) and user.active:
        confirm_link = link("auth.confirm_email", token=issue_token(user, "confirm"))
    _mail(
        user.email,
        _("Sie haben bereits ein Konto beim Familienpass Kyffikus"),
        "already_registered",
        login_link=link("auth.login"),
        reset_link=link("auth.forgot_password"),
        confirm_link=confirm_link,
        hours=_hours("CONFIRM_TOKEN_MAX_AGE"),
    )


# ---- creating accounts ------------------------------------------------------------------------


def _check_password(password: str, email: str | None, field: str = "password") -> None:
    problem = password_problem(password or "", email=email)
    if problem:
        raise DomainError(problem, field=field)


def _resolve_provider(role: str, provider: Provider | None) -> Provider | None:
    if role not in ROLES:
        raise DomainError(_("Unbekannte Rolle."), field="role")
    if role == "provider" and provider is None:
        raise DomainError(_("Ein Anbieter-Konto braucht einen Anbieter."), field="provider")
    return provider if role == "provider" else None


def create_user(
    email: str,
    role: str,
    password: str | None,
    *,
    provider: Provider | None = None,
    confirmed: bool = True,
) -> User:
    """Create a user directly (CLI, demo data): validated address, password policy, no mail."""
    address = validate_email_address(email)
    provider = _resolve_provider(role, provider)
    if password is not None:
        _check_password(password, address)
    if find_user_by_email(address) is not None:
        raise Conflict(_("Für diese E-Mail-Adresse gibt es schon ein Konto."), field="email")
    user = User(
        email=address,
        role=role,
        provider=provider,
        password_hash=hash_password(password) if password is not None else None,
        active=True,
        email_confirmed_at=utcnow() if confirmed else None,
    )
    db.session.add(user)
    db.session.flush()
    return user


def register_family(email: str, password: str) -> User | None:
    """Register a family account and mail a confirmation link; same outcome for a known address.

    A known address gets a "you already have an account" mail instead and nothing is written.
    Returns the new user, or None when the address was already registered (callers must not
    show the difference). Raises DomainError for a bad address or password, MailNotSent if
    the mail server fails (in both cases, so that answer reveals nothing either).
    """
    address = validate_email_address(email)
    _check_password(password, address)
    password_hash = hash_password(password)  # hashed either way, so both paths take as long
    existing = find_user_by_email(address)
    if existing is not None:
        log.info("registration for an existing account: user %s", existing.id)
        _send_already_registered(existing)
        return None
    user = User(email=address, role="family", password_hash=password_hash, active=True)
    db.session.add(user)
    db.session.flush()
    send_confirmation(user)
    log.info("family account registered: user %s", user.id)
    return user


def resend_confirmation(email: str | None) -> None:
    """Mail a new confirmation link if the address belongs to an unconfirmed account; else nothing."""
    user = find_user_by_email(email)
    if user is None or not user.active or is_confirmed(user):
        return
    try:
        send_confirmation(user)
    except MailNotSent:
        # Swallowed: an error here would tell the asker that the account exists.
        return


def confirm_email(raw_token: str) -> User:
    """Use a confirmation link: the address counts as confirmed from now on."""
    user = consume_token(raw_token, "confirm")
    if user.email_confirmed_at is None:
        user.email_confirmed_at = utcnow()
    db.session.flush()
    log.info("e-mail confirmed: user %s", user.id)
    return user


# ---- login and passwords ----------------------------------------------------------------------


def authenticate(email: str | None, password: str | None) -> User:
    """The user for a login, or LoginFailed / AccountInactive; failures are logged without the address."""
    user = find_user_by_email(email)
    password = password or ""
    if user is None:
        verify_password(None, password)  # the same work as for a real account
        log.info("login failed: unknown account")
        raise LoginFailed(_("E-Mail-Adresse oder Passwort ist falsch."))
    if not verify_password(user.password_hash, password):
        log.info("login failed: wrong password for user %s", user.id)
        raise LoginFailed(_("E-Mail-Adresse oder Passwort ist falsch."))
    if not user.active:
        log.info("login refused: user %s is deactivated", user.id)
        raise AccountInactive(
            _(
                "Dieses Konto ist deaktiviert. Bitte wenden Sie sich an das Landratsamt Kyffhäuserkreis."
            )
        )
    if user.password_hash and hasher().check_needs_rehash(user.password_hash):
        # Parameters were raised since this hash was made: upgrade it while we know the password.
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    db.session.flush()
    log.info("login: user %s", user.id)
    return user


def _set_password(user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    if user.email_confirmed_at is None:
        # Only the owner of the address could follow the mailed link, so it is confirmed too.
        user.email_confirmed_at = utcnow()


def _notify_password_changed(user: User) -> None:
    _mail_quietly(
        user.email,
        _("Ihr Passwort wurde geändert"),
        "password_changed",
        reset_link=link("auth.forgot_password"),
        changed_at=utcnow(),
    )


def change_password(user: User, current_password: str, new_password: str) -> None:
    """Change a password (current one required); ends every session and mails a notice."""
    if not verify_password(user.password_hash, current_password or ""):
        log.info("password change refused: wrong current password for user %s", user.id)
        raise DomainError(_("Das aktuelle Passwort ist falsch."), field="current_password")
    _check_password(new_password, user.email, field="password")
    if verify_password(user.password_hash, new_password):
        raise DomainError(
            _("Das neue Passwort muss sich vom bisherigen unterscheiden."), field="password"
        )
    user.password_hash = hash_password(new_password)
    end_all_sessions(user)
    drop_tokens(user, "reset")
    db.session.flush()
    log.info("password changed: user %s", user.id)
    _notify_password_changed(user)


def send_password_reset(user: User, by: User | None = None) -> None:
    """Mail a password-reset link (1 hour, single use); by staff: audited. Raises MailNotSent."""
    raw = issue_token(user, "reset")
    _mail(
        user.email,
        _("Passwort zurücksetzen"),
        "reset",
        link=link("auth.reset_password", token=raw),
        minutes=max(1, int(current_app.config["RESET_TOKEN_MAX_AGE"].total_seconds() // 60)),
        by_staff=by is not None,
    )
    if by is not None:
        record(by, "user.password_reset", user, details={"role": user.role})
    log.info("password reset link sent: user %s", user.id)


def request_password_reset(email: str | None) -> None:
    """The "forgot password" form: mail a link if the address has an active account; else nothing."""
    user = find_user_by_email(email)
    if user is None or not user.active:
        log.info("password reset asked for an unknown or inactive account")
        return
    try:
        send_password_reset(user)
    except MailNotSent:
        # Swallowed: an error only for known addresses would reveal them.
        return


def check_reset_token(raw_token: str) -> User:
    """The user of a usable reset link (for showing the form), else TokenError."""
    return check_token(raw_token, "reset")


def reset_password(raw_token: str, new_password: str) -> User:
    """Set a new password through a reset link: single use; ends every session of the user."""
    user = check_token(raw_token, "reset")
    _check_password(new_password, user.email)
    if not user.active:
        raise AccountInactive(
            _(
                "Dieses Konto ist deaktiviert. Bitte wenden Sie sich an das Landratsamt Kyffhäuserkreis."
            )
        )
    consume_token(raw_token, "reset")
    _set_password(user, new_password)
    end_all_sessions(user)
    drop_tokens(user, "reset")
    db.session.flush()
    log.info("password reset: user %s", user.id)
    _notify_password_changed(user)
    return user


# ---- invitations and administration (staff) --------------------------------------------------------


def _require_staff(by: User | None) -> User:
    if by is None or by.role not in STAFF_ROLES:
        raise NotAllowed(_("Nur Mitarbeitende des Landratsamts dürfen Konten verwalten."))
    return by


def _require_may_manage(by: User, target_role: str) -> None:
    """Staff manage provider and family accounts; only admins manage staff and admins."""
    if target_role in STAFF_ROLES and by.role != "admin":
        raise NotAllowed(_("Nur Administratoren dürfen Konten von Mitarbeitenden verwalten."))


def invite_user(email: str, role: str, provider: Provider | None, by: User) -> User:
    """Create an account without a password and mail an invitation link to set one (staff only)."""
    _require_staff(by)
    if role not in ("provider", "staff", "admin"):
        raise DomainError(
            _("Einladen kann man nur Anbieter, Mitarbeitende und Administratoren."), field="role"
        )
    _require_may_manage(by, role)
    address = validate_email_address(email)
    provider = _resolve_provider(role, provider)
    if find_user_by_email(address) is not None:
        raise Conflict(_("Für diese E-Mail-Adresse gibt es schon ein Konto."), field="email")
    user = User(email=address, role=role, provider=provider, password_hash=None, active=True)
    db.session.add(user)
    db.session.flush()
    raw = issue_token(user, "invite")
    _mail(
        address,
        _("Einladung zum Familienpass Kyffikus"),
        "invite",
        link=link("auth.accept_invite", token=raw),
        role=role,
        provider_name=provider.name if provider else None,
        days=max(1, int(current_app.config["INVITE_TOKEN_MAX_AGE"].total_seconds() // 86400)),
    )
    record(
        by,
        "user.invite",
        user,
        details={"role": role, "provider": provider.slug if provider else None},
    )
    log.info("user %s invited by user %s", user.id, by.id)
    return user


def check_invite_token(raw_token: str) -> User:
    """The user of a usable invitation link (for showing the form), else TokenError."""
    return check_token(raw_token, "invite")


def accept_invitation(raw_token: str, password: str) -> User:
    """Set the first password through an invitation link; the address counts as confirmed."""
    user = check_token(raw_token, "invite")
    _check_password(password, user.email)
    if not user.active:
        raise AccountInactive(
            _(
                "Dieses Konto ist deaktiviert. Bitte wenden Sie sich an das Landratsamt Kyffhäuserkreis."
            )
        )
    consume_token(raw_token, "invite")
    _set_password(user, password)
    db.session.flush()
    log.info("invitation accepted: user %s", user.id)
    return user


def deactivate_user(user: User, by: User) -> None:
    """Deactivate an account: it can no longer log in and every session ends at once (audited)."""
    _require_staff(by)
    if user.id == by.id:
        raise NotAllowed(_("Sie können Ihr eigenes Konto nicht deaktivieren."))
    _require_may_manage(by, user.role)
    if not user.active:
        return
    user.active = False
    end_all_sessions(user)
    db.session.flush()
    record(by, "user.deactivate", user, details={"role": user.role})
    log.info("user %s deactivated by user %s", user.id, by.id)


def activate_user(user: User, by: User) -> None:
    """Allow a deactivated account to log in again (audited)."""
    _require_staff(by)
    _require_may_manage(by, user.role)
    if user.active:
        return
    user.active = True
    db.session.flush()
    record(by, "user.activate", user, details={"role": user.role})
    log.info("user %s activated by user %s", user.id, by.id)


def change_role(user: User, role: str, by: User, provider: Provider | None = None) -> None:
    """Change a user's role (admins only); the user's sessions end so new rights apply at once."""
    _require_staff(by)
    if by.role != "admin":
        raise NotAllowed(_("Nur Administratoren dürfen Rollen ändern."))
    if user.id == by.id:
        raise NotAllowed(_("Sie können Ihre eigene Rolle nicht ändern."))
    if user.role == "family" or role == "family":
        raise DomainError(_("Familienkonten haben immer die Rolle Familie."), field="role")
    provider = _resolve_provider(role, provider)
    diff = changes(
        user,
        {"role": role, "provider_id": provider.id if provider else None},
    )
    if not diff:
        return
    user.role = role
    user.provider = provider
    end_all_sessions(user)
    db.session.flush()
    record(by, "user.role_change", user, details=diff)
    log.info("role of user %s changed by user %s", user.id, by.id)
