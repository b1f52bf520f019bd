"""Issuing and keeping passes: issue, replace, revoke, extend, expire, and the children's ages.

Every change records a PassEvent and an audit entry and flushes; the caller commits.
"""

from __future__ import annotations

import secrets
from datetime import date
from typing import TYPE_CHECKING

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from kyffikus.extensions import db
from kyffikus.models.base import berlin_today, utcnow
from kyffikus.models.catalogue import Edition
from kyffikus.models.families import Application, Household
from kyffikus.models.passes import Pass, PassEvent
from kyffikus.services import Conflict, DomainError, passnumber
from kyffikus.services.audit import record
from kyffikus.services.eligibility import age_on, is_minor

if TYPE_CHECKING:
    from collections.abc import Callable

    from kyffikus.models.people import User

# A collision of two random 10-symbol numbers is rare (31^9 ≈ 2.6e13); a few tries are plenty.
NUMBER_ATTEMPTS = 8
TOKEN_BYTES = 24  # 192 bits from `secrets`, URL-safe: 32 characters.
MAX_REASON = 2000


def new_token() -> str:
    """A fresh QR secret: 192 bits from `secrets`, URL-safe."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def pass_url(pass_: Pass) -> str:
    """What the QR code holds: <BASE_URL>/v/<token>, nothing else."""
    return f"{current_app.config['BASE_URL'].rstrip('/')}/v/{pass_.token}"


def current_edition(on: date) -> Edition | None:
    """The edition whose validity covers the day, else the latest one."""
    covering = db.session.scalars(
        select(Edition)
        .where(Edition.valid_from <= on, Edition.valid_until >= on)
        .order_by(Edition.valid_until.desc())
    ).first()
    if covering is not None:
        return covering
    return db.session.scalars(select(Edition).order_by(Edition.valid_until.desc())).first()


def validity_end(edition: Edition | None, on: date) -> date:
    """A new pass is valid until the end of the edition; without one, until 31 December."""
    if edition is not None and edition.valid_until >= on:
        return edition.valid_until
    return date(on.year, 12, 31)


def children_ages(pass_: Pass, on: date) -> list[int]:
    """Ages in years of the children who still count on the day (under 18), oldest first."""
    ages = []
    for text in pass_.children_birth_dates or []:
        born = date.fromisoformat(text)
        if is_minor(born, on):
            ages.append(age_on(born, on))
    return sorted(ages, reverse=True)


def lock_pass(pass_id: int) -> Pass | None:
    """Load a pass with a row lock (FOR UPDATE on PostgreSQL), refreshing what the session holds."""
    return db.session.scalars(
        select(Pass)
        .where(Pass.id == pass_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def _insert_with_fresh_number(
    build: Callable[[], Pass], conflict: Callable[[], str | None]
) -> Pass:
    """Insert a pass built by `build`, drawing a new number on the rare unique collision.

    The insert runs in a SAVEPOINT so a collision does not end the caller's transaction. The
    pass is built fresh for every try and must not be in the session before (begin_nested
    flushes pending objects outside the savepoint). `conflict` says whether the failure was
    not the number but a concurrent decision (a pass for the same application or pass).
    """
    for _attempt in range(NUMBER_ATTEMPTS):
        pass_ = build()
        pass_.number = passnumber.generate()
        pass_.token = new_token()
        try:
            with db.session.begin_nested():
                db.session.add(pass_)
                db.session.flush()
            return pass_
        except IntegrityError as exc:
            message = conflict()
            if message:
                raise Conflict(message) from exc
    raise DomainError(
        _("Es konnte keine freie Passnummer gefunden werden. Bitte versuchen Sie es erneut.")
    )


def issue_pass(application: Application, by: User | None, *, on: date | None = None) -> Pass:
    """Issue the pass for an approved application: number, token, holders, children, validity."""
    on = on or berlin_today()
    household: Household = application.household
    already = _("Für diesen Antrag wurde bereits ein Familienpass ausgestellt.")

    def conflict() -> str | None:
        exists = db.session.scalar(select(Pass.id).where(Pass.application_id == application.id))
        return already if exists is not None else None

    if conflict():
        raise Conflict(already)
    edition = current_edition(on)
    valid_until = validity_end(edition, on)
    by_id = by.id if by is not None else None
    holders = [{"first_name": a.first_name, "last_name": a.last_name} for a in household.adults]
    births = sorted(
        c.birth_date.isoformat() for c in household.children if is_minor(c.birth_date, on)
    )

    def build() -> Pass:
        # Foreign keys by id, not relationships: the pass must stay out of the session until added.
        pass_ = Pass(
            household_id=household.id,
            application_id=application.id,
            edition_id=edition.id if edition is not None else None,
            status="active",
            valid_from=on,
            valid_until=valid_until,
            holders=holders,
            children_birth_dates=births,
            issued_by_id=by_id,
            status_changed_at=utcnow(),
        )
        pass_.events.append(
            PassEvent(kind="issued", by_id=by_id, details={"application_id": application.id})
        )
        return pass_

    pass_ = _insert_with_fresh_number(build, conflict)
    db.session.expire(household, ["passes"])
    record(
        by,
        "pass.issue",
        pass_,
        details={"application_id": application.id, "valid_until": valid_until.isoformat()},
    )
    db.session.flush()
    return pass_


def replace_pass(old: Pass, by: User | None, *, reason: str | None = None) -> Pass:
    """Replace a lost pass: a new number and token; the old one stops working in the same transaction."""
    locked = lock_pass(old.id)
    if locked is None or locked.status != "active":
        raise Conflict(_("Nur ein gültiger Familienpass kann ersetzt werden."))
    today = berlin_today()
    now = utcnow()
    by_id = by.id if by is not None else None
    note = _clean_reason(reason)
    old_id = locked.id

    def build() -> Pass:
        new = Pass(
            household_id=locked.household_id,
            edition_id=locked.edition_id,
            replaces_id=old_id,
            status="active",
            valid_from=min(today, locked.valid_until),
            valid_until=locked.valid_until,
            holders=list(locked.holders or []),
            children_birth_dates=list(locked.children_birth_dates or []),
            issued_by_id=by_id,
            status_changed_at=now,
        )
        new.events.append(PassEvent(kind="issued", by_id=by_id, details={"replaces": old_id}))
        return new

    def conflict() -> str | None:
        exists = db.session.scalar(select(Pass.id).where(Pass.replaces_id == old_id))
        return _("Dieser Familienpass wurde bereits ersetzt.") if exists is not None else None

    # The old token stops working in this same transaction (the caller commits both together).
    locked.status = "replaced"
    locked.status_changed_at = now
    locked.status_reason = note
    db.session.flush()
    new = _insert_with_fresh_number(build, conflict)
    locked.events.append(
        PassEvent(kind="replaced", by_id=by_id, note=note, details={"new_pass_id": new.id})
    )
    if locked.household is not None:
        db.session.expire(locked.household, ["passes"])
    record(by, "pass.replace", locked, details={"new_pass_id": new.id})
    db.session.flush()
    return new


def revoke_pass(pass_: Pass, by: User | None, *, reason: str) -> Pass:
    """Revoke a pass (it no longer checks as valid); a reason is required."""
    clean = _clean_reason(reason)
    if not clean:
        raise DomainError(_("Bitte geben Sie einen Grund an."), field="reason")
    locked = lock_pass(pass_.id)
    if locked is None or locked.status not in ("active", "expired"):
        raise Conflict(_("Dieser Familienpass ist bereits gesperrt oder ersetzt."))
    old_status = locked.status
    locked.status = "revoked"
    locked.status_changed_at = utcnow()
    locked.status_reason = clean
    locked.events.append(
        PassEvent(kind="revoked", by_id=by.id if by is not None else None, note=clean)
    )
    record(
        by,
        "pass.revoke",
        locked,
        details={"status": {"old": old_status, "new": "revoked"}, "reason": clean},
    )
    db.session.flush()
    return locked


def extend_pass(pass_: Pass, by: User | None, *, until: date, note: str | None = None) -> Pass:
    """Move a pass's end date later; an expired pass that becomes valid again is reactivated."""
    locked = lock_pass(pass_.id)
    if locked is None or locked.status not in ("active", "expired"):
        raise Conflict(
            _("Ein gesperrter oder ersetzter Familienpass kann nicht verlängert werden.")
        )
    if until <= locked.valid_until:
        raise DomainError(_("Das neue Ende muss nach dem bisherigen Ende liegen."), field="until")
    old_until = locked.valid_until
    locked.valid_until = until
    details: dict[str, object] = {
        "valid_until": {"old": old_until.isoformat(), "new": until.isoformat()}
    }
    by_id = by.id if by is not None else None
    locked.events.append(
        PassEvent(kind="extended", by_id=by_id, note=_clean_reason(note), details=details)
    )
    if locked.status == "expired" and until >= berlin_today():
        locked.status = "active"
        locked.status_changed_at = utcnow()
        locked.events.append(PassEvent(kind="reactivated", by_id=by_id))
        details["status"] = {"old": "expired", "new": "active"}
    record(by, "pass.extend", locked, details=details)
    db.session.flush()
    return locked


