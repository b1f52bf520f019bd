"""The OpenAPI 3.1 document of the JSON API, served at GET /api/v1/openapi.json.

The document is plain data. Each API module describes its own routes and adds them with
register_paths() (and its own schemas with register_schemas()) at import time of that module;
the public catalogue's routes are described at the bottom of this file. Paths are written in full,
as the browser sees them: "/api/v1/offers/{offer_id}" for the Flask rule
"/api/v1/offers/<int:offer_id>". tests/api/test_openapi.py compares the document with
app.url_map both ways, so a route without a description (or a description without a route) fails.

For the providers' routes (kyffikus/api/checks.py, blueprint "api_checks"):
    from kyffikus.api.openapi import BEARER, ERROR_RESPONSES, register_paths, register_schemas
    register_schemas({"CheckRequest": {...}, ...})
    register_paths({"/api/v1/checks": {"post": {..., "security": BEARER,
                                                 "responses": {"200": ..., **ERROR_RESPONSES}}}})
Reuse "#/components/schemas/Error" and the responses in components/responses (BadRequest,
Unauthorized, Forbidden, NotFound, Conflict, Unprocessable, TooManyRequests, Unavailable).
"""

from __future__ import annotations

import copy
from typing import Any

from kyffikus.services.directory import (
    MAX_AGE,
    MAX_PAGE,
    MAX_PER_PAGE,
    MAX_QUERY_LENGTH,
    MAX_TOWN_LENGTH,
    MIN_AGE,
    PAGE_SIZE,
    SORTS,
)

API_PREFIX = "/api/v1"
OPENAPI_VERSION = "3.1.0"

# The security requirement of a route that needs a provider's API token.
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]

_PATHS: dict[str, dict[str, Any]] = {}
_SCHEMAS: dict[str, dict[str, Any]] = {}


def register_paths(paths: dict[str, dict[str, Any]]) -> None:
    """Add route descriptions: {"/api/v1/...": {"get": {...}, "post": {...}}}. Idempotent."""
    for path, operations in paths.items():
        if not path.startswith(API_PREFIX + "/"):
            raise ValueError(f"OpenAPI path must start with {API_PREFIX}/: {path}")
        _PATHS.setdefault(path, {}).update(operations)


def register_schemas(schemas: dict[str, dict[str, Any]]) -> None:
    """Add schemas under components/schemas (a name given twice keeps the last)."""
    _SCHEMAS.update(schemas)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(type_: str, **extra: Any) -> dict[str, Any]:
    return {"type": [type_, "null"], **extra}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


# No control characters (PostgreSQL refuses NUL; a search has no use for the others).
_PRINTABLE = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"

