"""The OpenAPI document describes every API route, and the answers match what it says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from flask import Flask
from flask.testing import FlaskClient

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
API_PREFIX = "/api/v1/"


def _openapi_path(rule: str) -> str:
    """Flask's "/api/v1/offers/<int:offer_id>" as OpenAPI's "/api/v1/offers/{offer_id}"."""
    return re.sub(r"<(?:[^>:]+:)?([^>]+)>", r"{\1}", rule)


def routes_in_app(app: Flask) -> set[tuple[str, str]]:
    """(path, method) of every /api/ route the app answers."""
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX):
            continue
        for method in rule.methods or ():
            if method.lower() in HTTP_METHODS:
                found.add((_openapi_path(rule.rule), method.lower()))
    return found


def routes_in_document(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(path, method) of every operation in the document."""
    return {
        (path, method)
        for path, operations in document["paths"].items()
        for method in operations
        if method in HTTP_METHODS
    }


@pytest.fixture
def document(client: FlaskClient, catalogue: Any) -> dict[str, Any]:
    """The served document (with the real catalogue's categories)."""
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_every_api_route_is_documented_and_nothing_else(
    app: Flask, document: dict[str, Any]
) -> None:
    in_app = routes_in_app(app)
    in_document = routes_in_document(document)

    assert in_app - in_document == set(), "routes without a description in kyffikus/api/openapi.py"
    assert in_document - in_app == set(), "described routes that the app does not have"
    assert ("/api/v1/offers", "get") in in_app


def test_document_is_openapi_3_1_with_bearer_auth(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    refs = set(_refs(document))

    assert refs
    for ref in refs:
        assert _resolve(document, ref) is not None, ref


def test_every_operation_has_responses_and_declares_its_path_parameters(
    document: dict[str, Any],
) -> None:
    for path, operations in document["paths"].items():
        names_in_path = set(re.findall(r"{([^}]+)}", path))
        for method, operation in operations.items():
            if method not in HTTP_METHODS:
                continue
            assert operation.get("responses"), (path, method)
            assert operation.get("summary"), (path, method)
            params = [
                _resolve(document, p["$ref"]) if "$ref" in p else p
                for p in operation.get("parameters", []) + operations.get("parameters", [])
            ]
            declared = {p["name"] for p in params if p["in"] == "path"}
            assert declared == names_in_path, (path, method)


def test_category_parameter_lists_the_known_categories(document: dict[str, Any]) -> None:
    schema = document["components"]["parameters"]["category"]["schema"]

    assert schema["enum"] == ["sport", "freizeit", "erlebnis", "kultur", "bildung"]


def _validator(document: dict[str, Any], path: str, status: str) -> Any:
    response = document["paths"][path]["get"]["responses"][status]
    if "$ref" in response:
        response = _resolve(document, response["$ref"])
    schema = response["content"]["application/json"]["schema"]
    return jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]})


@pytest.mark.parametrize(
    ("url", "path", "status"),
    [
        ("/api/v1/offers?per_page=100", "/api/v1/offers", "200"),
        ("/api/v1/offers?sort=town&age=3", "/api/v1/offers", "200"),
        ("/api/v1/offers?page=-1", "/api/v1/offers", "400"),
        ("/api/v1/providers?per_page=100", "/api/v1/providers", "200"),
        ("/api/v1/providers?category=nichts", "/api/v1/providers", "400"),
        ("/api/v1/offers/{first}", "/api/v1/offers/{offer_id}", "200"),
        ("/api/v1/offers/999999", "/api/v1/offers/{offer_id}", "404"),
        ("/api/v1/providers/barbarossahoehle", "/api/v1/providers/{slug}", "200"),
        ("/api/v1/providers/nichts", "/api/v1/providers/{slug}", "404"),
    ],
)
def test_answers_match_their_documented_schemas(
    client: FlaskClient, document: dict[str, Any], url: str, path: str, status: str
) -> None:
    if "{first}" in url:
        first = client.get("/api/v1/offers?per_page=1").get_json()["items"][0]["id"]
        url = url.replace("{first}", str(first))
    response = client.get(url)

    assert str(response.status_code) == status
    errors = [
        e.message for e in _validator(document, path, status).iter_errors(response.get_json())
    ]
    assert errors == []


def test_schemas_are_strict_enough_to_catch_a_wrong_answer(document: dict[str, Any]) -> None:
    validator = _validator(document, "/api/v1/offers", "200")

    assert not validator.is_valid(
        {"items": [{"id": "eins"}], "page": 1, "per_page": 20, "total": 1, "pages": 1}
    )
    assert not validator.is_valid({"items": []})
