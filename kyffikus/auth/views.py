"""Accounts: register, confirm, login, second factor, logout, password change and reset, invitations."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from kyffikus.auth import throttle
from kyffikus.auth.forms import (
    ChangePasswordForm,
    CodeForm,
    ConfirmForm,
    DisableTwoFactorForm,
    EmailForm,
    LoginForm,
    NewRecoveryCodesForm,
    RegisterForm,
    SetPasswordForm,
)
from kyffikus.auth_session import end_all_sessions, start_session
from kyffikus.authz import staff_needs_second_factor
from kyffikus.extensions import db, limiter, remote_address
from kyffikus.models.people import User
from kyffikus.services import DomainError, accounts, twofactor
from kyffikus.services.accounts import MailNotSent
from kyffikus.services.passwords import verify_password
from kyffikus.services.tokens import TokenError, check_token
from kyffikus.web import no_store, safe_next

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

bp = Blueprint("auth", __name__)
log = logging.getLogger("kyffikus.auth")

ROLE_HOME = {
    "family": "family.dashboard",
    "provider": "provider.check",
    "staff": "staff.dashboard",
    "admin": "staff.dashboard",
}


# ---- throttling ----------------------------------------------------------------------------------


def _login_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


def _mail_limit() -> str:
    return str(current_app.config["MAIL_RATE_LIMIT"])


def _code_limit() -> str:
    return str(current_app.config["SECOND_FACTOR_RATE_LIMIT"])


def _email_key() -> str:
    """Throttle key of the account a form names (hashed: Flask-Limiter logs and stores keys)."""
    return throttle.email_key(request.form.get("email"))


def _mail_limited(view: Callable[P, R]) -> Callable[P, R]:
    """Throttle a form that sends mail: per address and per account it names (POSTs only)."""
    per_account = limiter.limit(_mail_limit, key_func=_email_key, methods=["POST"])
    per_address = limiter.limit(_mail_limit, key_func=remote_address, methods=["POST"])
    return per_address(per_account(view))


def _user_key() -> str:
    """Throttle key of the logged-in account."""
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return "addr:" + remote_address()


def _failed(response: Response) -> bool:
    """Count only attempts that did not succeed (a success redirects)."""
    return response.status_code != 302


def _login_failed(response: Response) -> bool:
    """Count logins that failed, not those refused unheard (429): the owner trying while the
    account's budget is spent must not spend the budget of the owner's own address too."""
    return response.status_code not in (302, 429)


# ---- helpers ------------------------------------------------------------------------------------


def _home_for(user: User) -> str:
    """Where a user lands after login."""
    return url_for(ROLE_HOME.get(user.role, "public.home"))


def _add_error(form: FlaskForm, exc: DomainError) -> None:
    """Show a service's refusal at its field, or at the top of the form."""
    field = getattr(form, exc.field, None) if exc.field else None
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, exc.message]
    else:
        form.form_errors.append(exc.message)


def _begin_session(user: User) -> None:
    """A fresh session for a login: nothing from before survives (no session fixation)."""
    session.clear()
    login_user(user)
    start_session(user)
    # Staff prove a second factor separately; for everyone else the password is the whole login.
    session["mfa_ok"] = user.role not in ("staff", "admin")


def _renew_login(user: User) -> None:
    """Log the current browser in again after the session version was raised (password change)."""
    login_at = session.get("login_at")
    mfa_ok = session.get("mfa_ok", False)
    session.clear()
    login_user(user)
    start_session(user)
    if login_at:
        session["login_at"] = login_at  # a password change does not extend the absolute limit
    session["mfa_ok"] = mfa_ok


def _after_login(user: User, next_url: str | None) -> Response:
    target = next_url or _home_for(user)
    if twofactor.second_factor_pending(user):
        return redirect(url_for("auth.second_factor", next=target))
    return redirect(target)


def _needs_second_factor() -> Response | None:
    """Staff whose session has not passed the second factor go there first."""
    if twofactor.second_factor_pending(current_user):
        # After a POST there is no page to return to: the account page it is.
        back = request.full_path if request.method == "GET" else url_for("auth.account")
        return redirect(url_for("auth.second_factor", next=back))
    return None


