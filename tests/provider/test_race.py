"""Two (or twenty-four) tills redeeming the same once-per-day offer for the same pass at once.

This cannot run inside the test's rolled-back transaction: every till has its own connection and
really commits. The data is created with real commits through a separate engine and deleted after.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from kyffikus.extensions import db
from kyffikus.models import (
    AuditEntry,
    Category,
    Edition,
    Offer,
    Pass,
    PassEvent,
    Provider,
    Redemption,
    User,
    berlin_today,
)
from kyffikus.services import Conflict, passnumber
from kyffikus.services.redemptions import redeem_offer
from tests.conftest import postgres_only

TILLS = 24


@dataclass
class RaceData:
    """Ids of the committed rows the tills race for."""

    engine: sa.Engine
    pass_id: int
    offer_id: int
    user_ids: list[int]


@pytest.fixture
def real_app(_session_app: Flask) -> Flask:
    """The session's app with its real session (not the test's rolled-back transaction)."""
    return _session_app


@pytest.fixture
def race_data(_session_app: Flask) -> Iterator[RaceData]:
    """A provider, its people, a daily offer and a pass, committed for real; deleted afterwards."""
    with _session_app.app_context():
        url = db.engine.url
    engine = sa.create_engine(url, pool_size=TILLS + 4, max_overflow=0)
    tag = uuid.uuid4().hex[:10]
    today = berlin_today()
    with Session(engine) as session:
        edition = Edition(
            number=900_000 + secrets.randbelow(90_000),
            name=f"Rennen {tag}",
            valid_from=today - timedelta(days=10),
            valid_until=today + timedelta(days=100),
        )
        category = Category(slug=f"rennen-{tag}", name_de="Rennen", name_en="Race", position=99)
        provider = Provider(slug=f"rennen-{tag}", name=f"Rennbahn {tag}", description="Test")
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
            key=f"rennen-{tag}",
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
            token=secrets.token_urlsafe(24),
            status="active",
            valid_from=today - timedelta(days=1),
            valid_until=today + timedelta(days=50),
            holders=[{"first_name": "Rita", "last_name": "Rennen"}],
            children_birth_dates=[(today - timedelta(days=3000)).isoformat()],
        )
        session.add_all([edition, category, provider, *users, offer, pass_])
        session.commit()
        data = RaceData(engine, pass_.id, offer.id, [u.id for u in users])
        ids = (edition.id, category.id, provider.id)
    try:
        yield data
    finally:
        with Session(engine) as session:
            session.execute(sa.delete(AuditEntry).where(AuditEntry.actor_id.in_(data.user_ids)))
            session.execute(sa.delete(Redemption).where(Redemption.pass_id == data.pass_id))
            session.execute(sa.delete(PassEvent).where(PassEvent.pass_id == data.pass_id))
            session.execute(sa.delete(Pass).where(Pass.id == data.pass_id))
            session.execute(sa.delete(Offer).where(Offer.id == data.offer_id))
            session.execute(sa.delete(User).where(User.id.in_(data.user_ids)))
            session.execute(sa.delete(Provider).where(Provider.id == ids[2]))
            session.execute(sa.delete(Category).where(Category.id == ids[1]))
            session.execute(sa.delete(Edition).where(Edition.id == ids[0]))
            session.commit()
        engine.dispose()


@postgres_only
def test_racing_tills_record_exactly_one_daily_redemption(
    real_app: Flask, race_data: RaceData, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = real_app
    # Every thread gets its own session and connection from the big pool.
    sessions = scoped_session(
        sessionmaker(bind=race_data.engine, expire_on_commit=False), scopefunc=threading.get_ident
    )
    monkeypatch.setattr(db, "session", sessions)
    barrier = threading.Barrier(TILLS)
    outcomes: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    today = berlin_today()

    def till(i: int) -> None:
        outcome = "error"
        try:
            with app.test_request_context():
                session = db.session
                pass_ = session.get(Pass, race_data.pass_id)
                offer = session.get(Offer, race_data.offer_id)
                user = session.get(User, race_data.user_ids[i])
                assert pass_ is not None
                assert offer is not None
                assert user is not None
                _edition = offer.edition  # loaded before the start, so all tills insert at once
                barrier.wait(timeout=30)
                try:
                    redeem_offer(pass_, offer, 1, 1, user, f"till-{i}-{uuid.uuid4().hex}", today)
                    session.commit()
                    outcome = "recorded"
                except Conflict:
                    session.rollback()
                    outcome = "conflict"
        except Exception as exc:  # any other failure is counted and shown
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            sessions.remove()
            with lock:
                outcomes[outcome] += 1

    threads = [threading.Thread(target=till, args=(i,)) for i in range(TILLS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    with Session(race_data.engine) as session:
        rows = session.scalar(
            sa.select(sa.func.count())
            .select_from(Redemption)
            .where(Redemption.pass_id == race_data.pass_id)
        )
    print(
        f"\nrace: tried {TILLS}, recorded {outcomes['recorded']}, conflicts {outcomes['conflict']}, "
        f"errors {outcomes['error']}, rows in the database {rows}"
    )
    assert errors == []
    assert outcomes == Counter({"recorded": 1, "conflict": TILLS - 1})
    assert rows == 1


@postgres_only
def test_racing_retries_with_one_key_answer_one_redemption(
    real_app: Flask, race_data: RaceData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same request sent by several threads at once (a retrying client) is recorded once."""
    app = real_app
    sessions = scoped_session(
        sessionmaker(bind=race_data.engine, expire_on_commit=False), scopefunc=threading.get_ident
    )
    monkeypatch.setattr(db, "session", sessions)
    n = 8
    barrier = threading.Barrier(n)
    ids: list[Any] = []
    lock = threading.Lock()
    today = berlin_today()

    def retry() -> None:
        try:
            with app.test_request_context():
                session = db.session
                pass_ = session.get(Pass, race_data.pass_id)
                offer = session.get(Offer, race_data.offer_id)
                user = session.get(User, race_data.user_ids[0])
                _edition = offer.edition  # type: ignore[union-attr]
                barrier.wait(timeout=30)
                redemption = redeem_offer(pass_, offer, 1, 0, user, "same-key-for-all", today)  # type: ignore[arg-type]
                session.commit()
                with lock:
                    ids.append(redemption.id)
        except Exception as exc:
            with lock:
                ids.append(f"{type(exc).__name__}: {exc}")
        finally:
            sessions.remove()

    threads = [threading.Thread(target=retry) for _i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    print(f"\nretries: tried {n}, answers {Counter(map(str, ids))}")
    assert len(ids) == n
    assert len(set(ids)) == 1
    assert isinstance(ids[0], int)
