"""Two-factor sign-in for staff and admins: TOTP (pyotp) and one-time recovery codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import logging
import re
import secrets
import time

import pyotp
import qrcode
from flask import session
from flask_babel import gettext as _
from sqlalchemy import delete, func, select, update

from kyffikus.extensions import db
from kyffikus.models.base import utcnow
from kyffikus.models.people import RecoveryCode, User
from kyffikus.services import Conflict, DomainError, NotAllowed
from kyffikus.services.audit import record

log = logging.getLogger("kyffikus.auth")

ISSUER = "Kyffikus"
RECOVERY_CODE_COUNT = 10
# No 0/o, 1/l/i: recovery codes are typed from paper. 31**10 is about 2**49.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_LENGTH = 10
# Accept the code of the previous and the next 30-second step (clock drift of the phone).
_VALID_WINDOW = 1


class SecondFactorFailed(DomainError):
    """The code was wrong, used before or of the wrong shape."""

    code = "second_factor_failed"
    status = 401


# ---- state ----------------------------------------------------------------------------------


def has_totp(user: User) -> bool:
    """Whether the user has confirmed a TOTP app."""
    return user.totp_enabled_at is not None and bool(user.totp_secret)


def second_factor_required(user: User) -> bool:
    """Whether this user must pass a second factor in each session (staff with TOTP, or by setting)."""
    from kyffikus.authz import staff_needs_second_factor

    if user.role not in ("staff", "admin"):
        return False
    return has_totp(user) or staff_needs_second_factor()


def second_factor_pending(user: User) -> bool:
    """Whether the current session still has to pass the second factor (mirrors authz.role_required)."""
    return (
        getattr(user, "is_authenticated", False)
        and second_factor_required(user)
        and not session.get("mfa_ok")
    )


# ---- setting up --------------------------------------------------------------------------------


def start_setup(user: User) -> str:
    """Create a new secret for the user's authenticator app (not active until confirmed)."""
    if user.role not in ("staff", "admin"):
        raise NotAllowed(
            _("Die Zwei-Faktor-Anmeldung ist für Mitarbeitende des Landratsamts vorgesehen.")
        )
    if has_totp(user):
        raise Conflict(_("Die Zwei-Faktor-Anmeldung ist bereits eingerichtet."))
    user.totp_secret = pyotp.random_base32()
    user.totp_last_counter = None
    db.session.flush()
    return user.totp_secret


def pending_secret(user: User) -> str | None:
    """The secret waiting for confirmation, if setup was started."""
    if has_totp(user) or not user.totp_secret:
        return None
    return user.totp_secret


def provisioning_uri(user: User) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    if not user.totp_secret:
        raise DomainError(_("Die Einrichtung wurde noch nicht begonnen."))
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_data_uri(text: str) -> str:
    """A PNG QR code of the text as a data: URI (the CSP allows img-src data:)."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=6, border=4)
    qr.add_data(text)
    qr.make(fit=True)
    image = qr.make_image(fill_color="black", back_color="white")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def grouped_secret(secret: str) -> str:
    """The secret in groups of four, for typing it into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def confirm_setup(user: User, code: str) -> list[str]:
    """Activate TOTP with a first code from the app; returns 10 new recovery codes (shown once)."""
    secret = pending_secret(user)
    if secret is None:
        if has_totp(user):
            raise Conflict(_("Die Zwei-Faktor-Anmeldung ist bereits eingerichtet."))
        raise DomainError(_("Bitte beginnen Sie die Einrichtung erneut."))
    counter = _match_totp(secret, code, None)
    if counter is None:
        raise SecondFactorFailed(
            _(
                "Der Code stimmt nicht. Bitte geben Sie den aktuellen sechsstelligen Code aus der App ein."
            ),
            field="code",
        )
    user.totp_enabled_at = utcnow()
    user.totp_last_counter = counter
    codes = new_recovery_codes(user)
    record(user, "user.2fa_enable", user)
    log.info("two-factor sign-in enabled: user %s", user.id)
    return codes


def new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes with 10 new ones; returns them (only hashes are stored)."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _i in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _j in range(_RECOVERY_LENGTH))
        db.session.add(RecoveryCode(user_id=user.id, code_hash=_hash_recovery(raw)))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    db.session.flush()
    return codes


def remaining_recovery_codes(user: User) -> int:
    """How many unused recovery codes the user has left."""
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        )
        or 0
    )


def disable(user: User, by: User) -> None:
    """Switch TOTP off: by the user (only when not required) or by an admin for a lost phone (audited)."""
    from kyffikus.authz import staff_needs_second_factor

    if by.id == user.id:
        if staff_needs_second_factor():
            raise NotAllowed(
                _(
                    "Die Zwei-Faktor-Anmeldung ist vorgeschrieben und kann nicht abgeschaltet werden."
                )
            )
    elif by.role != "admin":
        raise NotAllowed(
            _("Nur Administratoren dürfen die Zwei-Faktor-Anmeldung anderer zurücksetzen.")
        )
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_counter = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.flush()
    record(by, "user.2fa_disable" if by.id == user.id else "user.2fa_reset", user)
    log.info("two-factor sign-in disabled for user %s by user %s", user.id, by.id)


# ---- signing in ---------------------------------------------------------------------------------


def verify_second_factor(user: User, code: str) -> str:
    """Check a TOTP code or a recovery code; returns "totp" or "recovery", else SecondFactorFailed."""
    cleaned = re.sub(r"[\s-]", "", code or "").lower()
    if has_totp(user) and re.fullmatch(r"\d{6}", cleaned):
        counter = _match_totp(user.totp_secret or "", cleaned, user.totp_last_counter)
        if counter is not None:
            # Conditional update: the same code sent twice at once is accepted once.
            result = db.session.execute(
                update(User)
                .where(
                    User.id == user.id,
                    (User.totp_last_counter.is_(None)) | (User.totp_last_counter < counter),
                )
                .values(totp_last_counter=counter)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                user.totp_last_counter = counter
                log.info("second factor passed (totp): user %s", user.id)
                return "totp"
    elif has_totp(user) and re.fullmatch(f"[{_RECOVERY_ALPHABET}]{{{_RECOVERY_LENGTH}}}", cleaned):
        now = utcnow()
        result = db.session.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == _hash_recovery(cleaned),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            log.info("second factor passed (recovery code): user %s", user.id)
            return "recovery"
    log.info("second factor failed: user %s", user.id)
    raise SecondFactorFailed(
        _(
            "Der Code ist falsch oder wurde schon verwendet. Bitte geben Sie den aktuellen Code aus "
            "Ihrer App oder einen unbenutzten Wiederherstellungscode ein."
        ),
        field="code",
    )


def _match_totp(secret: str, code: str, last_counter: int | None) -> int | None:
    """The time step whose code matches (newer than last_counter), or None."""
    cleaned = re.sub(r"\s", "", code or "")
    if not re.fullmatch(r"\d{6}", cleaned):
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(time.time())
    for step in range(now_step - _VALID_WINDOW, now_step + _VALID_WINDOW + 1):
        if last_counter is not None and step <= last_counter:
            continue
        if hmac.compare_digest(cleaned, totp.generate_otp(step)):
            return step
    return None


def _hash_recovery(code: str) -> str:
    normalised = re.sub(r"[\s-]", "", code).lower()
    return hashlib.sha256(f"kyffikus-recovery:{normalised}".encode()).hexdigest()
