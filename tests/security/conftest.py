"""Shared fixtures of the security tests: one world of owners and objects, role clients, write spies.

The world has two families (A with an active pass, B with a submitted application), two providers
(X and Y, each with a user, a venue, an unlimited offer, an API token; X has recorded a redemption
of A's pass), staff and an admin. It is committed into the test's outer transaction, so views that
roll back a refusal do not take the test data with them (the outer transaction is still rolled back
at the end of the test).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import event, select

from kyffikus.extensions import db, limiter
from kyffikus.models import Application, Base, Municipality, PostalCode, User
from kyffikus.models.base import berlin_today, utcnow
from tests.conftest import login_as

ROLES = ("anonymous", "family_a", "family_b", "provider_x", "provider_y", "staff", "admin")

# Personal data of family A that must never leak into logs, other families' pages or providers'
# views (names chosen to be unmistakable in any text).
FAMILY_A = {
    "email": "annegret.vogelsang@example.de",
    "adults": [("Annegret", "Vogelsang"), ("Bartholomäus", "Vogelsang")],
    "children": [("Quirina", date(2018, 3, 14)), ("Ottokar", date(2020, 11, 2))],
    "street": "Wipperstraße 17",
}

_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
_TABLE = re.compile(
    r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?([A-Za-z_][A-Za-z0-9_]*)", re.I
)


@dataclass
class World:
    """Ids (never ORM objects: the walks roll back between requests) of everything the tests use."""

    user_ids: dict[str, int] = field(default_factory=dict)
    session_ids: dict[str, str] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)
    api_tokens: dict[str, str] = field(default_factory=dict)
    api_token_ids: dict[str, int] = field(default_factory=dict)
    provider_ids: dict[str, int] = field(default_factory=dict)
    provider_slugs: dict[str, str] = field(default_factory=dict)
    offer_ids: dict[str, int] = field(default_factory=dict)
    venue_ids: dict[str, int] = field(default_factory=dict)
    redemption_ids: dict[str, int] = field(default_factory=dict)
    pass_id: int = 0
    pass_token: str = ""
    pass_number: str = ""
    application_a: int = 0
    application_b: int = 0
    category_id: int = 0
    edition_id: int = 0
    municipality_id: int = 0
    locality_id: int = 0
    postal_code: str = ""
    confirm_token: str = ""
    reset_token: str = ""
    invite_token: str = ""


@pytest.fixture
def world(
    app: Flask,
    localities: None,
    make_user: Callable[..., Any],
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
    make_family: Callable[..., Any],
    make_edition: Callable[..., Any],
) -> World:
    """Owners of every kind with their objects, committed into the test's transaction."""
    from kyffikus.services import apitokens
    from kyffikus.services.passes import issue_pass
    from kyffikus.services.redemptions import redeem_offer
    from kyffikus.services.tokens import issue_token

    today = berlin_today()
    w = World()
    edition = make_edition(
        valid_from=today - timedelta(days=200), valid_until=today + timedelta(days=300)
    )
    w.edition_id = edition.id

    a = FAMILY_A
    household_a = make_family(
        adults=a["adults"],
        children=[born for _n, born in a["children"]],
        email=a["email"],
        street=a["street"],
    )
    for child, (first, _born) in zip(household_a.children, a["children"], strict=True):
        child.first_name = first
    application_a = Application(
        household=household_a,
        status="approved",
        submitted_at=utcnow(),
        decided_at=utcnow(),
        eligible=True,
    )
    db.session.add(application_a)
    db.session.flush()
    pass_a = issue_pass(application_a, None)
    w.pass_id, w.pass_token, w.pass_number = pass_a.id, pass_a.token, pass_a.number
    w.application_a = application_a.id

    household_b = make_family(adults=[("Berta", "Brenner")], email="berta.brenner@example.de")
    application_b = Application(
        household=household_b,
        status="submitted",
        submitted_at=utcnow(),
        eligible=True,
        consent_at=utcnow(),
    )
    db.session.add(application_b)
    db.session.flush()
    w.application_b = application_b.id

    users: dict[str, User] = {"family_a": household_a.user, "family_b": household_b.user}
    for tag in ("x", "y"):
        provider = make_provider(name=f"Anbieter {tag.upper()}", published=True)
        offer = make_offer(provider, edition=edition, limit="unlimited")
        user = make_user("provider", provider=provider, email=f"kasse-{tag}@example.org")
        _token, raw = apitokens.create_token(user, f"Kasse {tag.upper()}")
        users[f"provider_{tag}"] = user
        w.provider_ids[tag] = provider.id
        w.provider_slugs[tag] = provider.slug
        w.offer_ids[tag] = offer.id
        w.venue_ids[tag] = provider.venues[0].id
        w.api_tokens[tag] = raw
        w.api_token_ids[tag] = _token.id
        redemption = redeem_offer(
            pass_a, offer, 1, 1, user, f"welt-{tag}-{secrets.token_hex(4)}", today
        )
        w.redemption_ids[tag] = redemption.id
        w.category_id = offer.category_id
    users["staff"] = make_user("staff", email="sachbearbeitung@example.org")
    users["admin"] = make_user("admin", email="verwaltung-admin@example.org")

    unconfirmed = make_user("family", email="neu.unbestaetigt@example.de", confirmed=False)
    w.confirm_token = issue_token(unconfirmed, "confirm")
    w.reset_token = issue_token(make_user("family", email="vergesslich@example.de"), "reset")
    invited = make_user(
        "provider",
        email="eingeladen@example.org",
        provider=users["provider_x"].provider,
        confirmed=False,
    )
    invited.password_hash = None
    w.invite_token = issue_token(invited, "invite")

    municipality = db.session.scalars(select(Municipality).order_by(Municipality.id)).first()
    assert municipality is not None
    w.municipality_id = municipality.id
    w.locality_id = household_a.locality_id
    code = db.session.scalars(select(PostalCode.code).order_by(PostalCode.code)).first()
    assert code is not None
    w.postal_code = code
    for role, user in users.items():
        w.user_ids[role] = user.id
        w.session_ids[role] = user.get_id()
        w.emails[role] = user.email
    db.session.commit()
    return w


