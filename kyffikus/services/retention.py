"""Retention (DSGVO): delete or anonymise what is past the configured periods.

- rejected applications: deleted RETENTION_REJECTED_APPLICATION_DAYS after the decision; a household
  entered at the counter (no account) that is left with nothing is deleted with them;
- passes that ended (expired, revoked, replaced): deleted RETENTION_EXPIRED_PASS_DAYS after their end,
  with their history; their redemptions stay as anonymous counts (pass_id NULL);
- redemptions older than RETENTION_REDEMPTION_DAYS: anonymised (kept only as counts per offer and day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import and_, delete, exists, func, or_, select, update

from kyffikus.extensions import db
from kyffikus.models import Application, Household, Pass, PassEvent, Redemption
from kyffikus.services.audit import record


@dataclass
class RetentionReport:
    """What a retention run deleted or anonymised (or would, in a dry run)."""

    rejected_applications: int = 0
    counter_households: int = 0
    ended_passes: int = 0
    anonymised_redemptions: int = 0
    dry_run: bool = False

    def lines(self) -> list[str]:
        """Human-readable lines for the CLI."""
        verb = "würden" if self.dry_run else "wurden"
        return [
            f"Abgelehnte Anträge: {self.rejected_applications} {verb} gelöscht",
            f"Haushalte ohne Konto und ohne Antrag/Pass: {self.counter_households} {verb} gelöscht",
            f"Beendete Pässe: {self.ended_passes} {verb} gelöscht (Einlösungen bleiben anonym)",
            f"Alte Einlösungen: {self.anonymised_redemptions} {verb} anonymisiert",
        ]


def run_retention(now: datetime, *, dry_run: bool = False) -> RetentionReport:
    """Apply the retention periods as of `now`; flushes, the caller commits (or rolls back)."""
    cfg = current_app.config
    report = RetentionReport(dry_run=dry_run)

    app_cutoff = now - timedelta(days=int(cfg["RETENTION_REJECTED_APPLICATION_DAYS"]))
    rejected = select(Application.id).where(
        Application.status == "rejected", Application.decided_at < app_cutoff
    )
    pass_cutoff: date = (now - timedelta(days=int(cfg["RETENTION_EXPIRED_PASS_DAYS"]))).date()
    ended = select(Pass.id).where(
        or_(
            and_(Pass.status == "expired", Pass.valid_until < pass_cutoff),
            and_(
                Pass.status.in_(("revoked", "replaced")),
                or_(
                    Pass.valid_until < pass_cutoff,
                    Pass.status_changed_at
                    < now - timedelta(days=int(cfg["RETENTION_EXPIRED_PASS_DAYS"])),
                ),
            ),
        )
    )
    red_cutoff = now - timedelta(days=int(cfg["RETENTION_REDEMPTION_DAYS"]))
    old_redemptions = select(Redemption.id).where(
        Redemption.redeemed_at < red_cutoff, Redemption.pass_id.is_not(None)
    )

    report.rejected_applications = _count(rejected)
    report.ended_passes = _count(ended)
    report.anonymised_redemptions = _count(old_redemptions)
    if dry_run:
        report.counter_households = _count(
            _orphan_counter_households(exclude_applications=rejected, exclude_passes=ended)
        )
        return report

    ended_ids = list(db.session.scalars(ended))
    if ended_ids:
        # Newer passes that replaced these keep existing; only the link to the deleted one goes.
        db.session.execute(
            update(Pass).where(Pass.replaces_id.in_(ended_ids)).values(replaces_id=None)
        )
        db.session.execute(
            update(Redemption)
            .where(Redemption.pass_id.in_(ended_ids))
            .values(pass_id=None, idempotency_key=None, by_id=None, undone_by_id=None)
        )
        db.session.execute(delete(PassEvent).where(PassEvent.pass_id.in_(ended_ids)))
        db.session.execute(delete(Pass).where(Pass.id.in_(ended_ids)))
    db.session.execute(
        update(Redemption)
        .where(Redemption.id.in_(old_redemptions.scalar_subquery()))
        .values(pass_id=None, idempotency_key=None, by_id=None, undone_by_id=None)
    )
    rejected_ids = list(db.session.scalars(rejected))
    if rejected_ids:
        db.session.execute(
            update(Pass).where(Pass.application_id.in_(rejected_ids)).values(application_id=None)
        )
        db.session.execute(delete(Application).where(Application.id.in_(rejected_ids)))
    orphans = list(db.session.scalars(_orphan_counter_households()))
    report.counter_households = len(orphans)
    for household in db.session.scalars(select(Household).where(Household.id.in_(orphans))):
        db.session.delete(household)
    db.session.flush()
    record(
        None,
        "retention.run",
        object_type="retention",
        details={
            "rejected_applications": report.rejected_applications,
            "counter_households": report.counter_households,
            "ended_passes": report.ended_passes,
            "anonymised_redemptions": report.anonymised_redemptions,
        },
    )
    db.session.flush()
    return report


def _count(query: select) -> int:  # type: ignore[valid-type]
    return int(db.session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def _orphan_counter_households(exclude_applications=None, exclude_passes=None):  # type: ignore[no-untyped-def]
    """Households without an account that have no application and no pass (left)."""
    app_cond = Application.household_id == Household.id
    if exclude_applications is not None:
        app_cond = and_(app_cond, Application.id.not_in(exclude_applications.scalar_subquery()))
    pass_cond = Pass.household_id == Household.id
    if exclude_passes is not None:
        pass_cond = and_(pass_cond, Pass.id.not_in(exclude_passes.scalar_subquery()))
    return select(Household.id).where(
        Household.user_id.is_(None),
        ~exists().where(app_cond),
        ~exists().where(pass_cond),
    )
