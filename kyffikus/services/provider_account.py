"""What a provider's own people may change: contact details and venues' accessibility notes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask_babel import gettext as _
from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models.people import User
from kyffikus.services import NotAllowed
from kyffikus.services.audit import changes, record

if TYPE_CHECKING:
    from kyffikus.models.catalogue import Provider, Venue

CONTACT_FIELDS = ("contact_name", "email", "phone", "website")


def _own(provider_id: int, by: User) -> None:
    if by.role != "provider" or by.provider_id != provider_id:
        raise NotAllowed(_("Sie können nur die Angaben Ihres eigenen Anbieters ändern."))


def _blank_to_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def update_contact(
    provider: Provider, values: dict[str, str | None], by: User
) -> dict[str, dict[str, object]]:
    """Change the provider's contact details; returns (and audits) the old and new values that differ."""
    _own(provider.id, by)
    new = {key: _blank_to_none(values.get(key)) for key in CONTACT_FIELDS}
    diff = changes(provider, new)
    if diff:
        for key, value in new.items():
            setattr(provider, key, value)
        db.session.flush()
        record(by, "provider.update", provider, details=diff)
    return diff


def update_venue_notes(venue: Venue, notes: str | None, by: User) -> dict[str, dict[str, object]]:
    """Change a venue's accessibility notes; returns (and audits) the change."""
    _own(venue.provider_id, by)
    diff = changes(venue, {"accessibility": _blank_to_none(notes)})
    if diff:
        venue.accessibility = _blank_to_none(notes)
        db.session.flush()
        record(by, "venue.update", venue, details=diff)
    return diff


def provider_users(provider_id: int) -> list[User]:
    """The provider's people, by e-mail address."""
    return list(
        db.session.scalars(select(User).where(User.provider_id == provider_id).order_by(User.email))
    )