# ---- clients --------------------------------------------------------------------------------------

CSRF_RAW = "0" * 40  # the raw per-session CSRF secret we plant; the form token is signed from it


def csrf_for(app: Flask) -> str:
    """A valid CSRF form token for a client whose session holds CSRF_RAW (Flask-WTF's signing)."""
    return str(URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps(CSRF_RAW))


def client_for(app: Flask, world: World, role: str) -> FlaskClient:
    """A fresh browser of the role (logged in without the form; staff past the second factor)."""
    client = app.test_client()
    if role != "anonymous":
        user = db.session.get(User, world.user_ids[role])
        assert user is not None
        login_as(client, user)
    with client.session_transaction() as sess:
        sess["csrf_token"] = CSRF_RAW
    return client


def api_headers(world: World, role: str) -> dict[str, str]:
    """Providers call the API with their Bearer token; everyone else has only a session cookie."""
    if role in ("provider_x", "provider_y"):
        return {"Authorization": f"Bearer {world.api_tokens[role[-1]]}"}
    return {}


# ---- spies ------------------------------------------------------------------------------------------


@dataclass
class Writes:
    """INSERT/UPDATE/DELETE statements sent to the database while the spy was on."""

    statements: list[str] = field(default_factory=list)

    @property
    def tables(self) -> list[str]:
        """The tables written to, in order."""
        out = []
        for statement in self.statements:
            match = _TABLE.match(statement)
            out.append(match.group(1) if match else statement[:40])
        return out


@contextmanager
def spy_writes() -> Iterator[Writes]:
    """Record every writing statement the app sends (the walks assert refusals write nothing)."""
    writes = Writes()
    engine = db.engine

    def _before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if _WRITE.match(statement):
            writes.statements.append(statement)

    event.listen(engine, "before_cursor_execute", _before)
    try:
        yield writes
    finally:
        event.remove(engine, "before_cursor_execute", _before)


def row_counts() -> dict[str, int]:
    """Rows per table, in one query: a fingerprint of the database."""
    tables = [t for t in Base.metadata.sorted_tables if t.name != "alembic_version"]
    columns = [
        sa.select(sa.func.count()).select_from(t).scalar_subquery().label(t.name) for t in tables
    ]
    row = db.session.execute(sa.select(*columns)).one()
    return dict(zip([t.name for t in tables], row, strict=True))


@contextmanager
def rolled_back() -> Iterator[None]:
    """Run requests in a savepoint of the test's connection and undo everything they committed.

    The session is closed first so its own savepoints nest inside this one; the data the world
    committed into the outer transaction stays.
    """
    db.session.close()
    connection = db.session.get_bind()
    assert isinstance(connection, sa.Connection)
    savepoint = connection.begin_nested()
    try:
        limiter.reset()
        yield
    finally:
        db.session.close()
        if savepoint.is_active:
            savepoint.rollback()


def is_login_redirect(response: Any) -> bool:
    """A redirect to the login page (an anonymous visitor of a protected page)."""
    return response.status_code in (301, 302, 303) and response.headers.get(
        "Location", ""
    ).startswith("/konto/anmelden")


# ---- the report -------------------------------------------------------------------------------------


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Regenerate build/security-figures.md from every figure file.

    Every process does it (under xdist the controller may never load this conftest); the writes
    are atomic and the process that finishes last has seen every figure.
    """
    from tests.security.report import write_report

    write_report(quiet=True)