def _token_error(exc: TokenError, *, purpose: str) -> tuple[str, int]:
    no_store()
    return render_template(
        "auth/token_error.html", message=exc.message, purpose=purpose
    ), exc.status


# ---- pages for mailed links ------------------------------------------------------------------------

# Forms that mail a link, by the link's purpose: the service that mails it (or quietly does
# nothing), the page, and the answer shown whether or not the address has an account.
LINK_REQUESTS: dict[str, tuple[Callable[[str | None], None], str, LazyString]] = {
    "confirm": (
        accounts.resend_confirmation,
        "auth/resend_confirmation.html",
        _l(
            "Falls zu dieser Adresse ein Konto gehört, das noch nicht bestätigt ist, haben wir "
            "einen neuen Bestätigungslink geschickt. Bitte sehen Sie auch im Spam-Ordner nach."
        ),
    ),
    "reset": (
        accounts.request_password_reset,
        "auth/forgot_password.html",
        _l(
            "Falls zu dieser Adresse ein Konto gehört, haben wir einen Link zum Zurücksetzen des "
            "Passworts geschickt. Er gilt eine Stunde und nur einmal."
        ),
    ),
}

# Links that set a password, by purpose: the service that uses the link, the page, and what the
# user reads on the login page afterwards.
SET_PASSWORD_LINKS: dict[str, tuple[Callable[[str, str], User], str, LazyString]] = {
    "reset": (
        accounts.reset_password,
        "auth/reset_password.html",
        _l("Ihr Passwort ist geändert. Bitte melden Sie sich mit dem neuen Passwort an."),
    ),
    "invite": (
        accounts.accept_invitation,
        "auth/accept_invite.html",
        _l("Ihr Passwort ist gespeichert. Sie können sich jetzt anmelden."),
    ),
}


def _link_request_page(purpose: str) -> Any:
    """A form asking for a mailed link: one answer for every address (no account enumeration)."""
    ask, template, answer = LINK_REQUESTS[purpose]
    form = EmailForm()
    if form.validate_on_submit():
        ask(form.email.data)
        db.session.commit()
        flash(str(answer), "info")
        return redirect(url_for("auth.login"))
    status = 422 if form.is_submitted() else 200
    return render_template(template, form=form), status


def _mailed_link_page(
    token: str,
    purpose: str,
    form: FlaskForm,
    use_link: Callable[[Any], User],
    template: str,
    done: Callable[[User], Response],
) -> Any:
    """A page opened from a mailed link: GET shows the form, a valid POST uses the link once.

    An unknown, used or expired link gets the error page before anything else; a refusal by the
    service (a weak password) shows the form again; success commits once and `done` answers.
    """
    no_store()
    try:
        account = check_token(token, purpose)
    except TokenError as exc:
        return _token_error(exc, purpose=purpose)
    if form.validate_on_submit():
        try:
            user = use_link(form)
        except TokenError as exc:  # used up meanwhile, by a request racing this one
            db.session.rollback()
            return _token_error(exc, purpose=purpose)
        except DomainError as exc:
            db.session.rollback()
            _add_error(form, exc)
        else:
            db.session.commit()
            return done(user)
    status = 422 if form.is_submitted() else 200
    return render_template(template, form=form, token=token, account=account), status


def _set_password_page(token: str, purpose: str) -> Any:
    """Choose a password through a reset or invitation link; afterwards, log in anew."""
    set_password, template, done_message = SET_PASSWORD_LINKS[purpose]

    def done(user: User) -> Response:
        if current_user.is_authenticated:
            logout_user()
        session.clear()
        # The owner proved the mailbox: guessers elsewhere must not keep the account locked.
        throttle.forgive_failed_logins(user)
        flash(str(done_message), "success")
        return redirect(url_for("auth.login"))

    return _mailed_link_page(
        token,
        purpose,
        SetPasswordForm(),
        lambda form: set_password(token, form.password.data),
        template,
        done,
    )


