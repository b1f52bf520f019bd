"""Enumeration: guessed pass numbers and forged tokens find nothing; guessing over HTTP hits 429.

Complements tests/provider/test_check_service.py (10,000 random numbers and 10,000 random tokens,
every change of one token) and the rate-limit tests of tests/provider/ (limits lowered to 3-5):
- 10,000 numbers WITH a valid check symbol that are near misses of real ones (one data symbol
  changed, check symbol recomputed) or random;
- 20,000 forged tokens: random, truncated and extended real ones, one character changed, case
  flipped, wrapped in QR URLs, and the tokens of replaced and revoked passes;
- guessing over HTTP with the production limits ("60 per minute; 600 per hour") from one address,
  and by one provider rotating addresses: everything past the limit is refused with 429.
"""

from __future__ import annotations

import random
import secrets
import string
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from kyffikus.extensions import db
from kyffikus.models import Pass
from kyffikus.models.base import berlin_today
from kyffikus.services import apitokens, passnumber
from kyffikus.services.checks import check_pass
from tests.conftest import login_as
from tests.security.figures import record_figure

REAL_PASSES = 200
NUMBERS = 10_000
TOKENS = 20_000
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"


@pytest.fixture
def passes(
    app: Flask, localities: None, make_family: Callable[..., Any], make_pass: Callable[..., Any]
) -> list[Pass]:
    """200 valid passes, plus one replaced and one revoked."""
    today = berlin_today()
    out = [
        make_pass(
            make_family(),
            valid_from=today - timedelta(days=1),
            valid_until=today + timedelta(days=100),
        )
        for _i in range(REAL_PASSES)
    ]
    for status in ("replaced", "revoked"):
        out.append(
            make_pass(
                make_family(),
                status=status,
                valid_from=today - timedelta(days=1),
                valid_until=today + timedelta(days=100),
            )
        )
    db.session.flush()
    return out


def _near_miss_numbers(real: list[str], rng: random.Random) -> Iterator[str]:
    """Valid-check numbers one data symbol away from real ones, then random valid numbers."""
    for number in real:
        for i in range(9):
            for symbol in rng.sample(passnumber.ALPHABET, 4):
                data = number[:9][:i] + symbol + number[:9][i + 1 :]
                if data != number[:9]:
                    yield data + passnumber.check_symbol(data)
    while True:
        yield passnumber.generate()


def _forged_tokens(
    real: list[str], dead: list[str], rng: random.Random
) -> Iterator[tuple[str, str]]:
    """(kind, code) of forged and altered tokens, in rounds until the caller has enough."""
    for token in dead:
        yield "replaced or revoked pass", token
        yield "replaced or revoked pass", f"https://familienpass.example/v/{token}"
    while True:
        token = rng.choice(real)
        i = rng.randrange(len(token))
        other = rng.choice([c for c in TOKEN_ALPHABET if c != token[i]])
        yield "one character changed", token[:i] + other + token[i + 1 :]
        yield "truncated", token[: rng.randrange(8, len(token))]
        yield "extended", token + rng.choice(TOKEN_ALPHABET)
        flipped = token.swapcase()
        if flipped != token:
            yield "case flipped", flipped
        yield "random", secrets.token_urlsafe(24)
        yield "random in a QR URL", f"http://localhost/v/{secrets.token_urlsafe(24)}"
        yield (
            "changed in a QR URL",
            f"http://localhost/v/{token[:-1]}{'A' if token[-1] != 'A' else 'B'}",
        )