_SCHEMAS_BASE: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "Machine-readable, e.g. invalid_parameter, not_found.",
                    },
                    "message": {
                        "type": "string",
                        "description": "For people, in the language of Accept-Language (German by default).",
                    },
                    "field": {
                        "type": "string",
                        "description": "The parameter or field at fault, where there is one.",
                    },
                },
            }
        },
    },
    "Category": {
        "type": "object",
        "required": ["slug", "name_de", "name_en"],
        "properties": {
            "slug": {"type": "string"},
            "name_de": {"type": "string"},
            "name_en": {"type": "string"},
        },
    },
    "Edition": {
        "type": "object",
        "required": ["number", "name", "valid_from", "valid_until"],
        "properties": {
            "number": {"type": "integer"},
            "name": {"type": "string"},
            "valid_from": {"type": "string", "format": "date"},
            "valid_until": {"type": "string", "format": "date"},
        },
    },
    "Venue": {
        "type": "object",
        "required": [
            "id",
            "name",
            "street",
            "postal_code",
            "town",
            "latitude",
            "longitude",
            "accessibility",
        ],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "street": _nullable("string"),
            "postal_code": _nullable("string"),
            "town": {"type": "string"},
            "latitude": _nullable("number"),
            "longitude": _nullable("number"),
            "accessibility": _nullable(
                "string", description="Notes on access (steps, lifts, ...)."
            ),
        },
    },
    "Discount": {
        "type": "object",
        "required": ["kind", "value", "label"],
        "properties": {
            "kind": {
                "type": "string",
                "enum": ["percent", "amount", "children_free", "family_price", "other"],
            },
            "value": _nullable(
                "number",
                description="Percent, euros off, number of free children, or the family price in euros.",
            ),
            "label": {"type": "string", "description": "The benefit in words, localised."},
        },
    },
    "ProviderRef": {
        "type": "object",
        "required": ["slug", "name", "is_sample"],
        "properties": {
            "slug": {"type": "string"},
            "name": {"type": "string"},
            "is_sample": {"type": "boolean", "description": "Sample data, not a real provider."},
        },
    },
    "Offer": {
        "type": "object",
        "required": [
            "id",
            "title",
            "description",
            "provider",
            "category",
            "discount",
            "conditions",
            "min_age",
            "max_age",
            "redemption_limit",
            "venues",
            "edition",
            "is_sample",
            "url",
        ],
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "provider": _ref("ProviderRef"),
            "category": _ref("Category"),
            "discount": _ref("Discount"),
            "conditions": _nullable("string"),
            "min_age": _nullable("integer", minimum=MIN_AGE, maximum=MAX_AGE),
            "max_age": _nullable("integer", minimum=MIN_AGE, maximum=MAX_AGE),
            "redemption_limit": {
                "type": "string",
                "enum": ["unlimited", "per_day", "per_edition"],
                "description": "How often one pass may use the offer.",
            },
            "venues": {"type": "array", "items": _ref("Venue")},
            "edition": _ref("Edition"),
            "is_sample": {"type": "boolean"},
            "url": {"type": "string", "description": "The offer's page on this site (a path)."},
        },
    },
    "OfferRef": {
        "type": "object",
        "required": ["id", "title", "url"],
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "url": {"type": "string"},
        },
    },
    "Provider": {
        "type": "object",
        "required": [
            "slug",
            "name",
            "description",
            "website",
            "email",
            "phone",
            "is_sample",
            "venues",
            "offers",
            "url",
        ],
        "properties": {
            "slug": {"type": "string"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "website": _nullable("string"),
            "email": _nullable("string"),
            "phone": _nullable("string"),
            "is_sample": {"type": "boolean"},
            "venues": {"type": "array", "items": _ref("Venue")},
            "offers": {
                "type": "array",
                "items": _ref("OfferRef"),
                "description": "The provider's listed offers of the current edition.",
            },
            "url": {"type": "string"},
        },
    },
}


def _page_of(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "page", "per_page", "total", "pages"],
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
            "total": {"type": "integer", "minimum": 0},
            "pages": {"type": "integer", "minimum": 0},
        },
    }


_SCHEMAS_BASE["OfferPage"] = _page_of("Offer")
_SCHEMAS_BASE["ProviderPage"] = _page_of("Provider")

_RESPONSES: dict[str, dict[str, Any]] = {
    "BadRequest": _error_response("A parameter or the body is invalid (code invalid_parameter)."),
    "Unauthorized": _error_response("No valid API token."),
    "Forbidden": _error_response("The token may not do this."),
    "NotFound": _error_response("No such object."),
    "Conflict": _error_response("The action contradicts the current state."),
    "Unprocessable": _error_response("The request is well-formed but refused by a rule."),
    "TooManyRequests": _error_response("Rate limit reached; try again later."),
    "Unavailable": _error_response("The database is unreachable; try again shortly."),
}


def _ref_response(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


# Error responses for protected routes, ready to merge into an operation's "responses".
ERROR_RESPONSES: dict[str, dict[str, str]] = {
    "400": _ref_response("BadRequest"),
    "401": _ref_response("Unauthorized"),
    "403": _ref_response("Forbidden"),
    "429": _ref_response("TooManyRequests"),
    "503": _ref_response("Unavailable"),
}

_FILTER_PARAMETERS: dict[str, dict[str, Any]] = {
    "q": {
        "name": "q",
        "in": "query",
        "description": "Search words; every word must occur (case-insensitive) in the offer's "
        "title or description or the provider's name.",
        "schema": {"type": "string", "maxLength": MAX_QUERY_LENGTH, "pattern": _PRINTABLE},
    },
    "category": {
        "name": "category",
        "in": "query",
        "description": "A category's slug.",
        "schema": {"type": "string"},
    },
    "town": {
        "name": "town",
        "in": "query",
        "description": "Town of a venue (case-insensitive, exact). Empty: all towns.",
        "schema": {"type": "string", "maxLength": MAX_TOWN_LENGTH, "pattern": _PRINTABLE},
    },
    "age": {
        "name": "age",
        "in": "query",
        "description": "Offers suitable for a child of this age in years.",
        "schema": {"type": "integer", "minimum": MIN_AGE, "maximum": MAX_AGE},
    },
    "free_for_children": {
        "name": "free_for_children",
        "in": "query",
        "description": "Only offers where children go free.",
        "schema": {"type": "boolean"},
    },
    "sort": {
        "name": "sort",
        "in": "query",
        "description": "name: by provider name, then title. town: by the first venue town, then "
        "name. The id breaks ties, so the order is stable across pages.",
        "schema": {"type": "string", "enum": list(SORTS), "default": "name"},
    },
    "page": {
        "name": "page",
        "in": "query",
        "description": "Page number; a page after the last one is empty.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
    },
    "per_page": {
        "name": "per_page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": PAGE_SIZE},
    },
}

