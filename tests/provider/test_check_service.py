"""The check service: statuses, what a provider sees, the check symbol, guessing, query count."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from kyffikus.models import Pass
from kyffikus.services import passnumber
from kyffikus.services.checks import check_pass, parse_code
from kyffikus.services.redemptions import redeem_offer
from tests.provider.conftest import Till, count_queries


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("valid", "valid"),
        ("expired", "expired"),
        ("revoked", "revoked"),
        ("replaced", "replaced"),
        ("not_yet_valid", "not_yet_valid"),
    ],
)
@pytest.mark.parametrize("by", ["token", "number", "url", "grouped"])
def test_every_status_by_token_and_number(
    pass_with_status: Callable[[str], Pass],
    till: Till,
    today: date,
    kind: str,
    status: str,
    by: str,
) -> None:
    pass_ = pass_with_status(kind)
    code = {
        "token": pass_.token,
        "number": pass_.number.lower(),
        "url": f"https://kyffikus.example/v/{pass_.token}",
        "grouped": pass_.grouped_number,
    }[by]
    result = check_pass(code, till.provider, today)
    assert result.status == status
    assert result.is_valid is (status == "valid")
    if status != "valid":
        # Nothing about the family for a pass that may not be used.
        assert result.holders == []
        assert result.children_ages == []
        assert result.offers == []
        assert result.since is not None


def test_expired_since_the_day_after_validity(
    pass_with_status: Callable[[str], Pass], today: date
) -> None:
    pass_ = pass_with_status("expired")
    result = check_pass(pass_.token, None, today)
    assert result.status == "expired"
    assert result.since == pass_.valid_until + timedelta(days=1)


def test_an_active_pass_past_its_end_is_expired(family_pass: Pass, today: date) -> None:
    result = check_pass(family_pass.token, None, family_pass.valid_until + timedelta(days=1))
    assert (result.status, result.since) == ("expired", family_pass.valid_until + timedelta(days=1))


def test_valid_pass_shows_names_ages_validity_and_own_offers_only(
    family_pass: Pass, till: Till, other_till: Till, today: date
) -> None:
    result = check_pass(family_pass.token, till.provider, today)
    assert result.status == "valid"
    assert result.holders == ["Anna Muster", "Bernd Muster"]
    # The 19-year-old no longer counts; the others' ages in years, oldest first.
    assert result.children_ages == [
        10 if (today.month, today.day) >= (3, 1) else 9,
        5 if (today.month, today.day) >= (1, 15) else 4,
    ]
    assert result.children_count == 2
    assert (result.valid_from, result.valid_until) == (
        family_pass.valid_from,
        family_pass.valid_until,
    )
    assert result.number_hint == f"…-{family_pass.number[-2:]}"
    offer_ids = {o.offer_id for o in result.offers}
    assert offer_ids == {o.id for o in till.offers.values()}
    assert not offer_ids & {o.id for o in other_till.offers.values()}
    assert all(o.available and o.count == 0 for o in result.offers)


def test_result_holds_no_address_child_name_or_birth_date(
    family_pass: Pass, till: Till, today: date
) -> None:
    result = check_pass(family_pass.token, till.provider, today)
    text = repr(result.to_dict())
    household = family_pass.household
    assert household is not None
    for secret in [
        household.street,
        household.postal_code,
        *(c.first_name for c in household.children),
        *family_pass.children_birth_dates,
        family_pass.token,
        family_pass.number,
    ]:
        assert secret not in text


def test_anonymous_check_learns_only_validity(family_pass: Pass, today: date) -> None:
    result = check_pass(family_pass.token, None, today)
    assert result.is_valid
    assert result.holders == []
    assert result.offers == []
    assert result.children_ages == []
    assert result.public_dict() == {
        "valid": True,
        "valid_until": family_pass.valid_until.isoformat(),
    }


def test_allowance_reflects_redemptions(
    family_pass: Pass, till: Till, other_till: Till, today: date
) -> None:
    redeem_offer(family_pass, till.per_day, 1, 1, till.user, "key-per-day-1", today)
    redeem_offer(family_pass, till.per_edition, 2, 0, till.user, "key-per-edition-1", today)
    redeem_offer(family_pass, till.unlimited, 1, 0, till.user, "key-unlimited-1", today)
    redeem_offer(family_pass, till.unlimited, 1, 0, till.user, "key-unlimited-2", today)
    # Another provider's redemption changes nothing in A's view.
    redeem_offer(family_pass, other_till.per_day, 1, 0, other_till.user, "key-other-1", today)
    offers = {o.offer_id: o for o in check_pass(family_pass.token, till.provider, today).offers}
    assert not offers[till.per_day.id].available
    assert offers[till.per_day.id].last_used_at is not None
    assert not offers[till.per_edition.id].available
    assert offers[till.unlimited.id].available
    assert offers[till.unlimited.id].total == 2
    # Tomorrow the daily offer is free again; the edition's is not.
    tomorrow = {
        o.offer_id: o
        for o in check_pass(family_pass.token, till.provider, today + timedelta(days=1)).offers
    }
    assert tomorrow[till.per_day.id].available
    assert not tomorrow[till.per_edition.id].available


def test_unpublished_and_other_edition_offers_are_not_listed(
    family_pass: Pass,
    till: Till,
    make_offer: Callable[..., Any],
    make_edition: Callable[..., Any],
    today: date,
) -> None:
    hidden = make_offer(till.provider, edition=till.per_day.edition, published=False)
    old = make_offer(
        till.provider,
        edition=make_edition(valid_from=date(2020, 1, 1), valid_until=date(2021, 12, 31)),
    )
    ids = {o.offer_id for o in check_pass(family_pass.token, till.provider, today).offers}
    assert hidden.id not in ids
    assert old.id not in ids


def test_check_takes_one_query_whatever_the_data_size(
    family_pass: Pass, till: Till, make_offer: Callable[..., Any], today: date
) -> None:
    with count_queries() as few:
        check_pass(family_pass.token, till.provider, today)
    for i in range(15):
        offer = make_offer(till.provider, edition=till.per_day.edition, limit="unlimited")
        for j in range(3):
            redeem_offer(family_pass, offer, 1, 0, till.user, f"bulk-{i}-{j}-key", today)
    with count_queries() as many:
        result = check_pass(family_pass.token, till.provider, today)
    assert len(result.offers) == 18
    print(
        f"\ncheck queries: {len(few)} with 3 offers, {len(many)} with 18 offers and 45 redemptions"
    )
    assert len(few) == len(many) == 1
    with count_queries() as by_number:
        check_pass(family_pass.grouped_number, till.provider, today)
    assert len(by_number) == 1
    with count_queries() as anonymous:
        check_pass(family_pass.token, None, today)
    assert len(anonymous) == 1


def test_typos_cost_no_query(family_pass: Pass, till: Till, today: date) -> None:
    wrong = family_pass.number[:-1] + ("0" if family_pass.number[-1] != "0" else "1")
    with count_queries() as statements:
        result = check_pass(wrong, till.provider, today)
    assert (result.status, result.reason) == ("not_found", "typo")
    assert statements == []


def _single_substitutions(number: str) -> Iterator[str]:
    for i, original in enumerate(number):
        for symbol in passnumber.ALPHABET:
            if symbol != original:
                yield number[:i] + symbol + number[i + 1 :]


def _neighbour_swaps(number: str) -> Iterator[str]:
    for i in range(len(number) - 1):
        if number[i] != number[i + 1]:
            yield number[:i] + number[i + 1] + number[i] + number[i + 2 :]


def test_check_symbol_catches_every_single_typo_and_swap_of_one_number(
    family_pass: Pass, till: Till, today: date
) -> None:
    number = family_pass.number
    substitutions = list(_single_substitutions(number))
    swaps = list(_neighbour_swaps(number))
    assert len(substitutions) == 10 * 30
    for typed in substitutions + swaps:
        assert parse_code(typed).kind == "typo", typed
        assert parse_code(passnumber.format_number(typed)).kind == "typo", typed
    with count_queries() as statements:
        for typed in substitutions + swaps:
            assert check_pass(typed, till.provider, today).reason == "typo"
    assert statements == []
    print(f"\ntypos tried: {len(substitutions)} substitutions, {len(swaps)} swaps; accepted: 0")


@pytest.mark.parametrize(
    "code",
    [
        "",
        "   ",
        "x",
        "a" * 5000,
        "abc\x00def",
        "\x00" * 32,
        "ü" * 32,
        "😀" * 20,
        "https://kyffikus.example/v/",
        "https://kyffikus.example/v/short",
        "https://kyffikus.example/v/" + "ä" * 32,
        "../../etc/passwd",
        "'; DROP TABLE pass; --",
        "%00%00",
        "7KQ3-M9XA",
    ],
)
def test_garbage_finds_nothing(family_pass: Pass, till: Till, today: date, code: str) -> None:
    result = check_pass(code, till.provider, today)
    assert result.status == "not_found"
    assert result.pass_ is None


def test_changed_truncated_and_replaced_tokens_are_never_valid(
    family_pass: Pass, pass_with_status: Callable[[str], Pass], till: Till, today: date
) -> None:
    token = family_pass.token
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    tried = 0
    for i, char in enumerate(token):
        changed = token[:i] + alphabet[(alphabet.index(char) + 7) % len(alphabet)] + token[i + 1 :]
        assert check_pass(changed, till.provider, today).status == "not_found"
        tried += 1
    for length in range(len(token)):
        assert check_pass(token[:length], till.provider, today).status == "not_found"
        tried += 1
    for swapped_case in (token.upper(), token.lower()):
        if swapped_case != token:
            assert check_pass(swapped_case, till.provider, today).status == "not_found"
    replaced = pass_with_status("replaced")
    assert check_pass(replaced.token, till.provider, today).status == "replaced"
    print(f"\nchanged/truncated tokens tried: {tried}; valid: 0")


def test_ten_thousand_random_numbers_and_tokens_find_nothing(
    make_family: Callable[..., Any], make_pass: Callable[..., Pass], till: Till, today: date
) -> None:
    for _i in range(50):
        make_pass(
            make_family(),
            valid_from=today - timedelta(days=1),
            valid_until=today + timedelta(days=100),
        )
    found = 0
    for _i in range(10_000):
        if check_pass(passnumber.generate(), till.provider, today).status != "not_found":
            found += 1
    for _i in range(10_000):
        if check_pass(secrets.token_urlsafe(24), till.provider, today).status != "not_found":
            found += 1
    print(f"\nrandom guesses against 50 passes: 10000 numbers + 10000 tokens tried, found: {found}")
    assert found == 0


@pytest.mark.parametrize("language", ["de", "en"])
def test_redemption_times_read_as_babel_writes_them(app: Any, language: str) -> None:
    """The result's "redeemed on …" time, put together from remembered parts, is Babel's own."""
    from datetime import UTC, datetime

    from babel.dates import format_datetime

    from kyffikus.models.base import BERLIN
    from kyffikus.services.checks import format_short_moment

    # Every 37 minutes around both daylight-saving changes of 2026, and the last second of a year.
    moments = [
        datetime(2026, 3, 28, 20, 0, tzinfo=UTC) + timedelta(minutes=37 * i) for i in range(60)
    ] + [datetime(2026, 10, 24, 20, 0, tzinfo=UTC) + timedelta(minutes=37 * i) for i in range(60)]
    moments += [
        datetime(2026, 12, 31, 22, 59, 59, tzinfo=UTC),
        datetime(2026, 6, 1, 10, 0, tzinfo=UTC),
    ]
    with app.test_request_context("/", headers={"Accept-Language": language}):
        for moment in moments:
            expected = format_datetime(moment, "short", tzinfo=BERLIN, locale=language)
            assert format_short_moment(moment) == expected
