"""Races on PostgreSQL, through the whole stack: threads released together by a barrier.

Like tests/provider/test_race.py, this cannot run inside the test's rolled-back transaction: each
request has its own connection and really commits. A dedicated app (a pool big enough for every
thread, rate limits off) serves the requests; the data is committed through a separate engine and
deleted afterwards.

Covered elsewhere, not repeated here:
- 24 tills calling redeem_offer() for one daily offer, and one key retried by 8 threads:
  tests/provider/test_race.py;
- approve racing approve and approve racing reject (5 rounds each, never two passes):
  tests/family/test_family_review.py::test_racing_decisions_never_yield_two_passes.
Here: 50 tills through POST /api/v1/redemptions, staff approving racing staff rejecting over HTTP,
and 20 staff members approving 20 applications at once while the number and token generators
collide on purpose.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from kyffikus.models import Adult, Application, Child, Household, Pass, User
from kyffikus.services import passes as passes_service
from kyffikus.services import passnumber
from tests.committed import (
    Committed,
    app_of_its_own,
    commit_tills,
    committed_rows,
    database_url,
    run_together,
)
from tests.conftest import login_as, postgres_only
from tests.security.conftest import CSRF_RAW, csrf_for
from tests.security.figures import record_figure

TILLS = 50
ISSUERS = 20


@pytest.fixture
def race_app(_session_app: Flask, smtp_server: Any) -> Iterator[Flask]:
    """A second app on the test database: 80 pooled connections, no rate limits."""
    _box, port = smtp_server
    pool = {"pool_size": 80, "max_overflow": 0}
    with app_of_its_own(database_url(_session_app), port, SQLALCHEMY_ENGINE_OPTIONS=pool) as app:
        yield app


@pytest.fixture
def committed(_session_app: Flask) -> Iterator[Committed]:
    """A separate engine for building and deleting the race's data."""
    with committed_rows(database_url(_session_app)) as rows:
        yield rows


def _staff_client(app: Flask, user: User) -> tuple[FlaskClient, str]:
    """A logged-in staff browser (second factor passed) and a CSRF token for its session."""
    client = login_as(app.test_client(), user)
    with client.session_transaction() as sess:
        sess["csrf_token"] = CSRF_RAW
    return client, csrf_for(app)


def _household(tag: str, n: int) -> Household:
    household = Household(street="Markt 8", postal_code="99706", consent_at=datetime.now(UTC))
    household.adults.append(Adult(position=1, first_name="Rita", last_name=f"Rennen{tag}{n}"))
    household.children.append(Child(first_name="Kim", birth_date=date(2019, 1, 1)))
    return household


def _applications(
    committed: Committed, app: Flask, staff_names: list[str], count: int
) -> tuple[list[tuple[FlaskClient, str]], list[int]]:
    """Staff members' browsers (with CSRF tokens) and `count` submitted applications, committed."""
    tag = uuid.uuid4().hex[:8]
    with Session(committed.engine, expire_on_commit=False) as s:
        staff = [
            User(email=f"{name}-{tag}@example.org", role="staff", password_hash="x")
            for name in staff_names
        ]
        households = [_household(tag, n) for n in range(count)]
        applications = [
            Application(
                household=h, status="submitted", eligible=True, submitted_at=datetime.now(UTC)
            )
            for h in households
        ]
        s.add_all([*staff, *households, *applications])
        s.commit()
        committed.keep(*staff, *households)
    return [_staff_client(app, user) for user in staff], [a.id for a in applications]


# ---- 50 tills ---------------------------------------------------------------------------------------


@postgres_only
def test_fifty_tills_redeem_a_daily_offer_through_the_api(
    race_app: Flask, committed: Committed
) -> None:
    """50 tills (each its own user and token) POST the same once-a-day redemption at once: 1 wins."""
    tills = commit_tills(committed, "Kassen", TILLS, api_tokens=True)

    def till(i: int, start: Callable[[], None]) -> str:
        start()
        response = race_app.test_client().post(
            "/api/v1/redemptions",
            json={
                "code": tills.pass_token,
                "offer_id": tills.offer_id,
                "adults": 1,
                "children": 1,
                "idempotency_key": f"kasse-{i}-{uuid.uuid4().hex}",
            },
            headers={"Authorization": f"Bearer {tills.api_tokens[i]}"},
        )
        return str(response.status_code)

    outcomes, errors = run_together(TILLS, till)
    rows = committed.redemptions(tills.pass_id)
    server_errors = sum(n for status, n in outcomes.items() if status.startswith("5")) + len(errors)
    record_figure(
        "race-tills",
        f"tills redeeming one once-a-day offer at the same moment (API, {TILLS} threads)",
        TILLS,
        max(0, rows - 1),
        server_errors,
        outcome=f"{rows} recorded (1 allowed), {outcomes.get('409', 0)} refused as used",
        order=70,
        details=dict(outcomes),
    )
    assert errors == []
    assert outcomes == Counter({"201": 1, "409": TILLS - 1})
    assert rows == 1


