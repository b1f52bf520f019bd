"""QA: what the cashier reads (since when a pass expired, when an offer was used) and bad input."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from kyffikus.extensions import db
from kyffikus.models import ApiToken, Pass, Redemption
from kyffikus.models.base import BERLIN
from kyffikus.services.redemptions import redeem_offer
from tests.conftest import login_as, post_form
from tests.provider.conftest import Till, bearer, check_page


def test_expired_pass_says_since_which_day(
    client: FlaskClient, till: Till, pass_with_status: Callable[[str], Pass]
) -> None:
    pass_ = pass_with_status("expired")
    login_as(client, till.user)
    html = check_page(client, pass_.grouped_number).get_data(as_text=True)

    since = (pass_.valid_until + timedelta(days=1)).strftime("%d.%m.%Y")
    assert f"Dieser Familienpass ist seit {since} abgelaufen." in html
    assert "Clara" not in html


def test_used_offer_says_when_it_was_used(
    client: FlaskClient, till: Till, family_pass: Pass, today: date
) -> None:
    daily = redeem_offer(family_pass, till.per_day, 1, 1, till.user, "qa-used-daily-1", today)
    yearly = redeem_offer(family_pass, till.per_edition, 1, 1, till.user, "qa-used-year-1", today)
    db.session.commit()
    login_as(client, till.user)
    html = check_page(client, family_pass.token).get_data(as_text=True)

    at = daily.redeemed_at.astimezone(BERLIN).strftime("%H:%M")
    assert f"Heute bereits eingelöst um {at} Uhr." in html
    when = yearly.redeemed_at.astimezone(BERLIN).strftime("%d.%m.%y, %H:%M")
    assert f"In dieser Ausgabe bereits eingelöst am {when}." in html
    # Used offers have no button; the unlimited one still has one.
    buttons = re.findall(r'name="offer_id" value="(\d+)"', html)
    assert buttons == [str(till.unlimited.id)]


@pytest.mark.parametrize("page", ["²", "99999999999999999999999", "-5", "x"])
def test_history_with_an_odd_page_number_still_shows(
    client: FlaskClient, till: Till, page: str
) -> None:
    login_as(client, till.user)

    assert client.get("/anbieter/einloesungen", query_string={"page": page}).status_code == 200


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/anbieter/konto", {"contact_name": "Frau\x00Beispiel"}),
        ("/anbieter/konto/api-schluessel", {"name": "Kasse\x001"}),
    ],
)
def test_nul_in_account_forms_is_refused_and_nothing_written(
    client: FlaskClient, till: Till, url: str, data: dict[str, str]
) -> None:
    login_as(client, till.user)
    response = post_form(client, url, data, token_from="/anbieter/konto")

    assert response.status_code == 400
    assert "Steuerzeichen" in response.get_data(as_text=True)
    db.session.expire_all()
    assert till.provider.contact_name is None
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"code": "\x00"},
        {"code": "ABCD\x00"},
        {"code": "x", "offer_id": 1, "adults": 1, "children": 0, "idempotency_key": "k\x00" * 5},
    ],
)
@pytest.mark.parametrize("url", ["/api/v1/checks", "/api/v1/redemptions"])
def test_nul_in_api_bodies_never_breaks_the_api(
    client: FlaskClient, api_token: str, url: str, body: dict[str, Any]
) -> None:
    response = client.post(url, json=body, headers=bearer(api_token))

    assert response.status_code < 500
    if response.status_code >= 400:
        assert response.get_json()["error"]["message"]
    else:
        assert response.get_json()["status"] == "not_found"
    assert db.session.scalar(select(func.count()).select_from(Redemption)) == 0


def test_nul_in_a_typed_pass_number_finds_no_pass(
    client: FlaskClient, till: Till, family_pass: Pass
) -> None:
    login_as(client, till.user)
    response = check_page(client, family_pass.number[:4] + "\x00" + family_pass.number[4:])

    assert response.status_code in (200, 400)
    assert "Anna Muster" not in response.get_data(as_text=True)
