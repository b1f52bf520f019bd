"""Retention: what is past the configured periods is deleted or anonymised; a dry run changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from kyffikus.extensions import db
from kyffikus.models import Application, Household, Pass, Redemption
from kyffikus.services.retention import run_retention

NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _redeem(pass_, offer, when: datetime) -> Redemption:
    r = Redemption(
        pass_=pass_,
        offer=offer,
        provider=offer.provider,
        adults=1,
        children=1,
        redeemed_at=when,
        redeemed_on=when.date(),
        limit_key=None,
    )
    db.session.add(r)
    db.session.flush()
    return r


def _data(make_family, make_pass, make_provider, make_offer):
    old_reject = make_family(with_user=False)
    db.session.add(
        Application(
            household=old_reject,
            status="rejected",
            rejection_reason="x",
            decided_at=NOW - timedelta(days=200),
        )
    )
    recent_reject = make_family()
    db.session.add(
        Application(
            household=recent_reject,
            status="rejected",
            rejection_reason="x",
            decided_at=NOW - timedelta(days=10),
        )
    )
    long_expired = make_pass(
        make_family(), status="expired", valid_from=date(2024, 1, 1), valid_until=date(2025, 12, 31)
    )
    recently_expired = make_pass(
        make_family(), status="expired", valid_from=date(2025, 1, 1), valid_until=date(2026, 12, 31)
    )
    active = make_pass(make_family())
    offer = make_offer(make_provider(), limit="unlimited")
    _redeem(long_expired, offer, NOW - timedelta(days=600))
    _redeem(active, offer, NOW - timedelta(days=800))
    fresh = _redeem(active, offer, NOW - timedelta(days=5))
    db.session.flush()
    return old_reject, recent_reject, long_expired, recently_expired, active, fresh


def test_dry_run_counts_and_changes_nothing(
    localities, make_family, make_pass, make_provider, make_offer
):
    _data(make_family, make_pass, make_provider, make_offer)
    before = (_count(Application), _count(Pass), _count(Redemption, Redemption.pass_id.is_(None)))
    report = run_retention(NOW, dry_run=True)
    assert report.rejected_applications == 1
    assert report.ended_passes == 1
    assert report.anonymised_redemptions == 1  # the 800-day-old one; the other goes with its pass
    assert report.counter_households == 1
    after = (_count(Application), _count(Pass), _count(Redemption, Redemption.pass_id.is_(None)))
    assert before == after


def test_run_deletes_and_anonymises(localities, make_family, make_pass, make_provider, make_offer):
    old_reject, recent_reject, long_expired, recently_expired, active, fresh = _data(
        make_family, make_pass, make_provider, make_offer
    )
    old_reject_id, long_expired_id = old_reject.id, long_expired.id
    report = run_retention(NOW)
    assert report.rejected_applications == 1
    assert report.counter_households == 1
    db.session.expire_all()
    assert db.session.get(Household, old_reject_id) is None
    assert _count(Application, Application.household_id == recent_reject.id) == 1
    assert db.session.get(Pass, long_expired_id) is None
    assert db.session.get(Pass, recently_expired.id) is not None
    # All three redemptions still count; two are anonymous now, the fresh one keeps its pass.
    assert _count(Redemption) == 3
    assert _count(Redemption, Redemption.pass_id.is_(None)) == 2
    assert db.session.get(Redemption, fresh.id).pass_id == active.id


def test_cli_dry_run(runner, localities, make_family, make_pass, make_provider, make_offer):
    _data(make_family, make_pass, make_provider, make_offer)
    result = runner.invoke(args=["retention", "run", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "würden gelöscht" in result.output
