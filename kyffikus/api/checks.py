"""JSON API for scanner apps and till systems: checks and redemptions, with a provider's Bearer token.

Only `Authorization: Bearer <token>` authenticates here; a session cookie is ignored, so the API has
no CSRF surface. A redemption retried with the same idempotency_key answers 201 with the redemption
recorded first (the same body every time).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, g, jsonify, request
from flask_babel import gettext as _

from kyffikus.api.openapi import BEARER, ERROR_RESPONSES, register_paths, register_schemas
from kyffikus.extensions import csrf, db, not_limited
from kyffikus.models.base import berlin_today, utcnow
from kyffikus.models.catalogue import Offer
from kyffikus.models.passes import Redemption
from kyffikus.provider.ratelimit import check_limits, count_check
from kyffikus.readonly import hot_sql, read_only
from kyffikus.services import DomainError, checks, redemptions
from kyffikus.services import apitokens as tokens_service
from kyffikus.web import json_error, no_store

log = logging.getLogger("kyffikus.api")

bp = Blueprint("api_checks", __name__)
csrf.exempt(bp)  # Bearer tokens, not cookies, authenticate: no CSRF surface.

F = TypeVar("F", bound=Callable[..., Any])


def _raw_bearer() -> str | None:
    # From the environ: a missing header costs werkzeug's headers.get() an exception object.
    scheme, _sep, raw = request.environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    return raw.strip() if scheme.lower() == "bearer" else None


def _refused() -> Response:
    log.info("API token refused on %s %s", request.method, request.path)
    response = json_error(
        401,
        "unauthorized",
        _("Ein gültiger API-Schlüssel ist nötig (Authorization: Bearer …)."),
    )
    response.headers["WWW-Authenticate"] = 'Bearer realm="kyffikus"'
    return response


def _accept(token: tokens_service.ApiCaller) -> None:
    if token.touched:
        db.session.commit()  # last_used_at, at most once a minute
    g.api_token = token
    no_store()


def bearer_required(view: F) -> F:
    """Authenticate by `Authorization: Bearer <token>` only; 401 without a live token."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        raw = _raw_bearer()
        token = tokens_service.authenticate(raw, utcnow()) if raw is not None else None
        if token is None:
            return _refused()
        _accept(token)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def _token() -> tokens_service.ApiCaller:
    return g.api_token  # type: ignore[no-any-return]


# A till's JSON body is a few dozen bytes. Up to this size, with its length given, it is read
# straight from the WSGI input (werkzeug's stream wrappers cost a check about 20 µs); any other
# body (no length, chunked, larger, over MAX_CONTENT_LENGTH: 413) goes werkzeug's way.
SMALL_BODY = 4096


def _small_body() -> bytes | None:
    environ = request.environ
    if "kyffikus.body" in environ:
        return environ["kyffikus.body"]  # type: ignore[no-any-return]
    length = environ.get("CONTENT_LENGTH", "")
    if not length.isdigit():
        return None
    size = int(length)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if size > SMALL_BODY or (limit is not None and size > limit):
        return None
    raw: bytes = environ["wsgi.input"].read(size) if size else b""
    environ["kyffikus.body"] = raw  # read once: werkzeug must not be asked for it again
    return raw


def _body() -> dict[str, Any] | None:
    raw = _small_body()
    if raw is None:
        data = request.get_json(force=True, silent=True)
    else:
        try:
            data = json.loads(raw)
        except ValueError:  # not JSON, or not UTF-8/16/32 (UnicodeDecodeError)
            data = None
    return data if isinstance(data, dict) else None


def _bad_json() -> Response:
    return json_error(400, "bad_request", _("Bitte senden Sie ein JSON-Objekt."))


def _invalid(field: str, message: str) -> Response:
    return json_error(422, "invalid", message, field=field)


