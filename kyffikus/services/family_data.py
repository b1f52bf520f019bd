"""Data rights of a family (DSGVO Art. 15, 17, 20): download everything, delete the account.

Deleting revokes the pass and removes the household, its adults, children and applications and
the user. Redemptions stay, detached from the pass (pass_id NULL), as anonymous counts for the
statistics. The pass row itself stays as an empty shell (status "revoked", no names, no birth
dates, no household), so a printed card scanned later answers "revoked" instead of "unknown".
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select, update

from kyffikus.extensions import db
from kyffikus.models.audit import AuditEntry
from kyffikus.models.base import utcnow
from kyffikus.models.families import Household
from kyffikus.models.passes import Pass, PassEvent, Redemption
from kyffikus.models.people import User
from kyffikus.services import DomainError, NotAllowed
from kyffikus.services.audit import record
from kyffikus.services.passwords import verify_password

EXPORT_FORMAT = "kyffikus-family-export/1"
DELETED_LABEL = "deleted-family-account"


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _passes(household: Household | None) -> list[Pass]:
    if household is None:
        return []
    return list(
        db.session.scalars(select(Pass).where(Pass.household_id == household.id).order_by(Pass.id))
    )


def export_family_data(user: User) -> dict[str, Any]:
    """Everything stored about a family user, as plain JSON-ready data."""
    if user.role != "family":
        raise NotAllowed(_("Nur Familienkonten haben diese Datenauskunft."))
    household = db.session.scalars(select(Household).where(Household.user_id == user.id)).first()
    passes = _passes(household)
    pass_ids = [p.id for p in passes]
    redemptions = (
        list(
            db.session.scalars(
                select(Redemption)
                .where(Redemption.pass_id.in_(pass_ids))
                .order_by(Redemption.redeemed_at)
            )
        )
        if pass_ids
        else []
    )
    data: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "exported_at": utcnow().isoformat(),
        "account": {
            "email": user.email,
            "role": user.role,
            "created_at": _iso(user.created_at),
            "email_confirmed_at": _iso(user.email_confirmed_at),
            "last_login_at": _iso(user.last_login_at),
            "locale": user.locale,
        },
        "household": None,
        "applications": [],
        "passes": [],
        "redemptions": [],
    }
    if household is not None:
        data["household"] = {
            "street": household.street,
            "postal_code": household.postal_code,
            "locality": household.locality.name if household.locality else None,
            "phone": household.phone,
            "consent_at": _iso(household.consent_at),
            "created_at": _iso(household.created_at),
            "updated_at": _iso(household.updated_at),
            "adults": [
                {"position": a.position, "first_name": a.first_name, "last_name": a.last_name}
                for a in household.adults
            ],
            "children": [
                {"first_name": c.first_name, "birth_date": _iso(c.birth_date)}
                for c in household.children
            ],
        }
        data["applications"] = [
            {
                "id": a.id,
                "status": a.status,
                "channel": a.channel,
                "created_at": _iso(a.created_at),
                "submitted_at": _iso(a.submitted_at),
                "decided_at": _iso(a.decided_at),
                "rejection_reason": a.rejection_reason,
                "eligible": a.eligible,
                "eligibility": a.eligibility,
                "snapshot": a.snapshot,
                "consent_at": _iso(a.consent_at),
            }
            for a in household.applications
        ]
    data["passes"] = [
        {
            "number": p.grouped_number,
            "status": p.status,
            "valid_from": _iso(p.valid_from),
            "valid_until": _iso(p.valid_until),
            "holders": p.holders,
            "children_birth_dates": p.children_birth_dates,
            "issued_at": _iso(p.issued_at),
            "status_changed_at": _iso(p.status_changed_at),
            "status_reason": p.status_reason,
            "edition": p.edition.name if p.edition else None,
            "events": [{"kind": e.kind, "at": _iso(e.at), "note": e.note} for e in p.events],
        }
        for p in passes
    ]
    numbers = {p.id: p.grouped_number for p in passes}
    data["redemptions"] = [
        {
            "pass_number": numbers.get(r.pass_id or 0),
            "redeemed_at": _iso(r.redeemed_at),
            "redeemed_on": _iso(r.redeemed_on),
            "provider": r.provider.name,
            "offer": r.offer.title,
            "venue": r.venue.name if r.venue else None,
            "adults": r.adults,
            "children": r.children,
            "undone_at": _iso(r.undone_at),
        }
        for r in redemptions
    ]
    return data


def delete_family_account(user: User, password: str) -> dict[str, int]:
    """Delete a family's account after checking its password; returns what was done (counts only)."""
    if user.role != "family":
        raise NotAllowed(_("Nur Familienkonten können hier gelöscht werden."))
    if not verify_password(user.password_hash, password or ""):
        raise DomainError(
            _("Das Passwort ist nicht richtig."), field="password", code="wrong_password"
        )
    household = db.session.scalars(select(Household).where(Household.user_id == user.id)).first()
    passes = _passes(household)
    now = utcnow()
    revoked = 0
    redemptions = 0
    for pass_ in passes:
        if pass_.status in ("active", "expired"):
            pass_.status = "revoked"
            pass_.status_changed_at = now
            pass_.events.append(PassEvent(kind="revoked", note="account deleted"))
            revoked += 1
        # What identified the family goes; the number and dates stay so a scan says "revoked".
        pass_.status_reason = "account deleted"
        pass_.holders = []
        pass_.children_birth_dates = []
        pass_.household_id = None
        pass_.application_id = None
        pass_.issued_by_id = None
        redemptions += (
            db.session.scalar(
                select(func.count()).select_from(Redemption).where(Redemption.pass_id == pass_.id)
            )
            or 0
        )
        db.session.execute(
            update(Redemption).where(Redemption.pass_id == pass_.id).values(pass_id=None)
        )
    db.session.flush()
    if household is not None:
        db.session.delete(household)  # adults, children and applications go with it (cascade)
    # Earlier audit entries keep what happened but no longer name the e-mail address.
    db.session.execute(
        update(AuditEntry)
        .where(AuditEntry.actor_id == user.id)
        .values(actor_id=None, actor_label=DELETED_LABEL)
    )
    user_id = user.id
    db.session.delete(user)
    db.session.flush()
    summary = {
        "passes_revoked": revoked,
        "passes": len(passes),
        "redemptions_anonymised": redemptions,
    }
    entry = record(
        None, "account.delete", object_type="user_account", object_id=user_id, details=summary
    )
    entry.actor_label = DELETED_LABEL
    db.session.flush()
    return summary
