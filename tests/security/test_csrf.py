"""CSRF: every state-changing route outside /api/ refuses a POST without a valid token; GET writes nothing.

The routes come from app.url_map (through the authorization matrix, which lists every route), so
a new form is covered the moment it exists. Each request runs in a rolled-back savepoint with a
spy on the database connection: a refused request must send no INSERT, UPDATE or DELETE.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from kyffikus.extensions import db
from kyffikus.models import AuditEntry
from tests.security.conftest import (
    ROLES,
    World,
    api_headers,
    client_for,
    rolled_back,
    spy_writes,
)
from tests.security.figures import record_figure
from tests.security.test_authz_matrix import (
    MATRIX,
    REFUSALS,
    api_body,
    form_data,
    routes,
    url_values,
)

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
CSRF_MESSAGE = "Das Formular ist abgelaufen oder wurde nicht von dieser Seite gesendet."
# Reads that are logged on purpose (staff views of personal data), not changes.
READ_ACTIONS = ("view", "list", "search", "print", "export")
# A cache of slow counts, written when counting took long; not a change of state.
CACHE_TABLES = {"statistics_snapshot"}


def _allowed_roles(row: tuple[str, ...]) -> list[str]:
    return [role for role, expected in zip(ROLES, row, strict=True) if expected not in REFUSALS]


def _bad_tokens(app: Flask) -> dict[str, str | None]:
    """No token, garbage, and a well-signed token of another session."""
    other = app.test_client()
    html = other.get("/konto/anmelden").get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match
    return {"missing": None, "garbage": "nicht-echt." + "x" * 40, "other session": match.group(1)}


def test_every_form_post_needs_a_valid_csrf_token(app: Flask, world: World) -> None:
    """Missing, forged or foreign tokens: 400 with a clear message, and nothing written."""
    rules = routes(app)
    values = url_values(world)
    bad_tokens = _bad_tokens(app)
    failures: list[str] = []
    tried = accepted = errors = 0
    covered: set[str] = set()
    for (rule_text, method), rule in sorted(rules.items()):
        if method not in STATE_CHANGING or rule_text.startswith("/api/"):
            continue
        covered.add(f"{method} {rule_text}")
        args = {name: values[name](rule_text) for name in rule.arguments}
        path = rule.build(args, append_unknown=False)[1]  # type: ignore[index]
        for role in _allowed_roles(MATRIX[(rule_text, method)]):
            for kind, token in bad_tokens.items():
                data = dict(form_data(world, rule_text))
                if token is not None:
                    data["csrf_token"] = token
                with rolled_back():
                    client = client_for(app, world, role)
                    with spy_writes() as writes:
                        response = client.open(path, method=method, data=data)
                        body = response.get_data(as_text=True)
                tried += 1
                where = f"{method} {path} as {role}, token {kind}"
                if response.status_code >= 500:
                    errors += 1
                if response.status_code != 400:
                    accepted += 1
                    failures.append(f"{where}: {response.status_code}")
                elif CSRF_MESSAGE not in body:
                    failures.append(f"{where}: 400 without the CSRF message")
                if writes.statements:
                    failures.append(f"{where}: wrote to {writes.tables}")
    record_figure(
        "csrf",
        "forms posted without a valid CSRF token (missing, forged, another session's)",
        tried,
        accepted,
        errors,
        order=20,
        details={"routes": len(covered)},
    )
    assert covered, "no state-changing route found"
    assert failures == []


def test_api_writes_ignore_the_session_cookie(app: Flask, world: World) -> None:
    """The API is CSRF-exempt because only a Bearer token authenticates it, never the cookie."""
    rules = routes(app)
    values = url_values(world)
    for (rule_text, method), rule in sorted(rules.items()):
        if method not in STATE_CHANGING or not rule_text.startswith("/api/"):
            continue
        args = {name: values[name](rule_text) for name in rule.arguments}
        path = rule.build(args, append_unknown=False)[1]  # type: ignore[index]
        with rolled_back():
            # A logged-in provider's browser, as a cross-site request would use it: no header.
            client = client_for(app, world, "provider_x")
            assert api_headers(world, "anonymous") == {}
            with spy_writes() as writes:
                response = client.open(path, method=method, json=api_body(world, rule_text))
        assert response.status_code == 401, f"{method} {path}"
        assert writes.statements == [], f"{method} {path}"


def _audit_max_id() -> int:
    return db.session.scalar(select(func.coalesce(func.max(AuditEntry.id), 0))) or 0


def test_no_get_route_changes_the_database(app: Flask, world: World) -> None:
    """Every GET route as every role: no write except logged reads (audit 'view' entries) and caches."""
    rules = routes(app)
    values = url_values(world)
    failures: list[str] = []
    tally: Counter[str] = Counter()
    tried = errors = 0
    for (rule_text, method), rule in sorted(rules.items()):
        if method != "GET":
            continue
        args = {name: values[name](rule_text) for name in rule.arguments}
        path = rule.build(args, append_unknown=False)[1]  # type: ignore[index]
        for role in ROLES:
            with rolled_back():
                before = _audit_max_id()
                client = client_for(app, world, role)
                headers: dict[str, Any] = api_headers(world, role) if "/api/" in path else {}
                with spy_writes() as writes:
                    response = client.get(path, headers=headers)
                    response.get_data()
                    response.close()
                new_actions = list(
                    db.session.scalars(select(AuditEntry.action).where(AuditEntry.id > before))
                )
            tried += 1
            if response.status_code >= 500:
                errors += 1
                failures.append(f"GET {path} as {role}: {response.status_code}")
            other = [t for t in writes.tables if t not in CACHE_TABLES and t != "audit_entry"]
            if other:
                failures.append(f"GET {path} as {role}: wrote to {other}")
            for action in new_actions:
                tally[action] += 1
                if action.rsplit(".", 1)[-1] not in READ_ACTIONS:
                    failures.append(f"GET {path} as {role}: audit action {action}")
    record_figure(
        "get-writes",
        "GET requests (every GET route x 7 roles) that changed the database",
        tried,
        sum(1 for f in failures if "wrote to" in f or "audit action" in f),
        errors,
        outcome=f"{sum(1 for f in failures if 'wrote to' in f or 'audit action' in f)} changed "
        "something (logged reads aside)",
        order=21,
        details={"logged_reads": dict(tally)},
    )
    assert failures == []
