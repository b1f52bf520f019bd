"""Fixtures for the provider side: two providers with offers, a family's pass, API tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event

from kyffikus.extensions import db
from kyffikus.models import Edition, Offer, Pass, Provider, User, berlin_today


@dataclass
class Till:
    """A provider, one of its people and its offers by limit."""

    provider: Provider
    user: User
    offers: dict[str, Offer] = field(default_factory=dict)

    @property
    def per_day(self) -> Offer:
        """The once-per-day offer."""
        return self.offers["per_day"]

    @property
    def per_edition(self) -> Offer:
        """The once-per-edition offer."""
        return self.offers["per_edition"]

    @property
    def unlimited(self) -> Offer:
        """The unlimited offer."""
        return self.offers["unlimited"]


@pytest.fixture
def today() -> date:
    """The Berlin day the views use."""
    return berlin_today()


@pytest.fixture
def edition(make_edition: Callable[..., Edition], today: date) -> Edition:
    """An edition covering today."""
    return make_edition(
        valid_from=today - timedelta(days=60), valid_until=today + timedelta(days=400)
    )


@pytest.fixture
def make_till(
    make_provider: Callable[..., Provider],
    make_user: Callable[..., User],
    make_offer: Callable[..., Offer],
    edition: Edition,
) -> Callable[..., Till]:
    """make_till(name) -> a provider with a user and one offer per limit in the current edition."""

    def _make(name: str | None = None) -> Till:
        provider = make_provider(name=name)
        user = make_user("provider", provider=provider)
        till = Till(provider, user)
        for limit in ("per_day", "per_edition", "unlimited"):
            till.offers[limit] = make_offer(
                provider, edition=edition, limit=limit, title=f"{provider.name}: {limit}"
            )
        # Committed (a released savepoint): a view's rollback after a refusal keeps the fixtures.
        db.session.commit()
        return till

    return _make


@pytest.fixture
def till(make_till: Callable[..., Till]) -> Till:
    """Provider A."""
    return make_till("Freibad Sondershausen")


@pytest.fixture
def other_till(make_till: Callable[..., Till]) -> Till:
    """Provider B."""
    return make_till("Kyffhäuser-Therme")


@pytest.fixture
def family_pass(
    make_family: Callable[..., Any], make_pass: Callable[..., Pass], today: date
) -> Pass:
    """A valid pass: two adults, two children under 18 and one who is already 19."""
    household = make_family(
        adults=[("Anna", "Muster"), ("Bernd", "Muster")],
        children=[
            date(today.year - 10, 3, 1),
            date(today.year - 5, 1, 15),
            date(today.year - 19, 6, 30),
        ],
    )
    pass_ = make_pass(
        household, valid_from=today - timedelta(days=30), valid_until=today + timedelta(days=300)
    )
    db.session.commit()
    return pass_


@pytest.fixture
def pass_with_status(
    make_family: Callable[..., Any], make_pass: Callable[..., Pass], today: date
) -> Callable[[str], Pass]:
    """pass_with_status("valid" | "expired" | "revoked" | "replaced" | "not_yet_valid") -> Pass."""

    def _make(kind: str) -> Pass:
        pass_ = _build(kind)
        db.session.commit()
        return pass_

    def _build(kind: str) -> Pass:
        household = make_family(
            adults=[("Clara", "Beispiel")], children=[date(today.year - 8, 2, 2)]
        )
        if kind == "expired":
            return make_pass(
                household,
                status="expired",
                valid_from=today - timedelta(days=400),
                valid_until=today - timedelta(days=10),
            )
        if kind == "not_yet_valid":
            return make_pass(
                household,
                valid_from=today + timedelta(days=5),
                valid_until=today + timedelta(days=300),
            )
        status = "active" if kind == "valid" else kind
        pass_ = make_pass(
            household,
            status=status,
            valid_from=today - timedelta(days=30),
            valid_until=today + timedelta(days=300),
        )
        if status != "active":
            from kyffikus.models.base import utcnow

            pass_.status_changed_at = utcnow()
            db.session.flush()
        return pass_

    return _make


@pytest.fixture
def api_token(app: Any, till: Till) -> str:
    """A live API token of provider A (the raw value)."""
    from kyffikus.services.apitokens import create_token

    _token, raw = create_token(till.user, "Kasse 1")
    db.session.commit()
    return raw


@pytest.fixture
def other_api_token(app: Any, other_till: Till) -> str:
    """A live API token of provider B."""
    from kyffikus.services.apitokens import create_token

    _token, raw = create_token(other_till.user, "Kasse B")
    db.session.commit()
    return raw


def bearer(raw: str) -> dict[str, str]:
    """The Authorization header for a raw token."""
    return {"Authorization": f"Bearer {raw}"}


def check_page(client: FlaskClient, code: str, **kwargs: Any) -> Any:
    """POST a code to the check result page with a CSRF token from the check page."""
    from tests.conftest import post_form

    return post_form(
        client,
        "/anbieter/pruefen/ergebnis",
        {"code": code},
        token_from="/anbieter/pruefen",
        **kwargs,
    )


@pytest.fixture(autouse=True)
def _request_context(app: Any) -> Any:
    """Services speak German through Flask-Babel, which reads the locale from a request."""
    with app.test_request_context():
        yield


@contextmanager
def count_queries() -> Iterator[list[str]]:
    """Collect every SQL statement sent while the block runs."""
    statements: list[str] = []

    def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # The test's own savepoints (its rolled-back transaction) are not the check's queries.
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            statements.append(statement)

    db.session.flush()
    event.listen(db.engine, "before_cursor_execute", _count)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", _count)