_LIST_PARAMETERS = [{"$ref": f"#/components/parameters/{name}"} for name in _FILTER_PARAMETERS]

_PUBLIC = (
    "Public: no authentication. Only published offers of published providers in the "
    "current edition (the one covering today; if none, the latest) are listed."
)

CATALOGUE_PATHS: dict[str, dict[str, Any]] = {
    f"{API_PREFIX}/offers": {
        "get": {
            "operationId": "listOffers",
            "tags": ["catalogue"],
            "summary": "List offers, filtered, sorted and paginated",
            "description": _PUBLIC,
            "security": [],
            "parameters": _LIST_PARAMETERS,
            "responses": {
                "200": {
                    "description": "One page of offers.",
                    "content": {"application/json": {"schema": _ref("OfferPage")}},
                },
                "400": _ref_response("BadRequest"),
            },
        }
    },
    f"{API_PREFIX}/offers/{{offer_id}}": {
        "get": {
            "operationId": "getOffer",
            "tags": ["catalogue"],
            "summary": "One listed offer",
            "security": [],
            "parameters": [
                {
                    "name": "offer_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1},
                }
            ],
            "responses": {
                "200": {
                    "description": "The offer.",
                    "content": {"application/json": {"schema": _ref("Offer")}},
                },
                "404": _ref_response("NotFound"),
            },
        }
    },
    f"{API_PREFIX}/providers": {
        "get": {
            "operationId": "listProviders",
            "tags": ["catalogue"],
            "summary": "List providers with at least one listed offer matching the filters",
            "description": _PUBLIC,
            "security": [],
            "parameters": _LIST_PARAMETERS,
            "responses": {
                "200": {
                    "description": "One page of providers.",
                    "content": {"application/json": {"schema": _ref("ProviderPage")}},
                },
                "400": _ref_response("BadRequest"),
            },
        }
    },
    f"{API_PREFIX}/providers/{{slug}}": {
        "get": {
            "operationId": "getProvider",
            "tags": ["catalogue"],
            "summary": "One published provider with its venues and listed offers",
            "security": [],
            "parameters": [
                {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {
                    "description": "The provider.",
                    "content": {"application/json": {"schema": _ref("Provider")}},
                },
                "404": _ref_response("NotFound"),
            },
        }
    },
    f"{API_PREFIX}/openapi.json": {
        "get": {
            "operationId": "getOpenApi",
            "tags": ["meta"],
            "summary": "This document",
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI 3.1 document.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
}

register_paths(CATALOGUE_PATHS)


def build_document(category_slugs: list[str] | None = None) -> dict[str, Any]:
    """The whole document; category_slugs (the known categories) become the category enum."""
    parameters = copy.deepcopy(_FILTER_PARAMETERS)
    if category_slugs:
        parameters["category"]["schema"]["enum"] = list(category_slugs)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Kyffikus API",
            "version": "1.0.0",
            "summary": "Familienpass Kyffikus of the Kyffhäuserkreis",
            "description": (
                "The public catalogue of offers and providers, and, for providers with an API "
                "token, checking passes and recording redemptions. Errors are "
                '{"error": {"code": ..., "message": ...}}; messages follow Accept-Language.'
            ),
            "license": {"name": "EUPL-1.2", "identifier": "EUPL-1.2"},
        },
        "servers": [{"url": "/"}],
        "paths": copy.deepcopy(dict(sorted(_PATHS.items()))),
        "components": {
            "schemas": copy.deepcopy({**_SCHEMAS_BASE, **_SCHEMAS}),
            "parameters": parameters,
            "responses": copy.deepcopy(_RESPONSES),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A provider's API token, created on the provider's pages.",
                }
            },
        },
    }
