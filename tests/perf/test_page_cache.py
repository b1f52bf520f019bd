"""Kept pages (kyffikus.pagecache): what a visitor gets is the page a fresh render gives.

The directory and the frame of the check page are rendered once and then filled in per request.
These tests compare the kept answer with a fresh render of the same request (the cache switched
off), byte for byte once the parts that differ on every request anyway (CSP nonce, CSRF token,
the redemption forms' retry keys) are set aside, and check those parts are fresh and valid.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kyffikus import pagecache
from kyffikus.extensions import db
from kyffikus.models import Edition
from tests.conftest import login_as

NONCE = re.compile(r'nonce="([^"]+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
RETRY_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


def _normalised(html: str) -> str:
    html = NONCE.sub('nonce="…"', html)
    html = CSRF.sub('name="csrf_token" value="…"', html)
    return RETRY_KEY.sub('name="idempotency_key" value="…"', html)


@pytest.fixture
def uncached(app: Flask) -> Iterator[Callable[[], Any]]:
    """Switch the cache off for the next requests (a fresh render each time)."""
    saved = app.config.get("PAGE_CACHE_SECONDS")

    def off() -> None:
        app.config["PAGE_CACHE_SECONDS"] = 0

    yield off
    if saved is None:
        app.config.pop("PAGE_CACHE_SECONDS", None)
    else:
        app.config["PAGE_CACHE_SECONDS"] = saved


@pytest.fixture
def listed(
    localities: None,
    current_edition: Edition,
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
) -> Any:
    """Two published offers of one provider in the current edition."""
    provider = make_provider()
    first = make_offer(provider, edition=current_edition, title="Schwimmbad Eintritt")
    make_offer(provider, edition=current_edition, title="Museum Familienkarte")
    return first


QUERIES = ["/angebote", "/angebote?q=Schwimmbad", "/angebote?q=Museum&sort=town", "/angebote?age=6"]


@pytest.mark.parametrize("language", ["de", "en"])
def test_directory_kept_page_is_the_fresh_page(
    client: FlaskClient, listed: Any, uncached: Callable[[], None], language: str
) -> None:
    headers = {"Accept-Language": language}
    kept = {}
    for url in QUERIES:
        first = client.get(url, headers=headers)
        again = client.get(url, headers=headers)
        assert first.status_code == again.status_code == 200
        assert _normalised(first.get_data(as_text=True)) == _normalised(
            again.get_data(as_text=True)
        )
        kept[url] = again.get_data(as_text=True)
    uncached()
    for url in QUERIES:
        fresh = client.get(url, headers=headers).get_data(as_text=True)
        assert _normalised(kept[url]) == _normalised(fresh), url
    assert "Schwimmbad Eintritt" in kept["/angebote?q=Schwimmbad"]
    assert "Museum Familienkarte" not in kept["/angebote?q=Schwimmbad"]


def test_every_answer_has_its_own_nonce_matching_its_header(
    client: FlaskClient, listed: Any
) -> None:
    nonces = set()
    for _ in range(3):
        response = client.get("/angebote?q=Museum")
        html = response.get_data(as_text=True)
        found = set(NONCE.findall(html))
        assert len(found) == 1
        nonce = found.pop()
        assert f"'nonce-{nonce}'" in response.headers["Content-Security-Policy"]
        nonces.add(nonce)
    assert len(nonces) == 3


def test_language_link_names_this_page(client: FlaskClient, listed: Any) -> None:
    client.get("/angebote?q=Museum&age=6")
    html = client.get("/angebote?q=Museum&age=6").get_data(as_text=True)
    assert re.findall(r'href="([^"]*sprache[^"]*)"', html) == [
        "/sprache/en?next=/angebote?q%3DMuseum%26age%3D6"
    ]
    other = client.get("/angebote?q=Schwimmbad").get_data(as_text=True)
    assert "q%3DMuseum" not in other


def test_catalogue_change_shows_at_once(
    client: FlaskClient, listed: Any, current_edition: Edition, make_offer: Callable[..., Any]
) -> None:
    assert "Kletterwald" not in client.get("/angebote").get_data(as_text=True)
    make_offer(listed.provider, edition=current_edition, title="Kletterwald Tageskarte")
    db.session.commit()
    assert "Kletterwald Tageskarte" in client.get("/angebote").get_data(as_text=True)
    listed.title = "Freibad Eintritt"
    db.session.commit()
    html = client.get("/angebote").get_data(as_text=True)
    assert "Freibad Eintritt" in html
    assert "Schwimmbad Eintritt" not in html


def test_signed_in_family_sees_its_own_menu(
    client: FlaskClient, listed: Any, make_family: Callable[..., Any]
) -> None:
    anonymous = client.get("/angebote").get_data(as_text=True)
    assert "Registrieren" in anonymous
    household = make_family()
    login_as(client, household.user)
    html = client.get("/angebote").get_data(as_text=True)
    assert "Registrieren" not in html
    assert "Mein Familienpass" in html
    # The logout form's CSRF token is this session's, and it works.
    token = CSRF.search(html)
    assert token is not None
    response = client.post("/konto/abmelden", data={"csrf_token": token.group(1)})
    assert response.status_code in (302, 303)
    assert "Registrieren" in client.get("/angebote").get_data(as_text=True)


def test_a_search_word_cannot_reach_a_marker(client: FlaskClient, listed: Any) -> None:
    # The markers' random part is never shown; a typed look-alike stays text.
    word = pagecache.marker("nonce")[:3] + "nonce_"
    client.get(f"/angebote?q={word}")
    html = client.get(f"/angebote?q={word}").get_data(as_text=True)
    assert word in html
    assert pagecache.marker("nonce") not in html


def test_flashed_message_is_shown_not_kept(app: Flask, client: FlaskClient, listed: Any) -> None:
    client.get("/angebote")
    with client.session_transaction() as session:
        session["_flashes"] = [("info", "Ein Hinweis für genau diese Seite")]
    assert "Ein Hinweis für genau diese Seite" in client.get("/angebote").get_data(as_text=True)
    assert "Ein Hinweis für genau diese Seite" not in client.get("/angebote").get_data(as_text=True)


# ---- the check page -------------------------------------------------------------------------------


@pytest.fixture
def provider_case(
    client: FlaskClient,
    listed: Any,
    make_user: Callable[..., Any],
    make_family: Callable[..., Any],
    make_pass: Callable[..., Any],
    current_edition: Edition,
) -> tuple[FlaskClient, Any]:
    """A provider logged in, and a valid pass."""
    user = make_user("provider", provider=listed.provider)
    household = make_family(adults=[("Anna", "Muster")])
    pass_ = make_pass(
        household, valid_from=current_edition.valid_from, valid_until=current_edition.valid_until
    )
    return login_as(client, user), pass_


def test_check_page_kept_frame_is_the_fresh_page(
    provider_case: tuple[FlaskClient, Any], uncached: Callable[[], None]
) -> None:
    client, pass_ = provider_case
    first = client.get(f"/v/{pass_.token}").get_data(as_text=True)
    again = client.get(f"/v/{pass_.token}").get_data(as_text=True)
    empty = client.get("/anbieter/pruefen").get_data(as_text=True)
    assert "GÜLTIG" in again
    assert "Anna Muster" in again
    assert _normalised(first) == _normalised(again)
    uncached()
    assert _normalised(client.get(f"/v/{pass_.token}").get_data(as_text=True)) == _normalised(again)
    assert _normalised(client.get("/anbieter/pruefen").get_data(as_text=True)) == _normalised(empty)


def test_redemption_from_a_kept_check_page(provider_case: tuple[FlaskClient, Any]) -> None:
    client, pass_ = provider_case
    client.get(f"/v/{pass_.token}")
    html = client.get(f"/v/{pass_.token}").get_data(as_text=True)
    form = re.search(
        r'<form method="post" action="([^"]+)" class="redeem-form">(.*?)</form>', html, re.S
    )
    assert form is not None
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(2)))
    fields.update({"adults": "1", "children": "0"})
    response = client.post(form.group(1), data=fields)
    assert response.status_code == 200
    assert "Gespeichert: 1 Erwachsene, 0 Kinder." in response.get_data(as_text=True)


def test_logged_in_requests_do_not_resend_the_session_cookie(
    provider_case: tuple[FlaskClient, Any],
) -> None:
    client, pass_ = provider_case
    client.get(f"/v/{pass_.token}")
    response = client.get(f"/v/{pass_.token}")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def _csrf(response: Any) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True))
    assert found is not None
    return found.group(1)


def test_the_check_page_signs_a_sessions_csrf_token_once_a_minute(
    app: Flask,
    provider_case: tuple[FlaskClient, Any],
    make_user: Callable[..., Any],
    listed: Any,
) -> None:
    client, pass_ = provider_case
    first = _csrf(client.get(f"/v/{pass_.token}"))
    time.sleep(1.1)  # a fresh signature would carry a later timestamp
    assert _csrf(client.get(f"/v/{pass_.token}")) == first
    # Another session never gets this session's token.
    other = login_as(app.test_client(), make_user("provider", provider=listed.provider))
    assert _csrf(other.get(f"/v/{pass_.token}")) != first
    # Reused for at most 2 % of the token's lifetime: 1 s of 50 s.
    app.config["WTF_CSRF_TIME_LIMIT"] = 50
    try:
        time.sleep(1.1)
        renewed = _csrf(client.get(f"/v/{pass_.token}"))
        assert renewed != first
        assert _csrf(client.get(f"/v/{pass_.token}")) == renewed  # and reused from then on
    finally:
        app.config["WTF_CSRF_TIME_LIMIT"] = None


@pytest.mark.parametrize("script_root", ["", "/kyffikus"])
@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/v/AbC_dEf-123",
        "/angebote?q=Bad Frankenhausen&kategorie=sport&seite=2",
        "/angebote?q=%3Cscript%3E%22&ort=K%C3%B6lleda",
        "/angebote?q=a+b&x=!$'()*,/:;?@&y=#z",
    ],
)
def test_language_links_are_what_url_for_builds(app: Flask, script_root: str, path: str) -> None:
    from flask import request, url_for

    with app.test_request_context(path, base_url=f"http://localhost{script_root}"):
        for code in pagecache.LANGUAGES:
            expected = url_for("public.set_language", lang=code, next=request.full_path)
            assert pagecache.lang_switch_url(code) == expected
