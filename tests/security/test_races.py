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

import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.orm import Session

from kyffikus import create_app
from kyffikus.extensions import db
from kyffikus.models import (
    Adult,
    ApiToken,
    Application,
    AuditEntry,
    Category,
    Child,
    Edition,
    Household,
    Offer,
    Pass,
    PassEvent,
    Provider,
    Redemption,
    User,
    berlin_today,
)
from kyffikus.services import apitokens, passnumber
from kyffikus.services import passes as passes_service
from tests.conftest import postgres_only
from tests.conftest import test_config as base_config
from tests.security.figures import record_figure

TILLS = 50
ISSUERS = 20
CSRF_RAW = "1" * 40


@dataclass
class Committed:
    """Rows committed for real, deleted again at the end (in dependency order)."""

    engine: sa.Engine
    ids: dict[type[Any], list[int]] = field(default_factory=dict)

    def keep(self, *rows: Any) -> None:
        """Remember rows for the cleanup."""
        for row in rows:
            self.ids.setdefault(type(row), []).append(row.id)


@pytest.fixture
def race_app(_session_app: Flask, smtp_server: Any) -> Iterator[Flask]:
    """A second app on the test database: 80 pooled connections, no rate limits."""
    with _session_app.app_context():
        url = db.engine.url.render_as_string(hide_password=False)
    _box, port = smtp_server
    config = base_config(url, port)
    config.update(
        RATELIMIT_ENABLED=False,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 80, "max_overflow": 0, "pool_pre_ping": True},
    )
    app = create_app(config)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def committed(race_app: Flask) -> Iterator[Committed]:
    """A separate engine for building and deleting the race's data."""
    with race_app.app_context():
        url = db.engine.url
    engine = sa.create_engine(url)
    data = Committed(engine)
    try:
        yield data
    finally:
        _cleanup(data)
        engine.dispose()


def _cleanup(data: Committed) -> None:
    ids = data.ids
    with Session(data.engine) as s:
        users = ids.get(User, [])
        passes = list(ids.get(Pass, []))
        households = ids.get(Household, [])
        if households:
            passes += list(s.scalars(sa.select(Pass.id).where(Pass.household_id.in_(households))))
        if users:
            s.execute(sa.delete(AuditEntry).where(AuditEntry.actor_id.in_(users)))
        if passes:
            s.execute(sa.delete(Redemption).where(Redemption.pass_id.in_(passes)))
            s.execute(sa.delete(PassEvent).where(PassEvent.pass_id.in_(passes)))
            s.execute(sa.delete(Pass).where(Pass.id.in_(passes)))
        if households:
            s.execute(sa.delete(Application).where(Application.household_id.in_(households)))
            s.execute(sa.delete(Adult).where(Adult.household_id.in_(households)))
            s.execute(sa.delete(Child).where(Child.household_id.in_(households)))
            s.execute(sa.delete(Household).where(Household.id.in_(households)))
        for model in (Offer, ApiToken):
            if ids.get(model):
                s.execute(sa.delete(model).where(model.id.in_(ids[model])))
        if users:
            s.execute(sa.delete(ApiToken).where(ApiToken.user_id.in_(users)))
            s.execute(sa.delete(User).where(User.id.in_(users)))
        for model in (Provider, Category, Edition):
            if ids.get(model):
                s.execute(sa.delete(model).where(model.id.in_(ids[model])))
        s.commit()


def _run_together(n: int, work: Callable[[int], str]) -> tuple[Counter[str], list[str]]:
    """Run work(i) in n threads released at the same moment; count the outcomes."""
    barrier = threading.Barrier(n)
    outcomes: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            outcome = work(i)
        except Exception as exc:  # counted and shown, never lost
            outcome = "error"
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes, errors


def _staff_client(app: Flask, user: User) -> tuple[Any, str]:
    """A logged-in staff browser (second factor passed) and a CSRF token for its session."""
    client = app.test_client()
    now = datetime.now(UTC).timestamp()
    with client.session_transaction() as sess:
        sess.update(
            _user_id=user.get_id(),
            _fresh=True,
            login_at=now,
            seen_at=now,
            mfa_ok=True,
            csrf_token=CSRF_RAW,
        )
    token = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps(CSRF_RAW)
    return client, str(token)


def _household(tag: str, n: int) -> Household:
    household = Household(street="Markt 8", postal_code="99706", consent_at=datetime.now(UTC))
    household.adults.append(Adult(position=1, first_name="Rita", last_name=f"Rennen{tag}{n}"))
    household.children.append(Child(first_name="Kim", birth_date=date(2019, 1, 1)))
    return household


# ---- 50 tills ---------------------------------------------------------------------------------------