def test_guessed_numbers_and_forged_tokens_find_nothing(app: Flask, passes: list[Pass]) -> None:
    """10,000 valid-check numbers and 20,000 forged tokens: no valid pass, no exception."""
    rng = random.Random(20260101)  # noqa: S311 - test data, not a secret
    today = berlin_today()
    live = [p for p in passes if p.status == "active"]
    real_numbers = {p.number for p in passes}
    real_tokens = {p.token for p in passes}
    dead = [p.token for p in passes if p.status != "active"]

    found_numbers = errors = 0
    tried_numbers = 0
    for number in _near_miss_numbers([p.number for p in live], rng):
        if tried_numbers >= NUMBERS:
            break
        if number in real_numbers:
            continue  # a real number is no guess (31^9 makes this practically never happen)
        assert passnumber.is_valid(number)
        try:
            result = check_pass(number, None, today)
        except Exception:
            errors += 1
            raise
        tried_numbers += 1
        if result.status != "not_found":
            found_numbers += 1

    kinds: Counter[str] = Counter()
    valid_tokens = 0
    for kind, code in _forged_tokens([p.token for p in live], dead, rng):
        if sum(kinds.values()) >= TOKENS:
            break
        if code in real_tokens and kind != "replaced or revoked pass":
            continue
        kinds[kind] += 1
        result = check_pass(code, None, today)
        if result.status == "valid":
            valid_tokens += 1
        if kind == "replaced or revoked pass":
            assert result.status in ("replaced", "revoked"), code
        else:
            assert result.status == "not_found", (kind, code)

    record_figure(
        "enumeration-numbers",
        f"guessed pass numbers with a valid check symbol (near misses of {len(live)} real "
        "numbers, then random)",
        tried_numbers,
        found_numbers,
        errors,
        outcome=f"{found_numbers} found a pass",
        order=40,
    )
    record_figure(
        "enumeration-tokens",
        "forged or altered QR tokens (random, truncated, extended, one character changed, case "
        "flipped, in QR URLs, replaced and revoked passes)",
        sum(kinds.values()),
        valid_tokens,
        0,
        outcome=f"{valid_tokens} accepted as valid",
        order=41,
        details=dict(kinds),
    )
    assert tried_numbers == NUMBERS
    assert found_numbers == 0
    assert sum(kinds.values()) == TOKENS
    assert valid_tokens == 0


# ---- over HTTP, with the production limits -----------------------------------------------------------


def test_guessing_over_http_is_cut_off_at_the_limit(
    app: Flask, passes: list[Pass], make_user: Callable[..., Any], make_provider: Callable[..., Any]
) -> None:
    """Default limits: an address, or a provider behind many addresses, gets 60 answers a minute."""
    assert app.config["CHECK_RATE_LIMIT"] == "60 per minute;600 per hour"
    provider_user = make_user("provider", provider=make_provider())
    _token, raw = apitokens.create_token(provider_user, "Kasse")
    db.session.commit()
    attempts = 600
    statuses: dict[str, Counter[int]] = {}
    found = 0

    # 1. Anonymous QR-URL guesses from one address.
    anonymous = app.test_client()
    statuses["one address, QR URL"] = Counter()
    for _i in range(attempts):
        response = anonymous.get(
            f"/v/{secrets.token_urlsafe(24)}", environ_base={"REMOTE_ADDR": "203.0.113.7"}
        )
        statuses["one address, QR URL"][response.status_code] += 1
        found += ">GÜLTIG</h2>" in response.get_data(as_text=True)

    # 2. A provider's API token from a new address every time (the per-user limit holds).
    api = app.test_client()
    statuses["one provider, rotating addresses, API"] = Counter()
    for i in range(attempts):
        response = api.post(
            "/api/v1/checks",
            json={"code": passnumber.generate()},
            headers={"Authorization": f"Bearer {raw}"},
            environ_base={"REMOTE_ADDR": f"198.51.{i // 250}.{i % 250 + 1}"},
        )
        statuses["one provider, rotating addresses, API"][response.status_code] += 1
        if response.status_code == 200:
            found += response.get_json()["status"] != "not_found"

    # 3. The same provider on the check page (its session shares the user's budget).
    page = app.test_client()
    login_as(page, provider_user)
    statuses["same provider, check page"] = Counter()
    for i in range(10):
        response = page.get(
            f"/v/{secrets.token_urlsafe(24)}", environ_base={"REMOTE_ADDR": f"192.0.2.{i + 1}"}
        )
        statuses["same provider, check page"][response.status_code] += 1

    answered = sum(c[200] for c in statuses.values())
    refused = sum(c[429] for c in statuses.values())
    tried = sum(sum(c.values()) for c in statuses.values())
    record_figure(
        "enumeration-http",
        "guesses over HTTP with the production rate limit (one address; one provider behind "
        "rotating addresses)",
        tried,
        found,
        sum(n for c in statuses.values() for s, n in c.items() if s >= 500),
        outcome=f"{found} found; {answered} answered, {refused} refused with 429",
        order=42,
        details={k: dict(v) for k, v in statuses.items()},
    )
    assert found == 0
    # Fixed one-minute windows: a run that crosses a minute boundary may get a second 60.
    for kind in ("one address, QR URL", "one provider, rotating addresses, API"):
        assert set(statuses[kind]) <= {200, 429}, statuses[kind]
        assert 60 <= statuses[kind][200] <= 120, statuses[kind]
    assert statuses["same provider, check page"][200] <= 10
    if statuses["one provider, rotating addresses, API"][200] == 60:
        assert statuses["same provider, check page"] == Counter({429: 10})
