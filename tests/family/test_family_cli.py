"""`flask demo load` and `flask passes expire`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from kyffikus.cli import DEMO_ACCOUNTS, DEMO_PASSWORD
from kyffikus.extensions import db
from kyffikus.models import Household, Pass, User
from kyffikus.models.base import berlin_today
from kyffikus.services.passwords import verify_password


def test_demo_load_creates_every_role_and_a_family_with_a_pass(runner, catalogue) -> None:
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    assert DEMO_PASSWORD in result.output
    for email, role, _label in DEMO_ACCOUNTS:
        assert email in result.output
        user = db.session.scalars(select(User).where(User.email == email)).one()
        assert user.role == role
        assert user.email_confirmed_at is not None
        assert verify_password(user.password_hash, DEMO_PASSWORD)
    provider_user = db.session.scalars(select(User).where(User.role == "provider")).one()
    assert provider_user.provider.slug == "erlebnispark-possen"
    family = db.session.scalars(select(User).where(User.email == "familie@demo.kyffikus.de")).one()
    pass_ = db.session.scalars(select(Pass).where(Pass.status == "active")).one()
    assert pass_.household.user_id == family.id
    assert pass_.grouped_number in result.output

    # Idempotent: a second run changes nothing and prints the same logins.
    again = runner.invoke(args=["demo", "load"])
    assert again.exit_code == 0, again.output
    assert db.session.scalar(select(func.count()).select_from(User)) == len(DEMO_ACCOUNTS)
    assert db.session.scalar(select(func.count()).select_from(Household)) == 1
    assert db.session.scalar(select(func.count()).select_from(Pass)) == 1


def test_demo_load_works_without_a_catalogue(runner) -> None:
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    assert "Demo-Anbieter" in result.output


def test_demo_load_refuses_in_production(app, runner, monkeypatch) -> None:
    monkeypatch.delenv("KYFFIKUS_DEMO", raising=False)
    monkeypatch.setitem(app.config, "TESTING", False)
    monkeypatch.setitem(app.config, "DEBUG", False)
    monkeypatch.setitem(app.config, "ENV", "production")
    monkeypatch.setitem(app.config, "DEMO", False)
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 1
    assert "KYFFIKUS_DEMO=1" in result.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 0
    monkeypatch.setenv("KYFFIKUS_DEMO", "1")
    assert runner.invoke(args=["demo", "load"]).exit_code == 0


def test_bootstrap_loads_the_demo_on_an_empty_database(runner) -> None:
    result = runner.invoke(args=["bootstrap"])
    assert result.exit_code == 0, result.output
    assert "familie@demo.kyffikus.de" in result.output
    assert db.session.scalar(select(func.count()).select_from(Pass)) == 1


def test_passes_expire(runner, localities, family_with_pass) -> None:
    _h1, current = family_with_pass()
    _h2, old = family_with_pass()
    old.valid_until = berlin_today() - timedelta(days=1)
    old.valid_from = old.valid_until - timedelta(days=30)
    db.session.flush()
    result = runner.invoke(args=["passes", "expire"])
    assert result.exit_code == 0, result.output
    assert "Als abgelaufen markiert: 1 Familienpass." in result.output
    assert (old.status, current.status) == ("expired", "active")
    later = (current.valid_until + timedelta(days=1)).isoformat()
    result = runner.invoke(args=["passes", "expire", "--on", later])
    assert "Als abgelaufen markiert: 1 Familienpass." in result.output
    assert current.status == "expired"
