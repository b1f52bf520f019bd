"""The provider's history (filters, totals, pages, CSV) and account (contact, venues, API tokens)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models import ApiToken, AuditEntry, Pass, Redemption
from kyffikus.models.base import utcnow
from kyffikus.services.apitokens import hash_token
from kyffikus.services.redemptions import redeem_offer
from tests.conftest import csrf_token, login_as, post_form
from tests.provider.conftest import Till, bearer


@pytest.fixture
def history(family_pass: Pass, till: Till, other_till: Till, today: date) -> list[Redemption]:
    """Redemptions of A over three months, one undone, and one of B."""
    made = []
    for i in range(3):
        made.append(
            redeem_offer(family_pass, till.unlimited, 1, 1, till.user, f"hist-u-{i:03d}", today)
        )
    made.append(redeem_offer(family_pass, till.per_day, 2, 0, till.user, "hist-d-001", today))
    old = redeem_offer(
        family_pass, till.per_day, 1, 2, till.user, "hist-d-002", today - timedelta(days=1)
    )
    # Moved back by hand: the pass was not yet valid 40 days ago.
    old.redeemed_at = utcnow() - timedelta(days=40)
    old.redeemed_on = today - timedelta(days=40)
    old.limit_key = old.redeemed_on.isoformat()
    made.append(old)
    undone = made[0]
    undone.undone_at = utcnow()
    undone.limit_key = None
    redeem_offer(family_pass, other_till.unlimited, 1, 0, other_till.user, "hist-b-001", today)
    db.session.commit()
    return made


def test_history_newest_first_with_short_number_and_totals(
    client: FlaskClient, till: Till, other_till: Till, family_pass: Pass, history: list[Redemption]
) -> None:
    login_as(client, till.user)
    response = client.get("/anbieter/einloesungen")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "5 Einlösungen" in html
    assert f"…-{family_pass.number[-2:]}" in html
    assert family_pass.number not in html
    assert family_pass.grouped_number not in html
    assert "Anna" not in html
    assert other_till.unlimited.title not in html
    assert "rückgängig gemacht" in html
    # Newest first: the 40-day-old redemption comes last in the list.
    rows = re.findall(r"<td>(Freibad Sondershausen: \w+)</td>", html.split("Summen pro Monat")[0])
    assert rows[-1] == till.per_day.title
    totals = html.split("Summen pro Monat", 1)[1]
    assert till.unlimited.title in totals


def test_history_filters(
    client: FlaskClient, till: Till, history: list[Redemption], today: date
) -> None:
    login_as(client, till.user)
    html = client.get(f"/anbieter/einloesungen?offer={till.per_day.id}").get_data(as_text=True)
    assert "2 Einlösungen" in html
    since = (today - timedelta(days=5)).isoformat()
    html = client.get(f"/anbieter/einloesungen?date_from={since}").get_data(as_text=True)
    assert "4 Einlösungen" in html
    bad = client.get("/anbieter/einloesungen?date_from=2026-13-45&date_to=gestern&offer=abc")
    assert bad.status_code == 200
    reversed_range = client.get(
        f"/anbieter/einloesungen?date_from={today.isoformat()}&date_to=2000-01-01"
    )
    assert "Das Enddatum liegt vor dem Anfangsdatum" in reversed_range.get_data(as_text=True)


def test_history_pagination(
    client: FlaskClient, till: Till, family_pass: Pass, today: date
) -> None:
    for i in range(55):
        redeem_offer(family_pass, till.unlimited, 1, 0, till.user, f"page-key-{i:03d}", today)
    db.session.commit()
    login_as(client, till.user)
    first = client.get("/anbieter/einloesungen").get_data(as_text=True)
    assert "55 Einlösungen" in first
    assert 'rel="next"' in first
    second = client.get("/anbieter/einloesungen?page=2").get_data(as_text=True)
    assert second.split("Summen pro Monat")[0].count('<td class="num">') == 5 * 2
    assert client.get("/anbieter/einloesungen?page=999").status_code == 200


def test_csv_export_for_a_german_spreadsheet(
    client: FlaskClient, till: Till, other_till: Till, family_pass: Pass, history: list[Redemption]
) -> None:
    login_as(client, till.user)
    response = client.get("/anbieter/einloesungen.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:3] == ["Datum", "Uhrzeit", "Angebot"]
    assert len(rows) == 1 + 5
    assert all(re.fullmatch(r"\d\d\.\d\d\.\d{4}", r[0]) for r in rows[1:])
    assert all(r[5] == f"…-{family_pass.number[-2:]}" for r in rows[1:])
    assert other_till.unlimited.title not in raw.decode("utf-8")
    assert sum(1 for r in rows[1:] if r[6]) == 1
    filtered = (
        client.get(f"/anbieter/einloesungen.csv?offer={till.per_day.id}")
        .get_data()
        .decode("utf-8-sig")
    )
    assert len(filtered.strip().splitlines()) == 1 + 2


def test_csv_defuses_formulas(
    client: FlaskClient, till: Till, family_pass: Pass, make_offer: Callable[..., Any], today: date
) -> None:
    evil = make_offer(
        till.provider, edition=till.per_day.edition, limit="unlimited", title='=HYPERLINK("x")'
    )
    redeem_offer(family_pass, evil, 1, 0, till.user, "formula-key-1", today)
    db.session.commit()
    login_as(client, till.user)
    text = client.get("/anbieter/einloesungen.csv").get_data().decode("utf-8-sig")
    assert "'=HYPERLINK" in text


def test_undo_from_history(client: FlaskClient, till: Till, history: list[Redemption]) -> None:
    login_as(client, till.user)
    target = history[1]
    response = post_form(
        client,
        f"/anbieter/einloesungen/{target.id}/rueckgaengig",
        {},
        token_from="/anbieter/einloesungen",
    )
    assert response.status_code == 302
    db.session.refresh(target)
    assert target.undone_at is not None


@pytest.mark.parametrize(
    "path", ["/anbieter/einloesungen", "/anbieter/einloesungen.csv", "/anbieter/konto"]
)
@pytest.mark.parametrize("role", [None, "family", "staff"])
def test_provider_pages_need_a_provider(
    client: FlaskClient, make_user: Callable[..., Any], path: str, role: str | None
) -> None:
    if role:
        login_as(client, make_user(role))
    assert client.get(path).status_code == (302 if role is None else 403)


# ---- account ------------------------------------------------------------------------------------


def test_account_lists_people_and_edits_contact_with_audit(
    client: FlaskClient, till: Till, other_till: Till
) -> None:
    login_as(client, till.user)
    html = client.get("/anbieter/konto").get_data(as_text=True)
    assert till.user.email in html
    assert other_till.user.email not in html
    response = post_form(
        client,
        "/anbieter/konto",
        {
            "contact_name": "Frau Beispiel",
            "email": "kasse@freibad.example",
            "phone": "03632 1234",
            "website": "https://freibad.example",
        },
    )
    assert response.status_code == 302
    assert till.provider.contact_name == "Frau Beispiel"
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "provider.update")
    ).one()
    assert entry.details["contact_name"] == {"old": None, "new": "Frau Beispiel"}
    assert entry.actor_id == till.user.id


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "keine-adresse"),
        ("website", "javascript:alert(1)"),
        ("website", "ftp://x.example"),
        ("phone", "<script>"),
        ("contact_name", "x" * 201),
    ],
)
def test_account_refuses_bad_contact_details(
    client: FlaskClient, till: Till, field: str, value: str
) -> None:
    login_as(client, till.user)
    response = post_form(client, "/anbieter/konto", {field: value})
    assert response.status_code == 400
    assert getattr(till.provider, field) != value


def test_venue_notes_own_only(client: FlaskClient, till: Till, other_till: Till) -> None:
    login_as(client, till.user)
    venue = till.provider.venues[0]
    token = csrf_token(client, "/anbieter/konto")
    response = client.post(
        f"/anbieter/konto/orte/{venue.id}",
        data={
            f"venue-{venue.id}-csrf_token": token,
            f"venue-{venue.id}-accessibility": "Stufenloser Zugang",
        },
    )
    assert response.status_code == 302
    assert venue.accessibility == "Stufenloser Zugang"
    assert db.session.scalars(select(AuditEntry).where(AuditEntry.action == "venue.update")).one()
    theirs = other_till.provider.venues[0]
    refused = client.post(
        f"/anbieter/konto/orte/{theirs.id}",
        data={
            f"venue-{theirs.id}-csrf_token": token,
            f"venue-{theirs.id}-accessibility": "gehackt",
        },
    )
    assert refused.status_code == 404
    assert theirs.accessibility != "gehackt"


def test_api_token_shown_once_stored_hashed_and_revocable(
    client: FlaskClient, till: Till, other_till: Till, family_pass: Pass
) -> None:
    login_as(client, till.user)
    response = post_form(
        client,
        "/anbieter/konto/api-schluessel",
        {"name": "Kasse Nord"},
        token_from="/anbieter/konto",
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    raw = re.search(r'id="new-token-value"[^>]*value="(kyf_[^"]+)"', html)
    assert raw
    secret = raw.group(1)
    token = db.session.scalars(
        select(ApiToken).where(ApiToken.provider_id == till.provider.id)
    ).one()
    assert token.token_hash == hash_token(secret)
    assert secret not in (token.token_hash, token.prefix)
    assert secret.startswith(token.prefix)
    # Shown once: the account page afterwards has the prefix only.
    later = client.get("/anbieter/konto").get_data(as_text=True)
    assert secret not in later
    assert token.prefix in later
    assert (
        client.post(
            "/api/v1/checks", json={"code": family_pass.token}, headers=bearer(secret)
        ).status_code
        == 200
    )
    # Another provider cannot revoke it.
    from flask import g

    g.pop("_login_user", None)
    login_as(client, other_till.user)
    assert (
        post_form(
            client,
            f"/anbieter/konto/api-schluessel/{token.id}/widerrufen",
            {},
            token_from="/anbieter/konto",
        ).status_code
        == 404
    )
    g.pop("_login_user", None)
    login_as(client, till.user)
    revoked = post_form(
        client,
        f"/anbieter/konto/api-schluessel/{token.id}/widerrufen",
        {},
        token_from="/anbieter/konto",
    )
    assert revoked.status_code == 302
    assert token.revoked_at is not None
    assert (
        client.post(
            "/api/v1/checks", json={"code": family_pass.token}, headers=bearer(secret)
        ).status_code
        == 401
    )
    actions = set(db.session.scalars(select(AuditEntry.action)))
    assert {"api_token.create", "api_token.revoke"} <= actions


def test_api_token_needs_a_name(client: FlaskClient, till: Till) -> None:
    login_as(client, till.user)
    response = post_form(
        client, "/anbieter/konto/api-schluessel", {"name": "  "}, token_from="/anbieter/konto"
    )
    assert response.status_code == 400
    assert db.session.scalars(select(ApiToken)).first() is None
