"""Redemptions: limits, idempotency, counts, ownership, undo window, audit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from kyffikus.extensions import db
from kyffikus.models import AuditEntry, Pass, Redemption
from kyffikus.models.base import utcnow
from kyffikus.services import Conflict, DomainError, NotAllowed
from kyffikus.services.redemptions import redeem_offer, undo_redemption
from tests.provider.conftest import Till


def _live(pass_: Pass) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Redemption)
        .where(Redemption.pass_id == pass_.id, Redemption.undone_at.is_(None))
    )


def test_per_day_once_a_day_and_again_tomorrow(family_pass: Pass, till: Till, today: date) -> None:
    first = redeem_offer(family_pass, till.per_day, 2, 2, till.user, "day-1-first", today)
    assert (first.limit_key, first.redeemed_on, first.adults, first.children) == (
        today.isoformat(),
        today,
        2,
        2,
    )
    with pytest.raises(Conflict) as refused:
        redeem_offer(family_pass, till.per_day, 1, 0, till.user, "day-1-second", today)
    assert refused.value.code == "limit_reached"
    assert "heute" in refused.value.message
    tomorrow = redeem_offer(
        family_pass, till.per_day, 1, 0, till.user, "day-2-first", today + timedelta(days=1)
    )
    assert tomorrow.limit_key == (today + timedelta(days=1)).isoformat()
    assert _live(family_pass) == 2


def test_per_edition_once(family_pass: Pass, till: Till, today: date) -> None:
    redeem_offer(family_pass, till.per_edition, 1, 0, till.user, "edition-first", today)
    with pytest.raises(Conflict, match="Ausgabe"):
        redeem_offer(
            family_pass,
            till.per_edition,
            1,
            0,
            till.user,
            "edition-second",
            today + timedelta(days=3),
        )
    assert _live(family_pass) == 1


def test_unlimited_any_number_of_times(family_pass: Pass, till: Till, today: date) -> None:
    for i in range(5):
        redemption = redeem_offer(
            family_pass, till.unlimited, 1, 0, till.user, f"unlimited-{i:04d}", today
        )
        assert redemption.limit_key is None
    assert _live(family_pass) == 5


def test_limits_are_per_pass(
    family_pass: Pass, pass_with_status: Callable[[str], Pass], till: Till, today: date
) -> None:
    other = pass_with_status("valid")
    redeem_offer(family_pass, till.per_day, 1, 0, till.user, "pass-one-key", today)
    redeem_offer(other, till.per_day, 1, 0, till.user, "pass-two-key", today)


def test_same_key_answers_the_same_redemption(family_pass: Pass, till: Till, today: date) -> None:
    first = redeem_offer(family_pass, till.per_day, 1, 1, till.user, "double-tap-key", today)
    again = redeem_offer(family_pass, till.per_day, 1, 1, till.user, "double-tap-key", today)
    assert again.id == first.id
    # Also for an unlimited offer, where no limit would stop a second row.
    u1 = redeem_offer(family_pass, till.unlimited, 1, 0, till.user, "retry-unlimited", today)
    u2 = redeem_offer(family_pass, till.unlimited, 1, 0, till.user, "retry-unlimited", today)
    assert u1.id == u2.id
    assert _live(family_pass) == 2


def test_key_reused_for_another_offer_is_refused(
    family_pass: Pass, till: Till, today: date
) -> None:
    redeem_offer(family_pass, till.per_day, 1, 0, till.user, "reused-key-1", today)
    with pytest.raises(Conflict) as refused:
        redeem_offer(family_pass, till.unlimited, 1, 0, till.user, "reused-key-1", today)
    assert refused.value.code == "idempotency_key_reused"


def test_keys_are_per_provider(
    family_pass: Pass, till: Till, other_till: Till, today: date
) -> None:
    a = redeem_offer(family_pass, till.unlimited, 1, 0, till.user, "shared-key-9", today)
    b = redeem_offer(
        family_pass, other_till.unlimited, 1, 0, other_till.user, "shared-key-9", today
    )
    assert a.id != b.id


@pytest.mark.parametrize(
    "key", ["short", "x" * 101, "with space key", "ünicode-key", "nul\x00key-key"]
)
def test_bad_keys_are_refused_before_writing(
    family_pass: Pass, till: Till, today: date, key: str
) -> None:
    with pytest.raises(DomainError) as refused:
        redeem_offer(family_pass, till.unlimited, 1, 0, till.user, key, today)
    assert refused.value.field == "idempotency_key"
    assert _live(family_pass) == 0


def test_only_own_offers(family_pass: Pass, till: Till, other_till: Till, today: date) -> None:
    with pytest.raises(NotAllowed):
        redeem_offer(family_pass, other_till.per_day, 1, 0, till.user, "not-mine-key", today)
    assert _live(family_pass) == 0


@pytest.mark.parametrize("kind", ["expired", "revoked", "replaced", "not_yet_valid"])
def test_only_valid_passes(
    pass_with_status: Callable[[str], Pass], till: Till, today: date, kind: str
) -> None:
    pass_ = pass_with_status(kind)
    with pytest.raises(DomainError) as refused:
        redeem_offer(pass_, till.unlimited, 1, 0, till.user, "invalid-pass-key", today)
    assert refused.value.status == 422
    assert refused.value.code == kind
    assert refused.value.message
    assert _live(pass_) == 0


@pytest.mark.parametrize(
    ("adults", "children", "field"),
    [
        (3, 0, "adults"),
        (-1, 1, "adults"),
        (0, 3, "children"),
        (1, -1, "children"),
        (0, 0, "adults"),
        (True, 0, "adults"),
        (1, "2", "children"),
        (10**20, 0, "adults"),
    ],
)
def test_counts_within_the_pass(
    family_pass: Pass, till: Till, today: date, adults: object, children: object, field: str
) -> None:
    with pytest.raises(DomainError) as refused:
        redeem_offer(family_pass, till.unlimited, adults, children, till.user, "count-key-1", today)  # type: ignore[arg-type]
    assert refused.value.field == field
    assert _live(family_pass) == 0


def test_one_adult_pass_allows_one_adult(
    pass_with_status: Callable[[str], Pass], till: Till, today: date
) -> None:
    pass_ = pass_with_status("valid")  # one adult named
    with pytest.raises(DomainError):
        redeem_offer(pass_, till.unlimited, 2, 0, till.user, "one-adult-key", today)
    redeem_offer(pass_, till.unlimited, 1, 1, till.user, "one-adult-ok", today)


def test_offer_age_range_limits_children(
    family_pass: Pass, till: Till, make_offer: Callable[..., object], today: date
) -> None:
    small = make_offer(
        till.provider, edition=till.per_day.edition, limit="unlimited", min_age=0, max_age=6
    )
    with pytest.raises(DomainError) as refused:
        redeem_offer(family_pass, small, 0, 2, till.user, "too-old-key", today)  # type: ignore[arg-type]
    assert refused.value.field == "children"
    redeem_offer(family_pass, small, 0, 1, till.user, "small-child-key", today)  # type: ignore[arg-type]


def test_redemption_is_audited(family_pass: Pass, till: Till, today: date) -> None:
    redemption = redeem_offer(family_pass, till.per_day, 1, 0, till.user, "audit-key-1", today)
    entry = db.session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == "redemption.create", AuditEntry.object_id == str(redemption.id)
        )
    ).one()
    assert entry.actor_id == till.user.id


def test_undo_within_window_frees_the_allowance(family_pass: Pass, till: Till, today: date) -> None:
    redemption = redeem_offer(family_pass, till.per_day, 1, 0, till.user, "undo-key-1", today)
    undo_redemption(redemption, till.user, utcnow() + timedelta(minutes=14))
    assert redemption.undone_at is not None
    assert redemption.undone_by_id == till.user.id
    assert redemption.limit_key is None
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "redemption.undo")
        )
        == 1
    )
    # The day's allowance is free again.
    redeem_offer(family_pass, till.per_day, 1, 0, till.user, "undo-key-2", today)
    # Undoing twice changes nothing.
    assert undo_redemption(redemption, till.user, utcnow()).undone_at is not None


def test_undo_after_window_is_refused(family_pass: Pass, till: Till, today: date) -> None:
    redemption = redeem_offer(family_pass, till.per_day, 1, 0, till.user, "late-undo-key", today)
    redemption.redeemed_at = utcnow() - timedelta(minutes=16)
    db.session.flush()
    with pytest.raises(Conflict) as refused:
        undo_redemption(redemption, till.user, utcnow())
    assert refused.value.code == "undo_window_passed"
    assert redemption.undone_at is None
    assert redemption.limit_key == today.isoformat()


def test_undo_only_own(family_pass: Pass, till: Till, other_till: Till, today: date) -> None:
    redemption = redeem_offer(family_pass, till.per_day, 1, 0, till.user, "own-undo-key", today)
    with pytest.raises(NotAllowed):
        undo_redemption(redemption, other_till.user, utcnow())
    assert redemption.undone_at is None
