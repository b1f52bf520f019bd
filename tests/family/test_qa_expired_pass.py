"""QA: a family whose pass expired or was revoked sees why, is not offered a card, and can apply again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models import Application
from kyffikus.models.base import berlin_today
from kyffikus.services.passes import expire_passes, revoke_pass
from tests.conftest import post_form


@pytest.fixture
def lapsed(client: Any, login: Any, family_with_pass: Any, request: Any) -> tuple[Any, Any]:
    """A logged-in family whose only pass is no longer valid (expired or revoked)."""
    household, pass_ = family_with_pass()
    if request.param == "expired":
        pass_.valid_from = berlin_today() - timedelta(days=400)
        pass_.valid_until = berlin_today() - timedelta(days=1)
        db.session.flush()
        assert expire_passes() == 1
    else:
        revoke_pass(pass_, None, reason="Test")
    db.session.commit()
    login(household.user)
    return household, pass_


@pytest.mark.parametrize("lapsed", ["expired", "revoked"], indirect=True)
def test_pass_page_offers_no_card_but_the_way_to_a_new_one(client: Any, lapsed: Any) -> None:
    _household, pass_ = lapsed
    html = client.get("/familie/pass").get_data(as_text=True)

    assert "Dieser Pass gilt nicht mehr" in html
    assert f"/familie/pass/{pass_.id}/karte.pdf" not in html  # the card would answer 409
    assert "Bildschirmhelligkeit" not in html
    assert 'href="/familie/antrag"' in html


@pytest.mark.parametrize("lapsed", ["expired", "revoked"], indirect=True)
def test_the_family_can_apply_again(client: Any, lapsed: Any, outbox: Any) -> None:
    household, _pass = lapsed
    page = client.get("/familie/antrag").get_data(as_text=True)

    assert "der Familienpass dazu gilt nicht mehr" in page
    assert "Zum Familienpass" not in page
    assert "Antrag abschicken" in page
    response = post_form(client, "/familie/antrag", {})
    assert response.status_code == 302
    statuses = [
        a.status
        for a in db.session.scalars(
            select(Application)
            .where(Application.household_id == household.id)
            .order_by(Application.id)
        )
    ]
    assert statuses == ["approved", "submitted"]


def test_with_a_valid_pass_the_application_page_links_to_it(
    client: Any, login: Any, family_with_pass: Any
) -> None:
    household, _pass = family_with_pass()
    login(household.user)
    page = client.get("/familie/antrag").get_data(as_text=True)

    assert "Zum Familienpass" in page
    assert "Antrag abschicken" not in page
