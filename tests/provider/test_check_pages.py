"""The check page, the result, redeeming and undoing in the browser, and /v/<token>."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import g
from flask.testing import FlaskClient
from sqlalchemy import func, select

from kyffikus.extensions import db
from kyffikus.i18n import LANG_COOKIE
from kyffikus.models import Pass, Redemption
from kyffikus.models.base import utcnow
from tests.conftest import login_as
from tests.provider.conftest import Till, check_page
from tests.public.directory_data import use_compiled_english


def switch_user(client: FlaskClient, user: Any) -> FlaskClient:
    """Log in as another user (the test's app context keeps the loaded user in g)."""
    g.pop("_login_user", None)
    return login_as(client, user)


def _redeem_form(html: str, offer_id: int) -> dict[str, str]:
    """The hidden fields of an offer's redemption form on the result page."""
    form = re.search(
        r'<form method="post" action="/anbieter/einloesen" class="redeem-form">(.*?)</form>',
        html,
        re.S,
    )
    assert form, "no redemption form"
    forms = re.findall(
        r'<form method="post" action="/anbieter/einloesen" class="redeem-form">(.*?)</form>',
        html,
        re.S,
    )
    for body in forms:
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', body))
        if fields.get("offer_id") == str(offer_id):
            return fields
    raise AssertionError(f"no form for offer {offer_id}")


def _count(pass_: Pass) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Redemption)
        .where(Redemption.pass_id == pass_.id, Redemption.undone_at.is_(None))
    )


def test_check_page_has_scanner_number_form_and_scripts(client: FlaskClient, till: Till) -> None:
    login_as(client, till.user)
    response = client.get("/anbieter/pruefen")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for marker in (
        'id="number-form"',
        'id="pass-number"',
        'id="pass-number-error"',
        'id="scan-start"',
        'id="scan-video"',
        'id="scan-status"',
        'id="scanner"',
        'id="code-form"',
        'name="code"',
        "data-msg-typo=",
        "data-msg-denied=",
        "data-msg-absent=",
        "js/check.js",
        "js/passnumber.js",
        "jsQR.min.js",
    ):
        assert marker in html, marker
    assert "<script>" not in html
    assert 'style="' not in html
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("kind", "word", "css"),
    [
        ("valid", "GÜLTIG", "check-valid"),
        ("expired", "ABGELAUFEN", "check-expired"),
        ("revoked", "GESPERRT", "check-revoked"),
        ("replaced", "ERSETZT", "check-replaced"),
        ("not_yet_valid", "NOCH NICHT GÜLTIG", "check-expired"),
    ],
)
@pytest.mark.parametrize("by", ["token", "url", "number"])
def test_every_status_on_the_page(
    client: FlaskClient,
    till: Till,
    pass_with_status: Callable[[str], Pass],
    kind: str,
    word: str,
    css: str,
    by: str,
) -> None:
    pass_ = pass_with_status(kind)
    login_as(client, till.user)
    code = {
        "token": pass_.token,
        "url": f"http://localhost/v/{pass_.token}",
        "number": pass_.grouped_number,
    }[by]
    response = check_page(client, code)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'class="check-result {css}"' in html
    assert f">{word}</h2>" in html
    assert ("Clara Beispiel" in html) is (kind == "valid")
    if kind == "expired":
        assert "abgelaufen" in html
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "code", ["0000-0000-00X", "kein Pass", "https://localhost/v/abc", "a" * 3000]
)
def test_not_found_on_the_page(client: FlaskClient, till: Till, code: str) -> None:
    login_as(client, till.user)
    response = check_page(client, code)
    assert response.status_code in (200, 400)
    html = response.get_data(as_text=True)
    if response.status_code == 200:
        assert 'class="check-result check-notfound"' in html
        assert ">NICHT GEFUNDEN</h2>" in html