def _int_field(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def redemption_dict(redemption: Redemption) -> dict[str, Any]:
    """A redemption as the API shows it."""
    return {
        "id": redemption.id,
        "offer_id": redemption.offer_id,
        "adults": redemption.adults,
        "children": redemption.children,
        "redeemed_at": redemption.redeemed_at.isoformat(),
        "redeemed_on": redemption.redeemed_on.isoformat(),
        "idempotency_key": redemption.idempotency_key,
        "undone_at": redemption.undone_at.isoformat() if redemption.undone_at else None,
        "undo_until": redemptions.undo_deadline(redemption).isoformat(),
    }


@bp.post("/checks")
@not_limited  # its budgets are counted by count_check, not by Flask-Limiter
@hot_sql
@read_only
def check() -> Any:
    """Check a QR text or pass number: status, reason, the pass summary and this provider's offers.

    The answers come in the order of the other API routes (401 for the token, 429 for the check
    budgets, then 400/422 for the body), but a well-formed request costs one statement: the token
    and the check together (checks.check_with_caller). Its result is shown only after the token
    was found live and the budgets allowed the request.
    """
    raw = _raw_bearer()
    data = _body()
    code = data.get("code") if data is not None else None
    well_formed = isinstance(code, str) and bool(code.strip())
    parsed = checks.parse_code(code) if well_formed else None
    today = berlin_today()
    result: checks.CheckResult | None = None
    token: tokens_service.ApiCaller | None = None
    if raw is not None and tokens_service.raw_token_shape(raw):  # else no query: no token
        if parsed is not None and parsed.kind in ("token", "number"):
            row, result = checks.check_with_caller(parsed, tokens_service.hash_token(raw), today)
            token = tokens_service.caller_from_row(row, utcnow()) if row is not None else None
        else:
            token = tokens_service.authenticate(raw, utcnow())
    if token is None:
        return _refused()
    _accept(token)
    count_check()  # 429 when a budget is spent: the result is never shown then
    if data is None:
        return _bad_json()
    if parsed is None:
        return _invalid("code", _("Bitte senden Sie den QR-Text oder die Passnummer als „code“."))
    if result is None:
        result = checks.CheckResult("not_found", parsed.kind)  # typo or malformed: no query
    return jsonify(result.to_dict())


@bp.post("/redemptions")
@bearer_required
@check_limits
def redeem() -> Any:
    """Record a redemption; 201 with it (also for a retry with the same idempotency_key)."""
    data = _body()
    if data is None:
        return _bad_json()
    code = data.get("code")
    if not isinstance(code, str) or not code.strip():
        return _invalid("code", _("Bitte senden Sie den QR-Text oder die Passnummer als „code“."))
    offer_id = _int_field(data, "offer_id")
    if offer_id is None:
        return _invalid("offer_id", _("„offer_id“ muss eine ganze Zahl sein."))
    adults = _int_field(data, "adults")
    if adults is None:
        return _invalid("adults", _("„adults“ muss eine ganze Zahl sein."))
    children = _int_field(data, "children")
    if children is None:
        return _invalid("children", _("„children“ muss eine ganze Zahl sein."))
    key = data.get("idempotency_key")
    if not isinstance(key, str) or not redemptions.IDEMPOTENCY_KEY.fullmatch(key):
        return _invalid(
            "idempotency_key",
            _("„idempotency_key“ muss 8 bis 100 Zeichen lang sein (Buchstaben, Ziffern, _ - . :)."),
        )
    token = _token()
    offer = db.session.get(Offer, offer_id) if 0 < offer_id <= redemptions.MAX_DB_INT else None
    if offer is None:
        return json_error(404, "not_found", _("Dieses Angebot gibt es nicht."))
    if offer.provider_id != token.provider_id:
        return json_error(403, "forbidden", _("Dieses Angebot gehört nicht zu Ihrem Anbieter."))
    today = berlin_today()
    parsed = checks.parse_code(code)
    pass_ = checks.find_pass(parsed)
    if pass_ is None:
        reason = parsed.kind if parsed.kind in ("typo", "malformed") else "unknown"
        message = checks.status_message(checks.CheckResult("not_found", reason))
        return json_error(422, "not_found", message, reason=reason)
    try:
        redemption = redemptions.redeem_offer(
            pass_, offer, adults, children, token.user, key, today
        )
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        extra = {"field": exc.field} if exc.field else {}
        return json_error(exc.status, exc.code, exc.message, **extra)
    response = jsonify(redemption_dict(redemption))
    response.status_code = 201
    return response


@bp.delete("/redemptions/<int:redemption_id>")
@bearer_required
def undo(redemption_id: int) -> Any:
    """Undo a redemption of this provider within the undo window: 204; after it 409; others' 404."""
    token = _token()
    redemption = redemptions.own_redemption(token.provider_id, redemption_id)
    if redemption is None:
        return json_error(404, "not_found", _("Diese Einlösung gibt es nicht."))
    try:
        redemptions.undo_redemption(redemption, token.user, utcnow())
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        return json_error(exc.status, exc.code, exc.message)
    return Response(status=204)


# ---- OpenAPI ------------------------------------------------------------------------------------

_STATUS_ENUM = ["valid", "expired", "not_yet_valid", "revoked", "replaced", "not_found"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


register_schemas(
    {
        "CheckRequest": {
            "type": "object",
            "required": ["code"],
            "properties": {
                "code": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The QR code's text (<base URL>/v/<token>, or the bare token) or "
                    "the typed pass number (dashes, spaces and case do not matter).",
                }
            },
        },
        "CheckOffer": {
            "type": "object",
            "required": [
                "id",
                "title",
                "discount_kind",
                "discount_value",
                "conditions",
                "min_age",
                "max_age",
                "redemption_limit",
                "available",
                "used",
                "used_at",
                "redemptions_so_far",
                "max_adults",
                "max_children",
            ],
            "properties": {
                "id": {"type": "integer"},
                "title": {"type": "string"},
                "discount_kind": {
                    "type": "string",
                    "enum": ["percent", "amount", "children_free", "family_price", "other"],
                },
                "discount_value": {
                    "type": ["string", "null"],
                    "description": "A decimal number as text.",
                },
                "conditions": {"type": ["string", "null"]},
                "min_age": {"type": ["integer", "null"]},
                "max_age": {"type": ["integer", "null"]},
                "redemption_limit": {
                    "type": "string",
                    "enum": ["unlimited", "per_day", "per_edition"],
                },
                "available": {
                    "type": "boolean",
                    "description": "Whether the offer can be redeemed for this pass now.",
                },
                "used": {
                    "type": "boolean",
                    "description": "Used today (per_day) or in this edition (per_edition).",
                },
                "used_at": {"type": ["string", "null"], "format": "date-time"},
                "redemptions_so_far": {"type": "integer", "minimum": 0},
                "max_adults": {"type": "integer", "minimum": 0, "maximum": 2},
                "max_children": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Children on the pass within the offer's age range.",
                },
            },
        },
        "PassSummary": {
            "type": "object",
            "required": [
                "holders",
                "adults",
                "children",
                "children_ages",
                "valid_from",
                "valid_until",
                "number_hint",
            ],
            "properties": {
                "holders": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "The adults' names, to compare with an ID.",
                },
                "adults": {"type": "integer", "minimum": 0, "maximum": 2},
                "children": {"type": "integer", "minimum": 0, "description": "Children under 18."},
                "children_ages": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0, "maximum": 17},
                },
                "valid_from": {"type": "string", "format": "date"},
                "valid_until": {"type": "string", "format": "date"},
                "number_hint": {
                    "type": "string",
                    "description": "The pass number's end, e.g. …-2F.",
                },
            },
        },
        "CheckResult": {
            "type": "object",
            "required": ["status", "reason", "message", "since", "pass", "offers"],
            "properties": {
                "status": {"type": "string", "enum": _STATUS_ENUM},
                "reason": {
                    "type": "string",
                    "enum": [*_STATUS_ENUM[:-1], "unknown", "typo", "malformed"],
                    "description": "For not_found: typo (the check character does not fit), "
                    "malformed (neither a token nor a number) or unknown.",
                },
                "message": {
                    "type": "string",
                    "description": "The result in a sentence (Accept-Language).",
                },
                "since": {
                    "type": ["string", "null"],
                    "format": "date",
                    "description": "Expired, revoked or replaced since; valid from (not_yet_valid).",
                },
                "pass": {"oneOf": [_ref("PassSummary"), {"type": "null"}]},
                "offers": {
                    "type": "array",
                    "items": _ref("CheckOffer"),
                    "description": "This provider's published offers of the current edition (valid passes only).",
                },
            },
        },
        "RedemptionRequest": {
            "type": "object",
            "required": ["code", "offer_id", "adults", "children", "idempotency_key"],
            "properties": {
                "code": {"type": "string", "minLength": 1},
                "offer_id": {"type": "integer"},
                "adults": {"type": "integer", "minimum": 0, "maximum": 2},
                "children": {"type": "integer", "minimum": 0},
                "idempotency_key": {
                    "type": "string",
                    "pattern": "^[A-Za-z0-9_.:-]{8,100}$",
                    "description": "A new key per redemption (e.g. a UUID); a retry sends the same key and "
                    "gets the same redemption.",
                },
            },
        },
        "Redemption": {
            "type": "object",
            "required": [
                "id",
                "offer_id",
                "adults",
                "children",
                "redeemed_at",
                "redeemed_on",
                "idempotency_key",
                "undone_at",
                "undo_until",
            ],
            "properties": {
                "id": {"type": "integer"},
                "offer_id": {"type": "integer"},
                "adults": {"type": "integer"},
                "children": {"type": "integer"},
                "redeemed_at": {"type": "string", "format": "date-time"},
                "redeemed_on": {"type": "string", "format": "date"},
                "idempotency_key": {"type": ["string", "null"]},
                "undone_at": {"type": ["string", "null"], "format": "date-time"},
                "undo_until": {"type": "string", "format": "date-time"},
            },
        },
    }
)

