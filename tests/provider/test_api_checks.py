"""The JSON API for tills: Bearer auth, checks, redemptions, undo, errors, rate limit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from kyffikus.extensions import db
from kyffikus.models import ApiToken, Pass, Redemption
from kyffikus.models.base import utcnow
from kyffikus.services.apitokens import hash_token
from tests.conftest import login_as
from tests.provider.conftest import Till, bearer


def _count(pass_: Pass) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Redemption)
        .where(Redemption.pass_id == pass_.id, Redemption.undone_at.is_(None))
    )


def _check(client: FlaskClient, token: str, code: Any) -> Any:
    return client.post("/api/v1/checks", json={"code": code}, headers=bearer(token))


def _redeem(
    client: FlaskClient,
    token: str,
    code: Any,
    offer_id: Any,
    idempotency_key: Any,
    adults: Any = 1,
    children: Any = 0,
) -> Any:
    """POST a redemption; the values go into the JSON body as they are (wrong types too)."""
    body = {
        "code": code,
        "offer_id": offer_id,
        "adults": adults,
        "children": children,
        "idempotency_key": idempotency_key,
    }
    return client.post("/api/v1/redemptions", json=body, headers=bearer(token))


# ---- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer kyf_not-a-real-token-0123456789abcdef",
        "Bearer " + "x" * 5000,
        "Token kyf_abc",
    ],
)
def test_checks_need_a_bearer_token(
    client: FlaskClient, family_pass: Pass, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = client.post("/api/v1/checks", json={"code": family_pass.token}, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_session_cookie_does_not_authenticate_the_api(
    client: FlaskClient, till: Till, family_pass: Pass
) -> None:
    login_as(client, till.user)
    assert client.post("/api/v1/checks", json={"code": family_pass.token}).status_code == 401
    assert client.post("/api/v1/redemptions", json={}).status_code == 401


def test_revoked_token_and_deactivated_user_are_refused(
    client: FlaskClient, till: Till, api_token: str, family_pass: Pass
) -> None:
    assert _check(client, api_token, family_pass.token).status_code == 200
    token = db.session.scalars(
        select(ApiToken).where(ApiToken.token_hash == hash_token(api_token))
    ).one()
    token.revoked_at = utcnow()
    db.session.commit()
    assert _check(client, api_token, family_pass.token).status_code == 401
    token.revoked_at = None
    till.user.active = False
    db.session.commit()
    assert _check(client, api_token, family_pass.token).status_code == 401


def test_last_used_at_written_at_most_once_a_minute(
    client: FlaskClient, api_token: str, family_pass: Pass
) -> None:
    token = db.session.scalars(
        select(ApiToken).where(ApiToken.token_hash == hash_token(api_token))
    ).one()
    assert token.last_used_at is None
    _check(client, api_token, family_pass.token)
    first = token.last_used_at
    assert first is not None
    _check(client, api_token, family_pass.token)
    assert token.last_used_at == first
    token.last_used_at = first - timedelta(minutes=2)
    db.session.commit()
    _check(client, api_token, family_pass.token)
    assert token.last_used_at > first


# ---- checks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["valid", "expired", "revoked", "replaced", "not_yet_valid"])
@pytest.mark.parametrize("by", ["token", "url", "number"])
def test_every_status_through_the_api(
    client: FlaskClient,
    api_token: str,
    till: Till,
    pass_with_status: Callable[[str], Pass],
    kind: str,
    by: str,
) -> None:
    pass_ = pass_with_status(kind)
    code = {
        "token": pass_.token,
        "url": f"https://example.org/v/{pass_.token}",
        "number": pass_.number,
    }[by]
    response = _check(client, api_token, code)
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == kind
    assert body["message"]
    assert response.headers["Cache-Control"] == "no-store"
    if kind == "valid":
        assert body["pass"]["holders"] == ["Clara Beispiel"]
        assert body["pass"]["children"] == 1
        assert {o["id"] for o in body["offers"]} == {o.id for o in till.offers.values()}
    else:
        assert body["pass"] is None
        assert body["offers"] == []
        assert body["since"]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("0000-0000-00", "unknown"),
        ("7KQ3-M9XA-2G", "typo"),
        ("hallo welt!", "malformed"),
        ("\x00" * 40, "malformed"),
        ("x" * 3000, "malformed"),
    ],
)
def test_not_found_through_the_api(
    client: FlaskClient, api_token: str, code: str, reason: str
) -> None:
    from kyffikus.services import passnumber

    if reason == "unknown":
        code = passnumber.generate()
    response = _check(client, api_token, code)
    assert response.status_code == 200
    assert (response.get_json()["status"], response.get_json()["reason"]) == ("not_found", reason)


def test_check_shows_allowance_and_no_other_providers(
    client: FlaskClient, api_token: str, till: Till, other_till: Till, family_pass: Pass
) -> None:
    response = _redeem(
        client, api_token, family_pass.token, till.per_day.id, "api-allowance-1", children=1
    )
    assert response.status_code == 201
    body = _check(client, api_token, family_pass.token).get_json()
    offers = {o["id"]: o for o in body["offers"]}
    assert offers[till.per_day.id]["available"] is False
    assert offers[till.per_day.id]["used_at"]
    assert offers[till.unlimited.id]["available"] is True
    assert not set(offers) & {o.id for o in other_till.offers.values()}
    text = str(body)
    household = family_pass.household
    assert household is not None
    for secret in [household.street, *family_pass.children_birth_dates, "Kind1"]:
        assert secret not in text


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'"code"', 400),
        (b"", 400),
        (b'{"code": 5}', 422),
        (b'{"code": null}', 422),
        (b'{"code": ""}', 422),
        (b'{"code": ["a"]}', 422),
        (b"{", 400),
    ],
)
def test_bad_check_bodies(client: FlaskClient, api_token: str, data: bytes, status: int) -> None:
    response = client.post(
        "/api/v1/checks",
        data=data,
        headers={**bearer(api_token), "Content-Type": "application/json"},
    )
    assert response.status_code == status
    assert set(response.get_json()["error"]) >= {"code", "message"}


@pytest.mark.parametrize("padding", [0, 4096])
def test_check_body_read_whatever_its_size(
    client: FlaskClient, api_token: str, family_pass: Pass, padding: int
) -> None:
    """A small body is read straight from the input, a larger one through werkzeug: same answer."""
    from kyffikus.api.checks import SMALL_BODY

    data = b'{"code": "%s"' % family_pass.token.encode() + b" " * padding + b"}"
    assert (len(data) > SMALL_BODY) == bool(padding)
    response = client.post(
        "/api/v1/checks",
        data=data,
        headers={**bearer(api_token), "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.get_json()["status"] == "valid"


@pytest.mark.parametrize("data", [b"\xff\xfe{", b'{"code": "\xc3"}'])
def test_check_body_that_is_not_text_is_400(
    client: FlaskClient, api_token: str, data: bytes
) -> None:
    response = client.post(
        "/api/v1/checks",
        data=data,
        headers={**bearer(api_token), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"


def test_wrong_method_is_json(client: FlaskClient, api_token: str) -> None:
    response = client.get("/api/v1/checks", headers=bearer(api_token))
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"


# ---- redemptions --------------------------------------------------------------------------------


def test_redeem_201_and_replay_answers_the_same(
    client: FlaskClient, api_token: str, till: Till, family_pass: Pass
) -> None:
    body = {
        "code": family_pass.number,
        "offer_id": till.per_day.id,
        "idempotency_key": "3f1c2a8e-9b7d-4c1e-8f00-aa11bb22cc33",
        "adults": 2,
        "children": 2,
    }
    first = _redeem(client, api_token, **body)
    assert first.status_code == 201
    created = first.get_json()
    assert (created["adults"], created["children"], created["offer_id"]) == (2, 2, till.per_day.id)
    assert created["undone_at"] is None
    assert created["undo_until"]
    again = _redeem(client, api_token, **body)
    assert again.status_code == 201
    assert again.get_json() == created
    assert _count(family_pass) == 1


def test_limit_reached_409(
    client: FlaskClient, api_token: str, till: Till, family_pass: Pass
) -> None:
    code, offer_id = family_pass.token, till.per_edition.id
    assert _redeem(client, api_token, code, offer_id, "edition-api-1").status_code == 201
    response = _redeem(client, api_token, code, offer_id, "edition-api-2")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "limit_reached"
    assert _count(family_pass) == 1


@pytest.mark.parametrize("kind", ["expired", "revoked", "replaced", "not_yet_valid"])
def test_invalid_pass_422_with_reason(
    client: FlaskClient,
    api_token: str,
    till: Till,
    pass_with_status: Callable[[str], Pass],
    kind: str,
) -> None:
    pass_ = pass_with_status(kind)
    response = _redeem(client, api_token, pass_.token, till.unlimited.id, "invalid-pass-api")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == kind
    assert error["message"]
    assert _count(pass_) == 0


def test_unknown_pass_422(client: FlaskClient, api_token: str, till: Till) -> None:
    import secrets

    code = secrets.token_urlsafe(24)
    response = _redeem(client, api_token, code, till.unlimited.id, "unknown-pass-api")
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "not_found"


def test_other_providers_offer_403_unknown_offer_404(
    client: FlaskClient, api_token: str, other_till: Till, family_pass: Pass
) -> None:
    code, key = family_pass.token, "foreign-offer-1"
    response = _redeem(client, api_token, code, other_till.per_day.id, key)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    for unknown in (987654321, 2**63, -1):
        assert _redeem(client, api_token, code, unknown, key).status_code == 404
    assert _count(family_pass) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"offer_id": "1"}, "offer_id"),
        ({"offer_id": True}, "offer_id"),
        ({"adults": 1.5}, "adults"),
        ({"adults": None}, "adults"),
        ({"children": "2"}, "children"),
        ({"idempotency_key": None}, "idempotency_key"),
        ({"idempotency_key": "short"}, "idempotency_key"),
        ({"idempotency_key": "ü" * 20}, "idempotency_key"),
        ({"code": 123}, "code"),
        ({"adults": 3}, "adults"),
        ({"children": 3}, "children"),
        ({"adults": 0, "children": 0}, "adults"),
        ({"adults": 10**30}, "adults"),
    ],
)
def test_bad_redemption_bodies_422(
    client: FlaskClient,
    api_token: str,
    till: Till,
    family_pass: Pass,
    change: dict[str, Any],
    field: str,
) -> None:
    body = {
        "code": family_pass.token,
        "offer_id": till.unlimited.id,
        "idempotency_key": "bad-body-key-1",
        **change,
    }
    response = _redeem(client, api_token, **body)  # adults 1, children 0 unless changed
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == field
    assert _count(family_pass) == 0


def test_delete_within_window_204_after_409_others_404(
    client: FlaskClient, api_token: str, other_api_token: str, till: Till, family_pass: Pass
) -> None:
    code, offer_id = family_pass.token, till.per_day.id
    created = _redeem(client, api_token, code, offer_id, "undo-api-1").get_json()
    # Another provider cannot see it.
    assert (
        client.delete(
            f"/api/v1/redemptions/{created['id']}", headers=bearer(other_api_token)
        ).status_code
        == 404
    )
    response = client.delete(f"/api/v1/redemptions/{created['id']}", headers=bearer(api_token))
    assert response.status_code == 204
    assert _count(family_pass) == 0
    # The day's allowance is free again.
    second = _redeem(client, api_token, code, offer_id, "undo-api-2")
    assert second.status_code == 201
    redemption = db.session.get(Redemption, second.get_json()["id"])
    assert redemption is not None
    redemption.redeemed_at = utcnow() - timedelta(minutes=16)
    db.session.commit()
    late = client.delete(f"/api/v1/redemptions/{redemption.id}", headers=bearer(api_token))
    assert late.status_code == 409
    assert late.get_json()["error"]["code"] == "undo_window_passed"
    assert (
        client.delete("/api/v1/redemptions/999999999", headers=bearer(api_token)).status_code == 404
    )
    assert (
        client.delete(f"/api/v1/redemptions/{2**40}", headers=bearer(api_token)).status_code == 404
    )
    assert client.delete(f"/api/v1/redemptions/{created['id']}").status_code == 401


def test_api_rate_limit_429_json(
    app: Any, client: FlaskClient, api_token: str, family_pass: Pass
) -> None:
    app.config["CHECK_RATE_LIMIT"] = "5 per minute"
    try:
        codes = [_check(client, api_token, family_pass.token).status_code for _i in range(6)]
        assert codes == [200] * 5 + [429]
        response = _check(client, api_token, family_pass.token)
        assert response.status_code == 429
        error = response.get_json()["error"]
        assert error["code"] == "rate_limited"
        assert "Zu viele Anfragen" in error["message"]
    finally:
        app.config["CHECK_RATE_LIMIT"] = "60 per minute;600 per hour"


def test_english_messages(client: FlaskClient, api_token: str, family_pass: Pass) -> None:
    response = client.post(
        "/api/v1/checks",
        json={"code": family_pass.token},
        headers={**bearer(api_token), "Accept-Language": "en"},
    )
    assert response.status_code == 200
    assert response.get_json()["message"]


# ---- the OpenAPI document describes these answers ------------------------------------------------


def _validator(document: dict[str, Any], path: str, method: str, status: str) -> Any:
    import jsonschema_rs

    response = document["paths"][path][method]["responses"][status]
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response["content"]["application/json"]["schema"]
    return jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]})


def test_answers_match_the_openapi_document(
    client: FlaskClient,
    api_token: str,
    till: Till,
    family_pass: Pass,
    pass_with_status: Callable[[str], Pass],
) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    check = _validator(document, "/api/v1/checks", "post", "200")
    for code in (family_pass.token, pass_with_status("revoked").token, "nichts!"):
        body = _check(client, api_token, code).get_json()
        assert [e.message for e in check.iter_errors(body)] == []
    assert not check.is_valid({"status": "valid"})
    created = _redeem(client, api_token, family_pass.token, till.per_day.id, "openapi-key-1")
    assert [
        e.message
        for e in _validator(document, "/api/v1/redemptions", "post", "201").iter_errors(
            created.get_json()
        )
    ] == []
    refused = _redeem(client, api_token, family_pass.token, till.per_day.id, "openapi-key-2")
    assert refused.status_code == 409
    assert _validator(document, "/api/v1/redemptions", "post", "409").is_valid(refused.get_json())


def test_api_check_takes_one_query(
    client: FlaskClient, api_token: str, till: Till, family_pass: Pass
) -> None:
    from tests.provider.conftest import count_queries

    _check(client, api_token, family_pass.token)  # writes last_used_at
    with count_queries() as statements:
        response = _check(client, api_token, family_pass.token)
    assert response.get_json()["status"] == "valid"
    print(
        f"\nAPI check queries: {len(statements)} (token with its user, pass with offers and allowance)"
    )
    assert len(statements) == 1
    assert "FROM api_token" in statements[0]
    assert "FROM pass" in statements[0]
