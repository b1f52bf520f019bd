"""Browser tests: the real app on 127.0.0.1, its own SQLite file and SMTP server, Debian's Chromium.

Every test here is marked `browser` and put in one xdist group, so under `make test -n 2 --dist
loadgroup` they run in one worker and share one live server. (pytest 9.2 with xdist 3.8 ignores
the group, pytest-dev/pytest-xdist#1386; each worker then starts its own live server and seed,
which works as well.) Without Chromium they are skipped with one line (CI sets
KYFFIKUS_TEST_REQUIRE_BROWSER=1, and then a missing browser fails).

Playwright drives the system's Chromium through `executable_path`; no browser is ever downloaded.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.conftest import TEST_PASSWORD, Outbox, test_config

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SCREENSHOTS = REPO / "build" / "screenshots"


def _find_chromium() -> str | None:
    """Debian's Chromium; KYFFIKUS_TEST_CHROMIUM names another binary (or a missing one, to try)."""
    wanted = os.environ.get("KYFFIKUS_TEST_CHROMIUM")
    if wanted:
        return wanted if os.path.exists(wanted) else None
    if os.path.exists("/usr/bin/chromium"):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


CHROMIUM = _find_chromium()
REQUIRE_BROWSER = os.environ.get("KYFFIKUS_TEST_REQUIRE_BROWSER") == "1"
SKIP_REASON = "Chromium not installed: browser tests skipped (apt-get install chromium)"

# Quiet, reproducible, and nothing phones home: no updates, no sync, no extensions, no QUIC.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-default-apps",
    "--disable-extensions",
    "--metrics-recording-only",
]


def pytest_configure(config: pytest.Config) -> None:
    """Know xdist's group marker also when xdist is off (-p no:xdist) under --strict-markers."""
    config.addinivalue_line(
        "markers", "xdist_group(name): run the group's tests in one xdist worker"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in tests/browser as `browser` and put them all in one xdist group.

    tryfirst: the marks must be in place before `-m "not browser"` deselects and before xdist's
    loadgroup reads the group.
    """
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.xdist_group("browser"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip every browser test with one line when Chromium is missing, or fail when CI needs it.

    A hook, not a fixture: a skip raised in a fixture is reported at each test's own line, so
    pytest -ra would print one line per test file; raised here, the lines fold into one.
    """
    if CHROMIUM is not None:
        return
    if REQUIRE_BROWSER:
        pytest.fail(
            "KYFFIKUS_TEST_REQUIRE_BROWSER=1 but Chromium is not installed "
            "(apt-get install chromium chromium-driver)",
            pytrace=False,
        )
    pytest.skip(SKIP_REASON)


# ---- Playwright on the system's Chromium ---------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch options: the system's Chromium, headless, quiet."""
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": list(CHROMIUM_ARGS),
    }


@pytest.fixture(scope="session")
def browser_with_camera(launch_browser: Callable[..., Any]) -> Iterator[Callable[[Path], Any]]:
    """browser_with_camera(y4m_path) -> a fresh Chromium whose camera shows that video.

    Chromium reads the fake camera's file when it starts, so each video needs its own launch;
    the browsers are closed at the end of the session.
    """
    launched: list[Any] = []

    def launch(y4m: Path) -> Any:
        browser = launch_browser(
            args=[
                *CHROMIUM_ARGS,
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={y4m}",
            ]
        )
        launched.append(browser)
        return browser

    yield launch
    for browser in launched:
        if browser.is_connected():
            browser.close()


# ---- the live app ---------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    """The development server's handler without a log line per request."""

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """Say nothing about successful requests."""


@dataclass
class LiveServer:
    """The app serving on 127.0.0.1, its database file, its SMTP outbox and the seeded data."""

    app: Flask
    url: str
    outbox: Outbox
    data: dict[str, Any] = field(default_factory=dict)

    def __call__(self, path: str) -> str:
        """The absolute URL of a path on the live server."""
        return self.url + path