# ---- login and logout ----------------------------------------------------------------------------


@bp.route("/anmelden", methods=["GET", "POST"])
@limiter.limit(_login_limit, key_func=remote_address, methods=["POST"], deduct_when=_login_failed)
def login() -> Any:
    """Log in with e-mail address and password (failures throttled per address and per account)."""
    next_url = safe_next(request.args.get("next"))
    if current_user.is_authenticated and request.method == "GET":
        return _after_login(current_user, next_url)
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = throttle.authenticate(form.email.data, form.password.data)
        except DomainError as exc:
            db.session.rollback()
            form.form_errors.append(exc.message)
            status = exc.status
        else:
            db.session.commit()
            _begin_session(user)
            return _after_login(user, next_url)
    elif form.is_submitted():
        status = 422
    return render_template("auth/login.html", form=form, next=next_url), status


@bp.post("/abmelden")
def logout() -> Response:
    """Log out: ends every session of the user, on every device."""
    if current_user.is_authenticated:
        user = current_user._get_current_object()
        end_all_sessions(user)
        db.session.commit()
        logout_user()
    session.clear()
    flash(_("Sie sind abgemeldet."), "success")
    return redirect(url_for("public.home"))


# ---- registration and confirmation -------------------------------------------------------------------


@bp.route("/registrieren", methods=["GET", "POST"])
@_mail_limited
def register() -> Any:
    """Register a family account; the answer is the same whether or not the address is known."""
    if current_user.is_authenticated:
        return redirect(url_for("auth.account"))
    form = RegisterForm()
    status = 200
    if form.validate_on_submit():
        try:
            accounts.register_family(form.email.data, form.password.data)
        except DomainError as exc:
            db.session.rollback()
            _add_error(form, exc)
            status = exc.status if isinstance(exc, MailNotSent) else 422
        else:
            db.session.commit()
            return redirect(url_for("auth.check_email"))
    elif form.is_submitted():
        status = 422
    return render_template("auth/register.html", form=form), status


@bp.get("/registrieren/bestaetigen")
def check_email() -> str:
    """After registering: please confirm your address (the same page for known addresses)."""
    return render_template("auth/check_email.html")


@bp.route("/bestaetigen/<token>", methods=["GET", "POST"])
def confirm_email(token: str) -> Any:
    """Confirm an e-mail address from the mailed link (GET shows a button, POST uses the link)."""
    return _mailed_link_page(
        token,
        "confirm",
        ConfirmForm(),
        lambda _form: accounts.confirm_email(token),
        "auth/confirm_email.html",
        _email_confirmed,
    )


def _email_confirmed(_user: User) -> Response:
    flash(_("Vielen Dank! Ihre E-Mail-Adresse ist bestätigt."), "success")
    if current_user.is_authenticated:
        return redirect(_home_for(current_user))
    return redirect(url_for("auth.login"))


@bp.route("/bestaetigung-anfordern", methods=["GET", "POST"])
@_mail_limited
def resend_confirmation() -> Any:
    """Ask for a new confirmation link (the same answer for every address)."""
    return _link_request_page("confirm")


