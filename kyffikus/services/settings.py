"""Settings staff can change, stored in the database with defaults here."""

from __future__ import annotations

from typing import Any

from kyffikus.extensions import db
from kyffikus.models.audit import Setting

DEFAULTS: dict[str, Any] = {
    # Approve eligible applications automatically (off by default: staff review each one).
    "auto_approve": False,
    # Number of families with children in the district, for "share reached" (None: not shown).
    "district_family_count": None,
    # Require two-factor sign-in for staff and admins (production turns it on by config).
    "require_staff_2fa": False,
}


def get_setting(key: str) -> Any:
    """A setting's value, or its default."""
    row = db.session.get(Setting, key)
    return row.value if row is not None else DEFAULTS.get(key)


def set_setting(key: str, value: Any) -> None:
    """Change a setting (flushes)."""
    if key not in DEFAULTS:
        raise KeyError(key)
    row = db.session.get(Setting, key)
    if row is None:
        db.session.add(Setting(key=key, value=value))
    else:
        row.value = value
    db.session.flush()