def test_typo_in_number_is_explained(client: FlaskClient, till: Till, family_pass: Pass) -> None:
    login_as(client, till.user)
    number = family_pass.number
    typo = number[1] + number[0] + number[2:] if number[0] != number[1] else number[:-1] + "Y"
    html = check_page(client, typo).get_data(as_text=True)
    assert "Prüfzeichen" in html
    assert 'aria-invalid="true"' in html


def test_valid_result_shows_names_ages_and_own_offers_only(
    client: FlaskClient, till: Till, other_till: Till, family_pass: Pass
) -> None:
    login_as(client, till.user)
    html = check_page(client, family_pass.token).get_data(as_text=True)
    assert "Anna Muster" in html
    assert "Bernd Muster" in html
    assert "2 Kinder" in html
    for offer in till.offers.values():
        assert offer.title in html
    for offer in other_till.offers.values():
        assert offer.title not in html
    household = family_pass.household
    assert household is not None
    for secret in [
        household.street,
        *(c.first_name for c in household.children),
        *family_pass.children_birth_dates,
    ]:
        assert secret not in html


def test_result_shows_markup_in_names_and_offers_as_text(
    client: FlaskClient,
    till: Till,
    make_family: Callable[..., Any],
    make_pass: Callable[..., Pass],
    make_offer: Callable[..., Any],
    edition: Any,
    today: Any,
) -> None:
    household = make_family(adults=[('<img src=x onerror="alert(1)">', "O'Neil & Söhne")])
    pass_ = make_pass(
        household, valid_from=today - timedelta(days=1), valid_until=today + timedelta(days=30)
    )
    make_offer(
        till.provider,
        edition=edition,
        limit="unlimited",
        title="<b>Eintritt</b> & mehr",
        conditions='Nur mit "Ausweis" <script>',
    )
    db.session.commit()
    login_as(client, till.user)
    html = check_page(client, pass_.token).get_data(as_text=True)
    assert "<img" not in html
    assert "<b>Eintritt" not in html
    assert "<script>" not in html
    # Shown as the words they are, escaped once (not "&amp;lt;").
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; O&#39;Neil &amp; Söhne" in html
    assert "&lt;b&gt;Eintritt&lt;/b&gt; &amp; mehr" in html
    assert "Nur mit &#34;Ausweis&#34; &lt;script&gt;" in html


def test_result_comes_out_in_english(
    app: Any, client: FlaskClient, till: Till, family_pass: Pass
) -> None:
    use_compiled_english(app)
    login_as(client, till.user)
    client.set_cookie(LANG_COOKIE, "en")
    html = check_page(client, family_pass.token).get_data(as_text=True)
    found = re.search(r'<section class="check-result.*?</section>', html, re.S)
    assert found
    result = found.group(0)
    for phrase in (
        ">VALID<",
        "Valid Kyffikus family pass, valid until ",
        "Named on the pass",
        "2 children",
        "(Ages in years: 10, 5)",
        "Pass number",
        "Your offers for this pass",
        "Adults",
        "Redeem",
    ):
        assert phrase in result, phrase
    for word in ("Kinder", "Alter", "Gültig", "Erwachsene", "Einlösen", " bis ", "Angebote"):
        assert word not in result, word


def test_every_redemption_form_gets_its_own_fresh_retry_key(
    client: FlaskClient, till: Till, family_pass: Pass
) -> None:
    login_as(client, till.user)
    pages = [check_page(client, family_pass.token).get_data(as_text=True) for _ in range(2)]
    keys = [re.findall(r'name="idempotency_key" value="([^"]*)"', page) for page in pages]
    assert len(keys[0]) == len(till.offers)
    every = keys[0] + keys[1]
    assert len(set(every)) == len(every)  # none shared between offers or between two checks
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", key) for key in every)


