"""The check, the directory and the pass page send a fixed number of queries, whatever the data size.

Each test builds a small and a large case side by side (1 against 20 offers, redemptions or
children) and counts the statements the app sends for the same request: the counts must be equal,
so an N+1 (a query per offer, per redemption, per child) cannot come back unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from kyffikus.extensions import db
from kyffikus.models import Redemption, berlin_today
from tests.conftest import login_as

SMALL, LARGE = 1, 20
# The API check is two queries (the token with its user; the pass with this provider's offers and
# allowances); more means a regression.
MAX_CHECK_QUERIES = 2


@contextmanager
def counted() -> Iterator[list[str]]:
    """The statements the app sends inside the block (the test's own savepoints left out).

    The test shares one session with the app; emptying it first makes every request start from
    nothing, as each request does in production.
    """
    db.session.expunge_all()
    seen: list[str] = []

    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "SAVEPOINT" not in statement:
            seen.append(" ".join(statement.split())[:160])

    event.listen(db.engine, "before_cursor_execute", _record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", _record)


def _same_count(small: list[str], large: list[str]) -> None:
    assert len(small) == len(large), (
        f"{len(small)} queries for the small case, {len(large)} for the large one:\n"
        + "\n".join(large)
        + "\n-- small:\n"
        + "\n".join(small)
    )


@dataclass
class CheckCase:
    """A provider with offers, a pass with redemptions there, an API token and a logged-in client."""

    token: str
    code: str
    page: FlaskClient


@pytest.fixture
def check_case(
    app: Flask,
    localities: None,
    make_edition: Callable[..., Any],
    make_provider: Callable[..., Any],
    make_user: Callable[..., Any],
    make_offer: Callable[..., Any],
    make_family: Callable[..., Any],
    make_pass: Callable[..., Any],
) -> Callable[[int], CheckCase]:
    """check_case(n): n offers (of every limit) and n redemptions of the pass at this provider."""
    from kyffikus.services.apitokens import create_token

    today = berlin_today()
    edition = make_edition(
        valid_from=today - timedelta(days=300), valid_until=today + timedelta(days=300)
    )

    def _make(n: int) -> CheckCase:
        provider = make_provider()
        user = make_user("provider", provider=provider)
        limits = ("unlimited", "per_day", "per_edition")
        offers = [make_offer(provider, edition=edition, limit=limits[i % 3]) for i in range(n)]
        household = make_family(children=[date(2015, 3, 1)] * min(n, 5))
        pass_ = make_pass(household, valid_from=edition.valid_from, valid_until=edition.valid_until)
        for i in range(n):
            offer = offers[i % len(offers)]
            day = today - timedelta(days=i)
            key = {"per_day": day.isoformat(), "per_edition": "edition"}.get(offer.redemption_limit)
            if offer.redemption_limit == "per_edition" and i >= len(offers):
                key = None  # at most one per edition; further ones count as unlimited history
            db.session.add(
                Redemption(
                    pass_=pass_,
                    offer=offer,
                    provider=provider,
                    adults=1,
                    children=1,
                    redeemed_on=day,
                    limit_key=key,
                )
            )
        db.session.flush()
        _token, raw = create_token(user, "Kasse")
        page = login_as(app.test_client(), user)
        return CheckCase(raw, f"http://localhost/v/{pass_.token}", page)

    return _make


def _api_check(client: FlaskClient, case: CheckCase) -> list[str]:
    headers = {"Authorization": f"Bearer {case.token}"}
    # The first use of a token writes last_used_at (at most once a minute): count a repeat.
    assert (
        client.post("/api/v1/checks", json={"code": case.code}, headers=headers).status_code == 200
    )
    with counted() as seen:
        response = client.post("/api/v1/checks", json={"code": case.code}, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["status"] == "valid"
    return seen


def test_check_api_query_count_does_not_grow(
    client: FlaskClient, check_case: Callable[[int], CheckCase]
) -> None:
    small = _api_check(client, check_case(SMALL))
    large_case = check_case(LARGE)
    large = _api_check(client, large_case)
    _same_count(small, large)
    assert len(large) <= MAX_CHECK_QUERIES, "\n".join(large)
    body = client.post(
        "/api/v1/checks",
        json={"code": large_case.code},
        headers={"Authorization": f"Bearer {large_case.token}"},
    ).get_json()
    assert len(body["offers"]) == LARGE


def test_check_page_query_count_does_not_grow(check_case: Callable[[int], CheckCase]) -> None:
    counts = []
    for n in (SMALL, LARGE):
        case = check_case(n)
        path = case.code.removeprefix("http://localhost")
        assert case.page.get(path).status_code == 200
        with counted() as seen:
            response = case.page.get(path)
        assert response.status_code == 200
        counts.append(seen)
    _same_count(*counts)


def test_directory_query_count_does_not_grow(
    client: FlaskClient,
    make_edition: Callable[..., Any],
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
) -> None:
    today = berlin_today()
    edition = make_edition(
        valid_from=today - timedelta(days=100), valid_until=today + timedelta(days=300)
    )
    for word, n in (("Kletterwald", SMALL), ("Minigolf", LARGE)):
        for i in range(n):
            provider = make_provider(name=f"{word} Anbieter {i}")
            make_offer(
                provider,
                edition=edition,
                title=f"{word} für Familien {i}",
                description="Ermäßigter Eintritt für die ganze Familie.",
            )
    counts = []
    for word in ("Kletterwald", "Minigolf"):
        params = {"q": f"{word} Familien", "sort": "name"}
        assert client.get("/angebote", query_string=params).status_code == 200
        with counted() as seen:
            response = client.get("/angebote", query_string=params)
        assert response.status_code == 200
        assert word in response.get_data(as_text=True)
        counts.append(seen)
    _same_count(*counts)


def test_pass_page_and_qr_query_counts_do_not_grow(
    app: Flask,
    localities: None,
    make_family: Callable[..., Any],
    make_pass: Callable[..., Any],
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
) -> None:
    today = berlin_today()
    provider = make_provider()
    offer = make_offer(provider, limit="unlimited")
    pages, qrs = [], []
    for n in (SMALL, LARGE):
        household = make_family(
            adults=[("Anna", "Muster"), ("Ben", "Muster")][: 1 + (n > 1)],
            children=[date(2012, 1, 1) + timedelta(days=200 * i) for i in range(min(n, 6))],
        )
        pass_ = make_pass(
            household,
            valid_from=today - timedelta(days=30),
            valid_until=today + timedelta(days=300),
        )
        for i in range(n):
            db.session.add(
                Redemption(
                    pass_=pass_,
                    offer=offer,
                    provider=provider,
                    adults=1,
                    children=1,
                    redeemed_on=today - timedelta(days=i),
                    limit_key=None,
                )
            )
        db.session.flush()
        client = login_as(app.test_client(), household.user)
        assert client.get("/familie/pass").status_code == 200
        with counted() as seen:
            response = client.get("/familie/pass")
        assert response.status_code == 200
        pages.append(seen)
        qr_url = f"/familie/pass/{pass_.id}/qr.png"
        etag = client.get(qr_url).headers["ETag"]
        with counted() as seen:
            response = client.get(qr_url, headers={"If-None-Match": etag})
        assert response.status_code == 304
        qrs.append(seen)
    _same_count(*pages)
    _same_count(*qrs)
