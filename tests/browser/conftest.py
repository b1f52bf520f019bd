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
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.browser.live import ROLE_EMAILS, LiveServer, QuietHandler, login, seed
from tests.conftest import Outbox, test_config

HERE = Path(__file__).resolve().parent


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
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
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