def test_redeem_on_the_page_once_even_when_posted_twice(
    client: FlaskClient, till: Till, family_pass: Pass
) -> None:
    login_as(client, till.user)
    html = check_page(client, family_pass.token).get_data(as_text=True)
    fields = _redeem_form(html, till.per_day.id)
    data = {**fields, "adults": "2", "children": "1"}
    first = client.post("/anbieter/einloesen", data=data)
    assert first.status_code == 200
    page = first.get_data(as_text=True)
    assert "Einlösung gespeichert" in page
    assert "Rückgängig machen" in page
    assert "Bereits eingelöst" in page
    # A double tap or reload posts the same key: still one redemption.
    again = client.post("/anbieter/einloesen", data=data)
    assert again.status_code == 200
    assert _count(family_pass) == 1
    # A fresh form (new key) for the same daily offer is refused by the limit.
    fresh = {**data, "idempotency_key": "a-new-key-from-another-render"}
    refused = client.post("/anbieter/einloesen", data=fresh)
    assert refused.status_code == 409
    assert "heute bereits eingelöst" in refused.get_data(as_text=True)
    assert _count(family_pass) == 1


def test_redeem_other_providers_offer_is_404(
    client: FlaskClient, till: Till, other_till: Till, family_pass: Pass
) -> None:
    login_as(client, till.user)
    html = check_page(client, family_pass.token).get_data(as_text=True)
    fields = _redeem_form(html, till.per_day.id)
    response = client.post(
        "/anbieter/einloesen",
        data={**fields, "offer_id": str(other_till.per_day.id), "adults": "1", "children": "0"},
    )
    assert response.status_code == 404
    assert _count(family_pass) == 0


def test_redeem_refused_for_revoked_pass(
    client: FlaskClient, till: Till, pass_with_status: Callable[[str], Pass]
) -> None:
    pass_ = pass_with_status("revoked")
    login_as(client, till.user)
    from tests.conftest import csrf_token

    data = {
        "csrf_token": csrf_token(client, "/anbieter/pruefen"),
        "code": pass_.token,
        "offer_id": str(till.unlimited.id),
        "idempotency_key": "revoked-key-1",
        "adults": "1",
        "children": "0",
    }
    response = client.post("/anbieter/einloesen", data=data)
    assert response.status_code == 422
    assert "GESPERRT" in response.get_data(as_text=True)
    assert _count(pass_) == 0


def test_redeem_without_csrf_is_refused(client: FlaskClient, till: Till, family_pass: Pass) -> None:
    login_as(client, till.user)
    response = client.post(
        "/anbieter/einloesen",
        data={
            "code": family_pass.token,
            "offer_id": str(till.unlimited.id),
            "idempotency_key": "no-csrf-key",
            "adults": "1",
            "children": "0",
        },
    )
    assert response.status_code == 400
    assert _count(family_pass) == 0


def test_undo_from_result_page_within_window_and_after(
    client: FlaskClient, till: Till, family_pass: Pass
) -> None:
    login_as(client, till.user)
    html = check_page(client, family_pass.token).get_data(as_text=True)
    fields = _redeem_form(html, till.per_day.id)
    page = client.post(
        "/anbieter/einloesen", data={**fields, "adults": "1", "children": "0"}
    ).get_data(as_text=True)
    match = re.search(r'action="/anbieter/einloesungen/(\d+)/rueckgaengig"', page)
    assert match
    redemption_id = int(match.group(1))
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    undone = client.post(
        f"/anbieter/einloesungen/{redemption_id}/rueckgaengig",
        data={"csrf_token": csrf.group(1), "code": family_pass.token},
    )
    assert undone.status_code == 200
    assert "rückgängig gemacht" in undone.get_data(as_text=True)
    assert _count(family_pass) == 0
    # Redeem again, then move it out of the window.
    html = undone.get_data(as_text=True)
    fields = _redeem_form(html, till.per_day.id)
    client.post("/anbieter/einloesen", data={**fields, "adults": "1", "children": "0"})
    redemption = db.session.scalars(
        select(Redemption).where(
            Redemption.pass_id == family_pass.id, Redemption.undone_at.is_(None)
        )
    ).one()
    redemption.redeemed_at = utcnow() - timedelta(minutes=16)
    db.session.flush()
    late = client.post(
        f"/anbieter/einloesungen/{redemption.id}/rueckgaengig", data={"csrf_token": csrf.group(1)}
    )
    assert late.status_code == 302
    assert "15 Minuten" in client.get(late.headers["Location"]).get_data(as_text=True)
    db.session.refresh(redemption)
    assert redemption.undone_at is None