@bp.post("/bestaetigung-senden")
@login_required
@limiter.limit(_mail_limit, key_func=_user_key)
def send_confirmation() -> Response:
    """Mail a new confirmation link to the logged-in user's address."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    user = current_user._get_current_object()
    if accounts.is_confirmed(user):
        flash(_("Ihre E-Mail-Adresse ist bereits bestätigt."), "info")
        return redirect(url_for("auth.account"))
    try:
        accounts.send_confirmation(user)
    except MailNotSent as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("auth.account"))
    db.session.commit()
    flash(_("Wir haben Ihnen einen neuen Bestätigungslink geschickt."), "success")
    return redirect(url_for("auth.account"))


# ---- forgotten password ----------------------------------------------------------------------------


@bp.route("/passwort-vergessen", methods=["GET", "POST"])
@_mail_limited
def forgot_password() -> Any:
    """Ask for a password-reset link (the same answer for every address)."""
    return _link_request_page("reset")


@bp.route("/passwort-neu/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> Any:
    """Set a new password from a reset link; every session of the account ends."""
    return _set_password_page(token, "reset")


# ---- invitations -------------------------------------------------------------------------------------


@bp.route("/einladung/<token>", methods=["GET", "POST"])
def accept_invite(token: str) -> Any:
    """Accept an invitation: choose the first password (this also confirms the address)."""
    return _set_password_page(token, "invite")


# ---- the account page ----------------------------------------------------------------------------------


def _account_page(status: int = 200, **forms: FlaskForm) -> tuple[str, int]:
    user = current_user._get_current_object()
    context: dict[str, Any] = {
        "user": user,
        "password_form": forms.get("password_form") or ChangePasswordForm(formdata=None),
        "confirm_form": ConfirmForm(formdata=None),
        "codes_form": forms.get("codes_form") or NewRecoveryCodesForm(formdata=None),
        "disable_form": forms.get("disable_form") or DisableTwoFactorForm(formdata=None),
        "is_staff": user.role in ("staff", "admin"),
        "has_totp": twofactor.has_totp(user),
        "required_by_setting": staff_needs_second_factor(),
        "recovery_left": twofactor.remaining_recovery_codes(user)
        if twofactor.has_totp(user)
        else 0,
        "confirmed": accounts.is_confirmed(user),
    }
    return render_template("auth/account.html", **context), status


@bp.get("/")
@login_required
def account() -> Any:
    """The account page: e-mail address, password change, two-factor status for staff."""
    return _needs_second_factor() or _account_page()


@bp.post("/passwort")
@login_required
@limiter.limit(_login_limit, key_func=_user_key, deduct_when=_failed)
def change_password() -> Any:
    """Change the password: every other session ends, this one stays logged in."""
    if (pending := _needs_second_factor()) is not None:
        return pending
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return _account_page(422, password_form=form)
    user = current_user._get_current_object()
    try:
        accounts.change_password(user, form.current_password.data, form.password.data)
    except DomainError as exc:
        db.session.rollback()
        _add_error(form, exc)
        return _account_page(422, password_form=form)
    db.session.commit()
    _renew_login(user)
    flash(
        _("Ihr Passwort ist geändert. Auf allen anderen Geräten sind Sie jetzt abgemeldet."),
        "success",
    )
    return redirect(url_for("auth.account"))


# ---- two-factor sign-in (staff and admins) -----------------------------------------------------------


@bp.route("/zweiter-faktor", methods=["GET", "POST"])
@login_required
@limiter.limit(_code_limit, key_func=_user_key, methods=["POST"], deduct_when=_failed)
@limiter.limit(_code_limit, key_func=remote_address, methods=["POST"], deduct_when=_failed)
def second_factor() -> Any:
    """The second step of a staff login: a code from the authenticator app or a recovery code."""
    user = current_user._get_current_object()
    target = safe_next(request.args.get("next")) or _home_for(user)
    if not twofactor.second_factor_pending(user):
        return redirect(target)
    if not twofactor.has_totp(user):
        # Required by configuration but not set up yet: set it up first.
        return redirect(url_for("auth.two_factor_setup", next=target))
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        kind, status = _code_accepted(form, lambda code: twofactor.verify_second_factor(user, code))
        if kind is not None:
            if kind == "recovery":
                flash(
                    _(
                        "Sie haben einen Wiederherstellungscode verwendet. Es sind noch %(n)d übrig.",
                        n=twofactor.remaining_recovery_codes(user),
                    ),
                    "warning",
                )
            return redirect(target)
    elif form.is_submitted():
        status = 422
    return render_template("auth/second_factor.html", form=form, next=target), status


def _code_accepted(form: CodeForm, check: Callable[[str], T]) -> tuple[T | None, int]:
    """Check the form's code: (the check's answer, 200) once it passed, which also completes this
    session's second factor; else (None, the refusal's status) with the refusal at the form."""
    try:
        answer = check(form.code.data)
    except DomainError as exc:
        db.session.rollback()
        _add_error(form, exc)
        return None, exc.status
    db.session.commit()
    session["mfa_ok"] = True
    return answer, 200


def _staff_only() -> User:
    user = current_user._get_current_object()
    if user.role not in ("staff", "admin"):
        abort(403)
    return user


@bp.route("/zwei-faktor", methods=["GET", "POST"])
@login_required
@limiter.limit(_code_limit, key_func=_user_key, methods=["POST"], deduct_when=_failed)
def two_factor_setup() -> Any:
    """Set up the authenticator app: QR code, a first code, then 10 recovery codes shown once."""
    user = _staff_only()
    target = safe_next(request.args.get("next")) or url_for("auth.account")
    if twofactor.has_totp(user):
        if (pending := _needs_second_factor()) is not None:
            return pending
        flash(_("Die Zwei-Faktor-Anmeldung ist bereits eingerichtet."), "info")
        return redirect(url_for("auth.account"))
    secret = twofactor.pending_secret(user)
    form = CodeForm()
    status = 200
    if secret is not None and form.validate_on_submit():
        codes, status = _code_accepted(form, lambda code: twofactor.confirm_setup(user, code))
        if codes is not None:
            no_store()
            return render_template("auth/recovery_codes.html", codes=codes, next=target)
    elif form.is_submitted():
        status = 422
    context: dict[str, Any] = {
        "form": form,
        "start_form": ConfirmForm(formdata=None),
        "next": target,
    }
    if secret is not None:
        uri = twofactor.provisioning_uri(user)
        context.update(qr=twofactor.qr_data_uri(uri), secret=twofactor.grouped_secret(secret))
    return render_template("auth/two_factor_setup.html", **context), status


@bp.post("/zwei-faktor/beginnen")
@login_required
def two_factor_start() -> Any:
    """Create the secret for a new authenticator app (shown on the setup page)."""
    user = _staff_only()
    target = safe_next(request.args.get("next")) or url_for("auth.account")
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if not twofactor.has_totp(user):
        twofactor.start_setup(user)
        db.session.commit()
    return redirect(url_for("auth.two_factor_setup", next=target))


def _check_current_password(form: FlaskForm, field_name: str) -> bool:
    """Whether the form holds the user's current password (adds the error if not)."""
    if not form.validate_on_submit():
        return False
    field = getattr(form, field_name)
    if verify_password(current_user.password_hash, field.data or ""):
        return True
    log.info("current password wrong: user %s", current_user.id)
    field.errors = [*field.errors, _("Das aktuelle Passwort ist falsch.")]
    return False