def expire_passes(on: date | None = None) -> int:
    """Mark active passes whose validity ended before the day as expired; returns how many."""
    on = on or berlin_today()
    passes = db.session.scalars(
        select(Pass).where(Pass.status == "active", Pass.valid_until < on).with_for_update()
    ).all()
    now = utcnow()
    for pass_ in passes:
        pass_.status = "expired"
        pass_.status_changed_at = now
        pass_.events.append(
            PassEvent(kind="expired", details={"valid_until": pass_.valid_until.isoformat()})
        )
        record(None, "pass.expire", pass_, details={"valid_until": pass_.valid_until.isoformat()})
    db.session.flush()
    return len(passes)


def household_passes(household: Household) -> list[Pass]:
    """The household's passes, newest first."""
    return list(
        db.session.scalars(
            select(Pass).where(Pass.household_id == household.id).order_by(Pass.id.desc())
        )
    )


def current_pass(household: Household) -> Pass | None:
    """The household's active pass, else its newest one."""
    passes = household_passes(household)
    return next((p for p in passes if p.status == "active"), passes[0] if passes else None)


def _clean_reason(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    if len(text) > MAX_REASON:
        raise DomainError(
            _("Der Grund darf höchstens %(max)d Zeichen lang sein.", max=MAX_REASON), field="reason"
        )
    return text or None
