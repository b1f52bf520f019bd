"""Data committed for real, for tests the rolled-back test transaction cannot serve.

Threads racing for one pass, and an app of its own behind a proxy that is cut, each work on their
own connections, which never see the test's savepoint. Their data is committed through an engine
of its own and deleted again when the test ends (Committed.delete_all), in dependency order.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask
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
from tests.conftest import test_config


def database_url(app: Flask) -> str:
    """The URL of the app's database, password included (for an engine or an app of its own)."""
    with app.app_context():
        return db.engine.url.render_as_string(hide_password=False)


@contextmanager
def app_of_its_own(url: str, smtp_port: int, **config: Any) -> Iterator[Flask]:
    """An app on `url` whose requests run real transactions (no test savepoint); no rate limits."""
    app = create_app({**test_config(url, smtp_port), "RATELIMIT_ENABLED": False, **config})
    try:
        yield app
    finally:
        with app.app_context():
            db.engine.dispose()


# ---- committed rows -------------------------------------------------------------------------------


@dataclass
class Committed:
    """Rows committed through an engine of its own; delete_all() removes them and what refers to them."""

    engine: sa.Engine
    ids: dict[type[Any], list[int]] = field(default_factory=dict)

    def keep(self, *rows: Any) -> None:
        """Remember rows (committed, so with their ids) for the clean-up."""
        for row in rows:
            self.ids.setdefault(type(row), []).append(row.id)

    def redemptions(self, pass_id: int) -> int:
        """How many redemptions of the pass are committed."""
        with Session(self.engine) as s:
            count = sa.select(sa.func.count()).select_from(Redemption)
            return s.scalar(count.where(Redemption.pass_id == pass_id)) or 0

    def delete_all(self) -> None:
        """Delete the kept rows and what the app wrote about them (passes of kept households too)."""
        ids = self.ids
        with Session(self.engine) as s:
            if self.engine.dialect.name == "postgresql":
                # Never hang the suite on a stray lock: fail after a while instead.
                s.execute(sa.text("SET lock_timeout = '30s'"))
            users = ids.get(User, [])
            passes = list(ids.get(Pass, []))
            households = ids.get(Household, [])
            if households:
                passes += s.scalars(sa.select(Pass.id).where(Pass.household_id.in_(households)))
            if users:
                s.execute(sa.delete(AuditEntry).where(AuditEntry.actor_id.in_(users)))
            if passes:
                s.execute(sa.delete(Redemption).where(Redemption.pass_id.in_(passes)))
                s.execute(sa.delete(PassEvent).where(PassEvent.pass_id.in_(passes)))
                s.execute(sa.delete(Pass).where(Pass.id.in_(passes)))
            if households:
                for model in (Application, Adult, Child):
                    s.execute(sa.delete(model).where(model.household_id.in_(households)))
                s.execute(sa.delete(Household).where(Household.id.in_(households)))
            if users:
                s.execute(sa.delete(ApiToken).where(ApiToken.user_id.in_(users)))
            for model in (Offer, ApiToken, User, Provider, Category, Edition):
                if ids.get(model):
                    s.execute(sa.delete(model).where(model.id.in_(ids[model])))
            s.commit()


@contextmanager
def committed_rows(url: str, **engine_options: Any) -> Iterator[Committed]:
    """An engine of its own on `url` for committing a test's rows; they are deleted at the end."""
    engine = sa.create_engine(url, **engine_options)
    committed = Committed(engine)
    try:
        yield committed
    finally:
        try:
            committed.delete_all()
        finally:
            engine.dispose()


@dataclass
class Tills:
    """A provider's tills (a user each, with an API token if asked), a daily offer, a valid pass."""

    users: list[User]  # detached with their columns loaded: login_as() works on them
    api_tokens: list[str]  # the raw tokens, one per user; empty unless asked for
    offer_id: int
    pass_id: int
    pass_token: str
    pass_number: str

    @property
    def user_ids(self) -> list[int]:
        """The tills' user ids."""
        return [user.id for user in self.users]


def commit_tills(committed: Committed, name: str, count: int, *, api_tokens: bool = False) -> Tills:
    """Commit a provider called `name` with `count` tills, a once-a-day offer and a pass for today."""
    tag = f"{name.lower()}-{uuid.uuid4().hex[:8]}"
    today = berlin_today()
    with Session(committed.engine, expire_on_commit=False) as s:
        edition = Edition(
            number=700_000 + secrets.randbelow(290_000),
            name=f"{name} {tag}",
            valid_from=today - timedelta(days=10),
            valid_until=today + timedelta(days=100),
        )
        category = Category(slug=tag, name_de=name, name_en=name, position=99)
        provider = Provider(slug=tag, name=f"{name} {tag}", description="Test")
        users = [
            User(
                email=f"kasse{i}-{tag}@example.org",
                role="provider",
                provider=provider,
                password_hash="x",
            )
            for i in range(count)
        ]
        offer = Offer(
            key=tag,
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
            holders=[{"first_name": "Rita", "last_name": name}],
            children_birth_dates=[(today - timedelta(days=3000)).isoformat()],
        )
        s.add_all([edition, category, provider, *users, offer, pass_])
        s.flush()
        raws: list[str] = []
        tokens: list[ApiToken] = []
        for i, user in enumerate(users if api_tokens else []):
            raws.append(apitokens.PREFIX + secrets.token_urlsafe(32))
            tokens.append(
                ApiToken(
                    provider_id=provider.id,
                    user_id=user.id,
                    name=f"Kasse {i}",
                    token_hash=apitokens.hash_token(raws[-1]),
                    prefix=raws[-1][:12],
                )
            )
        s.add_all(tokens)
        s.commit()
        committed.keep(edition, category, provider, *users, offer, pass_, *tokens)
    return Tills(users, raws, offer.id, pass_.id, pass_.token, pass_.number)


# ---- threads released together --------------------------------------------------------------------


def run_together(
    n: int, work: Callable[[int, Callable[[], None]], str]
) -> tuple[Counter[str], list[str]]:
    """Run work(i, start) in n threads and count what they return.

    start() holds a thread until all n have called it, then releases them at the same moment (a
    thread prepares before it, races after it). An exception counts as "error" and is listed.
    """
    barrier = threading.Barrier(n)
    outcomes: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()

    def start() -> None:
        barrier.wait(timeout=60)

    def run(i: int) -> None:
        try:
            outcome = work(i, start)
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