@pytest.fixture(scope="session")
def live_server(
    smtp_server: tuple[Outbox, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The app for real on 127.0.0.1: a werkzeug server thread, a fresh SQLite file, local SMTP."""
    from flask_migrate import upgrade

    from kyffikus import create_app
    from kyffikus.extensions import db

    outbox, smtp_port = smtp_server
    db_file = tmp_path_factory.mktemp("browser-db") / "kyffikus.sqlite"
    config = test_config(f"sqlite:///{db_file}", smtp_port)
    # Logins and checks come from one address in quick succession; the limits have their own tests.
    config["RATELIMIT_ENABLED"] = False
    app = create_app(config)
    with app.app_context():
        upgrade()
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    url = f"http://127.0.0.1:{server.port}"
    # The QR code holds <BASE_URL>/v/<token>: it must point at this server for the scan to work.
    app.config["BASE_URL"] = url
    thread = threading.Thread(target=server.serve_forever, name="kyffikus-live", daemon=True)
    thread.start()
    live = LiveServer(app=app, url=url, outbox=outbox)
    # A request context: the services translate their messages (Flask-Babel needs a request).
    with app.test_request_context():
        live.data = seed(app)
        db.session.remove()
    try:
        yield live
    finally:
        server.shutdown()
        thread.join(timeout=5)
        with app.app_context():
            db.engine.dispose()


PASSWORD = TEST_PASSWORD
STAFF_EMAIL = "sachbearbeitung@landratsamt.example"
ADMIN_EMAIL = "admin@landratsamt.example"
PROVIDER_EMAIL = "kasse@possen.example"
FAMILY_EMAIL = "familie.beispiel@example.org"
PROVIDER_SLUG = "erlebnispark-possen"
SEED_REDEMPTIONS = 4


def seed(app: Flask) -> dict[str, Any]:
    """A small data set: the catalogue, staff, an admin, a provider's user, a family with a pass.

    Returns the objects' ids and keys, so the tests can fill URL parameters with real objects.
    """
    from sqlalchemy import select

    from kyffikus.extensions import db
    from kyffikus.models import Adult, Application, Child, Household, Locality, Offer, Provider
    from kyffikus.models.base import berlin_today, utcnow
    from kyffikus.models.passes import Redemption
    from kyffikus.services.accounts import create_user
    from kyffikus.services.catalogue_load import load_catalogue
    from kyffikus.services.passes import issue_pass

    load_catalogue()
    db.session.flush()
    provider = db.session.scalars(select(Provider).where(Provider.slug == PROVIDER_SLUG)).one()
    staff = create_user(STAFF_EMAIL, "staff", PASSWORD)
    admin = create_user(ADMIN_EMAIL, "admin", PASSWORD)
    provider_user = create_user(PROVIDER_EMAIL, "provider", PASSWORD, provider=provider)
    family_user = create_user(FAMILY_EMAIL, "family", PASSWORD)

    locality = db.session.scalars(
        select(Locality).where(Locality.postal_code == "99706", Locality.name == "Sondershausen")
    ).one()
    now = utcnow()
    today = berlin_today()

    def household(user: Any, first: str, last: str, street: str) -> Household:
        home = Household(
            user=user, street=street, postal_code="99706", locality=locality, consent_at=now
        )
        home.adults.append(Adult(position=1, first_name=first, last_name=last))
        home.children.append(Child(first_name="Lina", birth_date=date(today.year - 6, 5, 17)))
        db.session.add(home)
        db.session.flush()
        return home

    home = household(family_user, "Erika", "Beispiel", "Markt 8")
    approved = Application(
        household=home,
        status="approved",
        channel="online",
        submitted_at=now,
        decided_at=now,
        decided_by=staff,
        eligible=True,
        consent_at=now,
    )
    db.session.add(approved)
    db.session.flush()
    pass_ = issue_pass(approved, staff)

    # A second household (counter, no account) whose application waits in the staff queue.
    waiting_home = household(None, "Max", "Wartend", "Hauptstraße 3")
    waiting = Application(
        household=waiting_home,
        status="submitted",
        channel="counter",
        submitted_at=now,
        eligible=True,
        consent_at=now,
        entered_by_id=staff.id,
    )
    db.session.add(waiting)
    db.session.flush()

    offer = db.session.scalars(
        select(Offer)
        .where(Offer.provider_id == provider.id, Offer.published.is_(True))
        .order_by(Offer.id)
    ).first()
    assert offer is not None, f"the catalogue has no published offer of {PROVIDER_SLUG}"
    # Links as they arrive by mail: an unconfirmed account, a password reset, an invitation.
    from kyffikus.services.tokens import issue_token

    unconfirmed = create_user("noch.unbestaetigt@example.org", "family", PASSWORD, confirmed=False)
    invited = create_user(
        "eingeladen@possen.example", "provider", None, provider=provider, confirmed=False
    )
    tokens = {
        "confirm": issue_token(unconfirmed, "confirm"),
        "reset": issue_token(family_user, "reset"),
        "invite": issue_token(invited, "invite"),
    }

    # Four earlier redemptions: the statistics show "<5" for them, and 5 after the journey's one.
    redemptions = [
        Redemption(
            pass_=pass_,
            offer=offer,
            provider=provider,
            venue=provider.venues[0],
            adults=1,
            children=1,
            redeemed_at=datetime.now(UTC),
            redeemed_on=today,
            limit_key=None,
            by_id=provider_user.id,
        )
        for _ in range(SEED_REDEMPTIONS)
    ]
    db.session.add_all(redemptions)
    redemption = redemptions[0]
    db.session.commit()
    return {
        "staff_id": staff.id,
        "admin_id": admin.id,
        "provider_user_id": provider_user.id,
        "family_user_id": family_user.id,
        "provider_id": provider.id,
        "provider_slug": provider.slug,
        "provider_name": provider.name,
        "offer_id": offer.id,
        "offer_key": offer.key,
        "edition_id": offer.edition_id,
        "household_id": home.id,
        "application_id": approved.id,
        "waiting_application_id": waiting.id,
        "waiting_household_id": waiting_home.id,
        "pass_id": pass_.id,
        "pass_number": pass_.number,
        "pass_token": pass_.token,
        "redemption_id": redemption.id,
        "locality_id": locality.id,
        "tokens": tokens,
        "postal_code": locality.postal_code,
        "venue_id": provider.venues[0].id,
        "category_id": offer.category_id,
        "municipality_id": locality.municipality_id,
    }


ROLE_EMAILS = {
    "family": FAMILY_EMAIL,
    "provider": PROVIDER_EMAIL,
    "staff": STAFF_EMAIL,
    "admin": ADMIN_EMAIL,
}


def login(page: Any, live: LiveServer, email: str, password: str = PASSWORD) -> None:
    """Log in through the login form, as a person would."""
    response = page.goto(live("/konto/anmelden"))
    assert response is not None
    assert response.status == 200, (
        f"login page: HTTP {response.status}: {page.inner_text('body')[:500]}"
    )
    page.get_by_label("E-Mail-Adresse").fill(email)
    page.get_by_label("Passwort", exact=True).fill(password)
    page.get_by_role("main").get_by_role("button", name="Anmelden").click()
    page.wait_for_load_state()
    assert "/konto/anmelden" not in page.url, f"login as {email} failed: {page.url}"


@pytest.fixture(scope="session")
def role_state(
    live_server: LiveServer, browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path | None]:
    """role_state(role) -> that role's logged-in browser state (cookies), from one form login."""
    folder = tmp_path_factory.mktemp("states")
    states: dict[str, Path | None] = {"anonymous": None}

    def state(role: str) -> Path | None:
        if role not in states:
            context = browser.new_context(locale="de-DE")
            page = context.new_page()
            login(page, live_server, ROLE_EMAILS[role])
            path = folder / f"{role}.json"
            context.storage_state(path=path)
            context.close()
            states[role] = path
        return states[role]

    return state