# ---- approve racing reject over HTTP -------------------------------------------------------------


@postgres_only
def test_approve_racing_reject_over_http_never_two_passes(
    race_app: Flask, committed: Committed
) -> None:
    """Ten rounds of two staff members pressing approve and reject on one application together."""
    rounds = 10
    clients, application_ids = _applications(committed, race_app, ["genehmigt", "lehnt-ab"], rounds)
    tally: Counter[str] = Counter()
    errors: list[str] = []
    for application_id in application_ids:

        def decide(i: int, start: Callable[[], None], application_id: int = application_id) -> str:
            client, token = clients[i]
            start()
            if i == 0:
                url, data = f"/verwaltung/antraege/{application_id}/genehmigen", {}
            else:
                url, data = (
                    f"/verwaltung/antraege/{application_id}/ablehnen",
                    {"reason": "Gleichzeitig abgelehnt."},
                )
            status = client.post(url, data={**data, "csrf_token": token}).status_code
            return f"{'approve' if i == 0 else 'reject'} {status}"

        outcomes, round_errors = run_together(2, decide)
        tally.update(outcomes)
        errors += round_errors
    with Session(committed.engine) as s:
        passes = s.scalar(
            sa.select(sa.func.count())
            .select_from(Pass)
            .where(Pass.application_id.in_(application_ids))
        )
        statuses = Counter(
            s.scalars(sa.select(Application.status).where(Application.id.in_(application_ids)))
        )
    winners = tally["approve 302"] + tally["reject 302"]
    record_figure(
        "race-decisions",
        f"approve racing reject on one application over HTTP ({rounds} rounds x 2 staff)",
        rounds * 2,
        (passes or 0) - statuses["approved"],
        sum(n for k, n in tally.items() if k.endswith(("500", "503"))) + len(errors),
        outcome=f"{winners} decisions won for {rounds} applications, {passes} passes for "
        f"{statuses['approved']} approvals",
        order=71,
        details=dict(tally),
    )
    assert errors == []
    assert winners == rounds  # exactly one decision per application
    assert tally["approve 409"] + tally["reject 409"] == rounds
    assert passes == statuses["approved"]
    assert statuses["approved"] + statuses["rejected"] == rounds


# ---- 20 issuers -------------------------------------------------------------------------------------


@postgres_only
def test_twenty_passes_issued_at_once_are_all_distinct(
    race_app: Flask, committed: Committed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 staff approve 20 applications at once; every thread's first number and token collide."""
    collide_number, collide_token = passnumber.generate(), passes_service.new_token()
    local = threading.local()
    real_generate, real_token = passnumber.generate, passes_service.new_token

    def generate() -> str:
        # The first draw of every thread is the same number: a collision the service must survive.
        if not getattr(local, "number_drawn", False):
            local.number_drawn = True
            return collide_number
        return real_generate()

    def new_token() -> str:
        if not getattr(local, "token_drawn", False):
            local.token_drawn = True
            return collide_token
        return real_token()

    monkeypatch.setattr(passnumber, "generate", generate)
    monkeypatch.setattr(passes_service, "new_token", new_token)
    clients, application_ids = _applications(
        committed, race_app, [f"ausgabe{i}" for i in range(ISSUERS)], ISSUERS
    )

    def approve(i: int, start: Callable[[], None]) -> str:
        client, token = clients[i]
        url = f"/verwaltung/antraege/{application_ids[i]}/genehmigen"
        start()
        return str(client.post(url, data={"csrf_token": token}).status_code)

    outcomes, errors = run_together(ISSUERS, approve)
    with Session(committed.engine) as s:
        rows = s.execute(
            sa.select(Pass.number, Pass.token).where(Pass.application_id.in_(application_ids))
        ).all()
    numbers = {r.number for r in rows}
    tokens = {r.token for r in rows}
    duplicates = (len(rows) - len(numbers)) + (len(rows) - len(tokens))
    record_figure(
        "race-issuing",
        f"passes issued at the same moment ({ISSUERS} threads, generators colliding on purpose)",
        ISSUERS,
        duplicates,
        sum(n for k, n in outcomes.items() if k.startswith("5")) + len(errors),
        outcome=f"{len(rows)} issued, {len(numbers)} distinct numbers, {len(tokens)} distinct tokens",
        order=72,
        details=dict(outcomes),
    )
    assert errors == []
    assert outcomes == Counter({"302": ISSUERS})
    assert len(rows) == ISSUERS
    assert len(numbers) == ISSUERS
    assert len(tokens) == ISSUERS
    assert all(passnumber.is_valid(n) for n in numbers)