@postgres_only
def test_fifty_tills_redeem_a_daily_offer_through_the_api(
    race_app: Flask, committed: Committed
) -> None:
    """50 tills (each its own user and token) POST the same once-a-day redemption at once: 1 wins."""
    tag = uuid.uuid4().hex[:8]
    today = berlin_today()
    raws = [apitokens.PREFIX + secrets.token_urlsafe(32) for _i in range(TILLS)]
    with Session(committed.engine) as s:
        edition = Edition(
            number=800_000 + secrets.randbelow(100_000),
            name=f"Kassen {tag}",
            valid_from=today - timedelta(days=5),
            valid_until=today + timedelta(days=60),
        )
        category = Category(slug=f"kassen-{tag}", name_de="Kassen", name_en="Tills", position=98)
        provider = Provider(slug=f"kassen-{tag}", name=f"Freibad {tag}", description="Test")
        users = [
            User(
                email=f"kasse{i}-{tag}@example.org",
                role="provider",
                provider=provider,
                password_hash="x",
            )
            for i in range(TILLS)
        ]
        offer = Offer(
            key=f"kassen-{tag}",
            provider=provider,
            edition=edition,
            category=category,
            title="Einmal am Tag",
            discount_kind="percent",
            discount_value=10,
            redemption_limit="per_day",
            published=True,
        )
        pass_ = Pass(
            number=passnumber.generate(),
            token=passes_service.new_token(),
            status="active",
            valid_from=today - timedelta(days=1),
            valid_until=today + timedelta(days=30),
            holders=[{"first_name": "Rita", "last_name": "Rennen"}],
            children_birth_dates=[(today - timedelta(days=3000)).isoformat()],
        )
        s.add_all([edition, category, provider, *users, offer, pass_])
        s.flush()
        tokens = [
            ApiToken(
                provider_id=provider.id,
                user_id=u.id,
                name=f"Kasse {i}",
                token_hash=apitokens.hash_token(raw),
                prefix=raw[:12],
            )
            for i, (u, raw) in enumerate(zip(users, raws, strict=True))
        ]
        s.add_all(tokens)
        s.commit()
        committed.keep(edition, category, provider, *users, offer, pass_, *tokens)
        pass_token, offer_id, pass_id = pass_.token, offer.id, pass_.id

    def till(i: int) -> str:
        response = race_app.test_client().post(
            "/api/v1/redemptions",
            json={
                "code": pass_token,
                "offer_id": offer_id,
                "adults": 1,
                "children": 1,
                "idempotency_key": f"kasse-{i}-{uuid.uuid4().hex}",
            },
            headers={"Authorization": f"Bearer {raws[i]}"},
        )
        return str(response.status_code)

    outcomes, errors = _run_together(TILLS, till)
    with Session(committed.engine) as s:
        rows = s.scalar(
            sa.select(sa.func.count()).select_from(Redemption).where(Redemption.pass_id == pass_id)
        )
    server_errors = sum(n for status, n in outcomes.items() if status.startswith("5")) + len(errors)
    record_figure(
        "race-tills",
        f"tills redeeming one once-a-day offer at the same moment (API, {TILLS} threads)",
        TILLS,
        max(0, (rows or 0) - 1),
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
    tag = uuid.uuid4().hex[:8]
    rounds = 10
    with Session(committed.engine) as s:
        staff = [
            User(email=f"{k}-{tag}@example.org", role="staff", password_hash="x")
            for k in ("genehmigt", "lehnt-ab")
        ]
        households = [_household(tag, n) for n in range(rounds)]
        applications = [
            Application(
                household=h, status="submitted", eligible=True, submitted_at=datetime.now(UTC)
            )
            for h in households
        ]
        s.add_all([*staff, *households, *applications])
        s.commit()
        committed.keep(*staff, *households)
        application_ids = [a.id for a in applications]
        with race_app.app_context():
            clients = [_staff_client(race_app, user) for user in staff]
    tally: Counter[str] = Counter()
    errors: list[str] = []
    for application_id in application_ids:

        def decide(i: int, application_id: int = application_id) -> str:
            client, token = clients[i]
            if i == 0:
                url, data = f"/verwaltung/antraege/{application_id}/genehmigen", {}
            else:
                url, data = (
                    f"/verwaltung/antraege/{application_id}/ablehnen",
                    {"reason": "Gleichzeitig abgelehnt."},
                )
            status = client.post(url, data={**data, "csrf_token": token}).status_code
            return f"{'approve' if i == 0 else 'reject'} {status}"

        outcomes, round_errors = _run_together(2, decide)
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
    tag = uuid.uuid4().hex[:8]
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
    with Session(committed.engine) as s:
        staff = [
            User(email=f"ausgabe{i}-{tag}@example.org", role="staff", password_hash="x")
            for i in range(ISSUERS)
        ]
        households = [_household(tag, n) for n in range(ISSUERS)]
        applications = [
            Application(
                household=h, status="submitted", eligible=True, submitted_at=datetime.now(UTC)
            )
            for h in households
        ]
        s.add_all([*staff, *households, *applications])
        s.commit()
        committed.keep(*staff, *households)
        application_ids = [a.id for a in applications]
        with race_app.app_context():
            clients = [_staff_client(race_app, user) for user in staff]

    def approve(i: int) -> str:
        client, token = clients[i]
        url = f"/verwaltung/antraege/{application_ids[i]}/genehmigen"
        return str(client.post(url, data={"csrf_token": token}).status_code)

    outcomes, errors = _run_together(ISSUERS, approve)
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