register_paths(
    {
        "/api/v1/checks": {
            "post": {
                "operationId": "checkPass",
                "tags": ["providers"],
                "summary": "Check a pass by QR text or pass number",
                "description": "Answers 200 for every status, also not_found. Rate limited per token user "
                "and per address (429).",
                "security": BEARER,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("CheckRequest")}},
                },
                "responses": {
                    "200": _json("The result of the check.", "CheckResult"),
                    "422": {"$ref": "#/components/responses/Unprocessable"},
                    **ERROR_RESPONSES,
                },
            }
        },
        "/api/v1/redemptions": {
            "post": {
                "operationId": "redeemOffer",
                "tags": ["providers"],
                "summary": "Record a redemption of one of this provider's offers",
                "description": "201 with the redemption. The same idempotency_key again answers 201 with "
                "the redemption recorded first (the same body). 409 limit_reached when the offer's limit "
                "(once per day or per edition) is used up; 422 with the pass's status as code when the "
                "pass is not valid (expired, revoked, replaced, not_yet_valid, not_found); 403 for "
                "another provider's offer; 404 for an unknown offer.",
                "security": BEARER,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("RedemptionRequest")}},
                },
                "responses": {
                    "201": _json(
                        "The redemption (new, or the one recorded first under this key).",
                        "Redemption",
                    ),
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "409": {"$ref": "#/components/responses/Conflict"},
                    "422": {"$ref": "#/components/responses/Unprocessable"},
                    **ERROR_RESPONSES,
                },
            }
        },
        "/api/v1/redemptions/{redemption_id}": {
            "delete": {
                "operationId": "undoRedemption",
                "tags": ["providers"],
                "summary": "Undo a redemption within the undo window (15 minutes)",
                "description": "The offer's allowance is free again. 409 undo_window_passed after the "
                "window; 404 for another provider's redemption.",
                "security": BEARER,
                "parameters": [
                    {
                        "name": "redemption_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
                "responses": {
                    "204": {"description": "Undone (also when it was undone before)."},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "409": {"$ref": "#/components/responses/Conflict"},
                    **ERROR_RESPONSES,
                },
            }
        },
    }
)