def test_undo_others_redemption_is_404(
    client: FlaskClient, till: Till, other_till: Till, family_pass: Pass, today: Any
) -> None:
    from kyffikus.services.redemptions import redeem_offer

    theirs = redeem_offer(
        family_pass, other_till.per_day, 1, 0, other_till.user, "theirs-key-1", today
    )
    login_as(client, till.user)
    from tests.conftest import csrf_token

    response = client.post(
        f"/anbieter/einloesungen/{theirs.id}/rueckgaengig",
        data={"csrf_token": csrf_token(client, "/anbieter/pruefen")},
    )
    assert response.status_code == 404
    assert theirs.undone_at is None


@pytest.mark.parametrize("role", [None, "family", "staff"])
def test_check_pages_need_a_provider(
    client: FlaskClient, make_user: Callable[..., Any], role: str | None
) -> None:
    if role:
        login_as(client, make_user(role))
    response = client.get("/anbieter/pruefen")
    assert response.status_code == (302 if role is None else 403)


# ---- /v/<token> --------------------------------------------------------------------------------


def test_qr_url_anonymous_learns_only_validity(client: FlaskClient, family_pass: Pass) -> None:
    response = client.get(f"/v/{family_pass.token}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Gültiger Kyffikus-Familienpass, gültig bis" in html
    for secret in [
        "Anna",
        "Bernd",
        "Muster",
        family_pass.number,
        family_pass.grouped_number,
        "Kinder",
    ]:
        assert secret not in html
    assert "/konto/anmelden" in html
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("kind", ["expired", "revoked", "replaced", "not_yet_valid"])
def test_qr_url_anonymous_not_valid(
    client: FlaskClient, pass_with_status: Callable[[str], Pass], kind: str
) -> None:
    pass_ = pass_with_status(kind)
    html = client.get(f"/v/{pass_.token}").get_data(as_text=True)
    assert "kein gültiger Kyffikus-Familienpass" in html
    assert "Clara" not in html
    assert "GESPERRT" not in html
    assert "ERSETZT" not in html


@pytest.mark.parametrize("role", ["family", "staff", "admin"])
def test_qr_url_other_roles_get_the_anonymous_answer(
    client: FlaskClient, make_user: Callable[..., Any], family_pass: Pass, role: str
) -> None:
    login_as(client, make_user(role))
    html = client.get(f"/v/{family_pass.token}").get_data(as_text=True)
    assert "gültig bis" in html
    assert "Anna" not in html
    assert "Einlösen" not in html


def test_qr_url_provider_gets_the_full_result(
    client: FlaskClient, till: Till, family_pass: Pass
) -> None:
    login_as(client, till.user)
    response = client.get(f"/v/{family_pass.token}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert ">GÜLTIG</h2>" in html
    assert "Anna Muster" in html
    assert till.per_day.title in html
    fields = _redeem_form(html, till.unlimited.id)
    assert fields["code"] == family_pass.token


@pytest.mark.parametrize("how", ["sessions ended", "deactivated"])
def test_qr_url_provider_without_a_live_session_gets_the_anonymous_answer(
    client: FlaskClient, till: Till, family_pass: Pass, how: str
) -> None:
    # The user and the check are read in one statement: the names must still come only with a
    # session the user loader accepts.
    from kyffikus.auth_session import end_all_sessions

    login_as(client, till.user)
    if how == "sessions ended":
        end_all_sessions(till.user)
    else:
        till.user.active = False
    db.session.flush()
    response = client.get(f"/v/{family_pass.token}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "gültig bis" in html
    assert "Anna" not in html
    assert "Einlösen" not in html


def test_qr_url_over_the_budget_shows_nothing_of_the_pass(
    app: Any, client: FlaskClient, till: Till, family_pass: Pass
) -> None:
    app.config["CHECK_RATE_LIMIT"] = "1 per minute"
    try:
        login_as(client, till.user)
        assert "Anna Muster" in client.get(f"/v/{family_pass.token}").get_data(as_text=True)
        refused = client.get(f"/v/{family_pass.token}")
        html = refused.get_data(as_text=True)
        assert refused.status_code == 429
        assert "Anna" not in html
        assert "GÜLTIG" not in html
    finally:
        app.config["CHECK_RATE_LIMIT"] = "60 per minute;600 per hour"


def test_qr_url_refuses_pass_numbers(client: FlaskClient, till: Till, family_pass: Pass) -> None:
    login_as(client, till.user)
    html = client.get(f"/v/{family_pass.number}").get_data(as_text=True)
    assert ">NICHT GEFUNDEN</h2>" in html


@pytest.mark.parametrize(
    "path",
    [
        "/v/" + "a" * 5000,
        "/v/abc%00def",
        "/v/%00",
        "/v/" + "%C3%BC" * 40,
        "/v/%F0%9F%98%80",
        "/v/%FF%FE",
        "/v/..%2F..%2Fetc%2Fpasswd",
        "/v/'%20OR%201=1--",
        "/v/" + "A" * 32,
    ],
)
@pytest.mark.parametrize("as_provider", [False, True])
def test_qr_url_garbage_never_5xx(
    client: FlaskClient, till: Till, family_pass: Pass, path: str, as_provider: bool
) -> None:
    if as_provider:
        login_as(client, till.user)
    response = client.get(path)
    assert response.status_code < 500
    html = response.get_data(as_text=True)
    assert "Anna" not in html
    assert "GÜLTIG</h2>" not in html or "NICHT GÜLTIG" in html


def test_token_variants_over_http_are_never_valid(
    client: FlaskClient, till: Till, family_pass: Pass, pass_with_status: Callable[[str], Pass]
) -> None:
    login_as(client, till.user)
    token = family_pass.token
    replaced = pass_with_status("replaced")
    variants = [
        token[:-1],
        token[:22],
        token[1:],
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        token.swapcase(),
        replaced.token,
    ]
    for variant in variants:
        response = client.get(f"/v/{variant}")
        assert response.status_code == 200
        assert ">GÜLTIG</h2>" not in response.get_data(as_text=True)


# ---- rate limits -------------------------------------------------------------------------------


def test_check_rate_limit_per_user(
    app: Any, client: FlaskClient, till: Till, family_pass: Pass
) -> None:
    app.config["CHECK_RATE_LIMIT"] = "3 per minute"
    try:
        login_as(client, till.user)
        from tests.conftest import csrf_token

        token = csrf_token(client, "/anbieter/pruefen")
        codes = []
        for i in range(4):
            response = client.post(
                "/anbieter/pruefen/ergebnis",
                data={"csrf_token": token, "code": family_pass.token},
                environ_base={"REMOTE_ADDR": f"10.0.0.{i + 1}"},
            )
            codes.append(response.status_code)
        assert codes == [200, 200, 200, 429]
        assert "Zu viele Anfragen" in response.get_data(as_text=True)
        # /v/ shares the budget.
        assert (
            client.get(
                f"/v/{family_pass.token}", environ_base={"REMOTE_ADDR": "10.0.0.9"}
            ).status_code
            == 429
        )
    finally:
        app.config["CHECK_RATE_LIMIT"] = "60 per minute;600 per hour"


def test_check_rate_limit_per_address(
    app: Any, client: FlaskClient, till: Till, make_user: Callable[..., Any], family_pass: Pass
) -> None:
    app.config["CHECK_RATE_LIMIT"] = "3 per minute"
    try:
        for _i in range(3):
            assert client.get(f"/v/{family_pass.token}").status_code == 200
        # Another user from the same address has no budget left there.
        second = make_user("provider", provider=till.provider)
        switch_user(client, second)
        response = client.get(f"/v/{family_pass.token}")
        assert response.status_code == 429
    finally:
        app.config["CHECK_RATE_LIMIT"] = "60 per minute;600 per hour"
