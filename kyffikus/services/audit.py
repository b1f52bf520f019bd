"""The audit log: every change by staff or providers, and staff reads of personal data."""

from __future__ import annotations

from typing import Any

from kyffikus.extensions import db
from kyffikus.models.audit import AuditEntry
from kyffikus.models.people import User


def record(
    actor: User | None,
    action: str,
    obj: Any = None,
    *,
    object_type: str | None = None,
    object_id: Any = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit entry (flushed with the caller's transaction, so it commits or rolls back with it)."""
    if obj is not None:
        object_type = object_type or getattr(obj, "__tablename__", type(obj).__name__.lower())
        object_id = object_id if object_id is not None else getattr(obj, "id", None)
    entry = AuditEntry(
        actor_id=actor.id if actor is not None else None,
        actor_label=actor.email if actor is not None else "system",
        action=action,
        object_type=object_type or "-",
        object_id=str(object_id) if object_id is not None else None,
        details=details,
    )
    db.session.add(entry)
    return entry


def changes(obj: Any, new_values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Old and new values of the fields that differ, for an audit entry's details."""
    diff: dict[str, dict[str, Any]] = {}
    for field, new in new_values.items():
        old = getattr(obj, field, None)
        if old != new:
            diff[field] = {"old": _plain(old), "new": _plain(new)}
    return diff


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
