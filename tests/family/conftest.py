"""Fixtures for the family tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kyffikus.extensions import db


@pytest.fixture
def family_with_pass(
    localities: None,
    make_family: Callable[..., Any],
    make_pass: Callable[..., Any],
    make_edition: Callable[..., Any],
) -> Callable[..., Any]:
    """family_with_pass(adults=..., children=...) -> (household, pass) with an active pass via issue_pass."""
    from kyffikus.models import Application
    from kyffikus.models.base import utcnow
    from kyffikus.services.passes import issue_pass

    def _make(**kwargs: Any) -> tuple[Any, Any]:
        household = make_family(**kwargs)
        application = Application(
            household=household,
            status="approved",
            submitted_at=utcnow(),
            decided_at=utcnow(),
            eligible=True,
        )
        db.session.add(application)
        db.session.flush()
        return household, issue_pass(application, None)

    return _make
