"""The check, the directory and the pass page send a fixed number of queries, whatever the data size.

Each test builds a small and a large case side by side (1 against 20 offers, redemptions or
children) and counts the statements the app sends for the same request: the counts must be equal,
so an N+1 (a query per offer, per redemption, per child) cannot come back unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kyffikus.extensions import db
from kyffikus.models import Edition, Redemption, berlin_today
from tests.conftest import login_as
from tests.perf.conftest import sent_statements

SMALL, LARGE = 1, 20
# The API check is one query (the token with its user, and the pass with the token's provider's
# offers and allowances); more means a regression.
MAX_CHECK_QUERIES = 1


def _same_count(small: list[str], large: list[str]) -> None:
    assert len(small) == len(large), (
        f"{len(small)} queries for the small case, {len(large)} for the large one:\n"
        + "\n".join(large)
        + "\n-- small:\n"
        + "\n".join(small)
    )


@dataclass
class Case:
    """A provider with offers, a family's pass with redemptions there, and who asks about them."""

    token: str  # the provider's API token
    code: str  # the pass's QR URL
    page: FlaskClient  # the provider, logged in
    family: FlaskClient  # the pass's family, logged in
    qr_url: str  # the family's QR image


@pytest.fixture
def case(
    app: Flask,
    localities: None,
    current_edition: Edition,
    make_provider: Callable[..., Any],
    make_user: Callable[..., Any],
    make_offer: Callable[..., Any],
    make_family: Callable[..., Any],
    make_pass: Callable[..., Any],
) -> Callable[[int], Case]:
    """case(n): n offers (of every limit), n redemptions of the pass there, up to 5 children."""
    from kyffikus.services.apitokens import create_token

    today = berlin_today()
    edition = current_edition

    def _make(n: int) -> Case:
        provider = make_provider()
        user = make_user("provider", provider=provider)
        limits = ("unlimited", "per_day", "per_edition")
        offers = [make_offer(provider, edition=edition, limit=limits[i % 3]) for i in range(n)]
        household = make_family(
            adults=[("Anna", "Muster"), ("Ben", "Muster")][: 1 + (n > 1)],
            children=[date(2015, 3, 1) + timedelta(days=200 * i) for i in range(min(n, 5))],
        )
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
        return Case(
            raw,
            f"http://localhost/v/{pass_.token}",
            login_as(app.test_client(), user),
            login_as(app.test_client(), household.user),
            f"/familie/pass/{pass_.id}/qr.png",
        )

    return _make


def _api_check(client: FlaskClient, case: Case) -> list[str]:
    headers = {"Authorization": f"Bearer {case.token}"}
    # The first use of a token writes last_used_at (at most once a minute): count a repeat.
    assert (
        client.post("/api/v1/checks", json={"code": case.code}, headers=headers).status_code == 200
    )
    with sent_statements() as seen:
        response = client.post("/api/v1/checks", json={"code": case.code}, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["status"] == "valid"
    return seen


def test_check_api_query_count_does_not_grow(
    client: FlaskClient, case: Callable[[int], Case]
) -> None:
    small = _api_check(client, case(SMALL))
    large_case = case(LARGE)
    large = _api_check(client, large_case)
    _same_count(small, large)
    assert len(large) <= MAX_CHECK_QUERIES, "\n".join(large)
    body = client.post(
        "/api/v1/checks",
        json={"code": large_case.code},
        headers={"Authorization": f"Bearer {large_case.token}"},
    ).get_json()
    assert len(body["offers"]) == LARGE


def test_check_page_query_count_does_not_grow(case: Callable[[int], Case]) -> None:
    counts = []
    for n in (SMALL, LARGE):
        made = case(n)
        path = made.code.removeprefix("http://localhost")
        assert made.page.get(path).status_code == 200
        with sent_statements() as seen:
            response = made.page.get(path)
        assert response.status_code == 200
        counts.append(seen)
    _same_count(*counts)


def test_directory_query_count_does_not_grow(
    client: FlaskClient,
    current_edition: Edition,
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
) -> None:
    for word, n in (("Kletterwald", SMALL), ("Minigolf", LARGE)):
        for i in range(n):
            provider = make_provider(name=f"{word} Anbieter {i}")
            make_offer(
                provider,
                edition=current_edition,
                title=f"{word} für Familien {i}",
                description="Ermäßigter Eintritt für die ganze Familie.",
            )
    counts = []
    for word in ("Kletterwald", "Minigolf"):
        params = {"q": f"{word} Familien", "sort": "name"}
        assert client.get("/angebote", query_string=params).status_code == 200
        with sent_statements() as seen:
            response = client.get("/angebote", query_string=params)
        assert response.status_code == 200
        assert word in response.get_data(as_text=True)
        counts.append(seen)
    _same_count(*counts)


def test_pass_page_and_qr_query_counts_do_not_grow(case: Callable[[int], Case]) -> None:
    pages, qrs = [], []
    for n in (SMALL, LARGE):
        made = case(n)
        assert made.family.get("/familie/pass").status_code == 200
        with sent_statements() as seen:
            response = made.family.get("/familie/pass")
        assert response.status_code == 200
        pages.append(seen)
        etag = made.family.get(made.qr_url).headers["ETag"]
        with sent_statements() as seen:
            response = made.family.get(made.qr_url, headers={"If-None-Match": etag})
        assert response.status_code == 304
        qrs.append(seen)
    _same_count(*pages)
    _same_count(*qrs)
