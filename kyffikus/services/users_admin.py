"""User management by staff and admins, and the settings page.

Thin wrappers around kyffikus.services.accounts (which mails, audits and ends sessions) that add
what the staff pages need: who may do what to whom (for showing buttons and refusing on the
server), the rule that the last active admin stays, the user search and the settings.

Who may do what: staff list and search every account, invite provider accounts, and deactivate,
reactivate or send a password reset to provider and family accounts. Admins may also invite,
deactivate and reset staff and admin accounts, and change roles.
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Select, func, or_, select

from kyffikus.extensions import db
from kyffikus.models.catalogue import Provider
from kyffikus.models.people import ROLES, User
from kyffikus.services import Conflict, DomainError, NotAllowed, accounts
from kyffikus.services.audit import record
from kyffikus.services.settings import get_setting, set_setting

STAFF_ROLES = ("staff", "admin")
# Roles an admin may give; family accounts belong to a household and keep their role.
ASSIGNABLE_ROLES = ("provider", "staff", "admin")


def invitable_roles(actor: User) -> tuple[str, ...]:
    """The roles this actor may invite: staff invite providers, admins also staff and admins."""
    if actor.role == "admin":
        return ("provider", "staff", "admin")
    if actor.role == "staff":
        return ("provider",)
    return ()


def may_manage(actor: User, target: User) -> bool:
    """Whether the actor may deactivate, reactivate or reset the password of the target."""
    if actor.id == target.id:
        return False
    if actor.role == "admin":
        return True
    return actor.role == "staff" and target.role in ("family", "provider")


def may_change_role(actor: User, target: User) -> bool:
    """Whether the actor may change the target's role (admins; not families, not themselves)."""
    return actor.role == "admin" and target.role != "family" and actor.id != target.id


def _active_admin_ids(lock: bool) -> list[int]:
    query = select(User.id).where(User.role == "admin", User.active.is_(True)).order_by(User.id)
    if lock:
        # Two admins demoting each other at once must not leave none: lock the admin rows.
        query = query.with_for_update()
    return list(db.session.scalars(query))


def _keep_last_admin(target: User, removing: bool) -> None:
    """Refuse when the change would leave no active admin."""
    if not removing or target.role != "admin" or not target.active:
        return
    admins = _active_admin_ids(lock=True)
    if admins == [target.id]:
        raise Conflict(
            _(
                "Das ist das letzte aktive Administratorkonto. Ernennen Sie zuerst eine weitere Person zur Administratorin oder zum Administrator; sonst kann niemand mehr Rollen und Einstellungen verwalten."
            )
        )


def invite(email: str, role: str, provider: Provider | None, by: User) -> User:
    """Invite a provider, staff or admin account (mail with a link to set the password)."""
    if role not in invitable_roles(by):
        raise NotAllowed(_("Sie dürfen keine Konten mit dieser Rolle einladen."), field="role")
    return accounts.invite_user(email, role, provider, by)


def deactivate(target: User, by: User) -> None:
    """Deactivate an account; its sessions end at once. The last active admin stays."""
    if target.id == by.id:
        _keep_last_admin(target, removing=True)  # the clearer reason for the only admin
        raise NotAllowed(_("Sie können Ihr eigenes Konto nicht deaktivieren."))
    if not may_manage(by, target):
        raise NotAllowed(_("Sie dürfen dieses Konto nicht deaktivieren."))
    _keep_last_admin(target, removing=True)
    accounts.deactivate_user(target, by)


def reactivate(target: User, by: User) -> None:
    """Let a deactivated account log in again."""
    if not may_manage(by, target):
        raise NotAllowed(_("Sie dürfen dieses Konto nicht wieder freischalten."))
    accounts.activate_user(target, by)


def send_reset(target: User, by: User) -> None:
    """Mail the user a password-reset link (raises accounts.MailNotSent when mail fails)."""
    if not may_manage(by, target):
        raise NotAllowed(_("Sie dürfen für dieses Konto kein neues Passwort anstoßen."))
    if not target.active:
        raise Conflict(_("Das Konto ist deaktiviert; schalten Sie es zuerst wieder frei."))
    accounts.send_password_reset(target, by)


def change_role(target: User, role: str, provider: Provider | None, by: User) -> None:
    """Change a role (admins only); the last active admin cannot be demoted."""
    if by.role != "admin":
        raise NotAllowed(_("Nur Administratoren dürfen Rollen ändern."))
    if role not in ASSIGNABLE_ROLES:
        raise DomainError(_("Diese Rolle kann man nicht vergeben."), field="role")
    _keep_last_admin(target, removing=role != "admin")
    accounts.change_role(target, role, by, provider=provider)


def search_users(
    query: str | None = None, role: str | None = None, active: bool | None = None
) -> Select[Any]:
    """Users whose e-mail contains the query, optionally of one role and state, newest first."""
    statement = select(User).order_by(User.created_at.desc(), User.id.desc())
    words = (query or "").strip().lower()
    if words:
        pattern = "%" + words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.outerjoin(User.provider).where(
            or_(
                func.lower(User.email).like(pattern, escape="\\"),
                func.lower(Provider.name).like(pattern, escape="\\"),
            )
        )
    if role in ROLES:
        statement = statement.where(User.role == role)
    if active is not None:
        statement = statement.where(User.active.is_(active))
    return statement


def role_counts() -> dict[str, int]:
    """Active accounts per role."""
    rows = db.session.execute(
        select(User.role, func.count()).where(User.active.is_(True)).group_by(User.role)
    ).all()
    counts = dict.fromkeys(ROLES, 0)
    counts.update({role: int(n) for role, n in rows})
    return counts


# ---- settings (admins) ------------------------------------------------------------------------

SETTING_KEYS = ("auto_approve", "district_family_count", "require_staff_2fa")


def current_settings() -> dict[str, Any]:
    """The settings shown on the settings page."""
    return {key: get_setting(key) for key in SETTING_KEYS}


def change_settings(values: dict[str, Any], by: User) -> dict[str, Any]:
    """Change the settings (admins only); audited with old and new values."""
    if by.role != "admin":
        raise NotAllowed(_("Nur Administratoren dürfen Einstellungen ändern."))
    count = values.get("district_family_count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise DomainError(
            _("Die Zahl der Familien im Kreis ist eine ganze Zahl größer als 0 (oder leer)."),
            field="district_family_count",
        )
    new = {
        "auto_approve": bool(values.get("auto_approve")),
        "district_family_count": count,
        "require_staff_2fa": bool(values.get("require_staff_2fa")),
    }
    old = current_settings()
    diff = {key: {"old": old[key], "new": value} for key, value in new.items() if old[key] != value}
    for key in diff:
        set_setting(key, new[key])
    if diff:
        record(by, "settings.update", object_type="setting", details=diff)
    return diff