@bp.post("/zwei-faktor/wiederherstellungscodes")
@login_required
@limiter.limit(_login_limit, key_func=_user_key, deduct_when=_failed)
def recovery_codes() -> Any:
    """Replace the recovery codes with 10 new ones (current password required)."""
    user = _staff_only()
    if (pending := _needs_second_factor()) is not None:
        return pending
    if not twofactor.has_totp(user):
        return redirect(url_for("auth.two_factor_setup"))
    form = NewRecoveryCodesForm()
    if not _check_current_password(form, "codes_password"):
        return _account_page(422, codes_form=form)
    codes = twofactor.new_recovery_codes(user)
    db.session.commit()
    no_store()
    return render_template("auth/recovery_codes.html", codes=codes, next=url_for("auth.account"))


@bp.post("/zwei-faktor/abschalten")
@login_required
@limiter.limit(_login_limit, key_func=_user_key, deduct_when=_failed)
def two_factor_disable() -> Any:
    """Switch two-factor sign-in off (current password required; refused when it is mandatory)."""
    user = _staff_only()
    if (pending := _needs_second_factor()) is not None:
        return pending
    form = DisableTwoFactorForm()
    if not _check_current_password(form, "disable_password"):
        return _account_page(422, disable_form=form)
    try:
        twofactor.disable(user, user)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("auth.account"))
    db.session.commit()
    flash(_("Die Zwei-Faktor-Anmeldung ist abgeschaltet."), "success")
    return redirect(url_for("auth.account"))
