"""Headers and cookies on every response, as SECURITY.md asks; templates free of inline script and style.

Every GET route of the authorization matrix is fetched as every role, so every page kind (public,
family, provider, staff, API, error pages, /v/) is checked, and a new page is checked the moment
it exists.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from kyffikus import create_app
from tests.security.conftest import ROLES, World, api_headers, client_for, rolled_back
from tests.security.figures import record_figure
from tests.security.test_authz_matrix import routes, url_values

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

# Pages of these areas show personal data to a logged-in user: never cached.
PERSONAL_PREFIXES = ("/familie/", "/anbieter/", "/verwaltung/", "/konto/", "/v/")
# The family's own QR image holds no personal data (only the pass's token URL) and may be kept
# in the browser's private cache for a day, so the pass page loads offline at the till.
PRIVATE_CACHE = re.compile(r"^/familie/pass/\d+/qr\.png$")


def csp_directives(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: [sources]}."""
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


def header_problems(response: Any, *, https: bool = False) -> list[str]:
    """What is missing or wrong in a response's security headers."""
    problems = []
    csp = response.headers.get("Content-Security-Policy")
    if not csp:
        return ["no Content-Security-Policy"]
    d = csp_directives(csp)
    script = d.get("script-src", d.get("default-src", []))
    if "'unsafe-inline'" in script or "'unsafe-eval'" in script:
        problems.append(f"script-src allows inline/eval: {script}")
    if "'unsafe-inline'" in d.get("style-src", []):
        problems.append("style-src allows inline styles")
    for directive in ("object-src", "base-uri", "frame-ancestors"):
        if d.get(directive) != ["'none'"]:
            problems.append(f"{directive} is {d.get(directive)}, not 'none'")
    for directive, sources in d.items():
        # Nothing from another host: only 'self', 'none', nonces, data:/blob: for images.
        foreign = [s for s in sources if re.match(r"^(https?:|\*|//)", s) or "." in s.strip("'")]
        if foreign:
            problems.append(f"{directive} names other hosts: {foreign}")
    if response.headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("no X-Content-Type-Options: nosniff")
    if response.headers.get("Referrer-Policy") != "same-origin":
        problems.append(f"Referrer-Policy is {response.headers.get('Referrer-Policy')}")
    hsts = response.headers.get("Strict-Transport-Security")
    if https and not (hsts and "max-age=" in hsts):
        problems.append("no HSTS over https")
    if not https and hsts:
        problems.append("HSTS over plain http")
    for cookie in response.headers.getlist("Set-Cookie"):
        name = cookie.split("=", 1)[0]
        if "HttpOnly" not in cookie:
            problems.append(f"cookie {name} without HttpOnly")
        if "SameSite=Lax" not in cookie and "SameSite=Strict" not in cookie:
            problems.append(f"cookie {name} without SameSite")
    return problems


def html_problems(html: str) -> list[str]:
    """Scripts without src or nonce, inline handlers, style attributes, other hosts in a page."""
    problems = []
    for tag in re.findall(r"<script\b[^>]*>", html, re.I):
        if "src=" not in tag:
            problems.append(f"inline script: {tag}")
        elif "nonce=" not in tag:
            problems.append(f"script without nonce: {tag}")
    if re.search(r"<[^>]+\sstyle\s*=", html, re.I):
        problems.append("style attribute")
    if re.search(r"<[^>]+\son[a-z]+\s*=", html, re.I):
        problems.append("inline event handler")
    for url in re.findall(r'(?:src|href)\s*=\s*"((?:https?:)?//[^"]*)"', html, re.I):
        if not url.startswith(("http://localhost", "https://localhost")):
            problems.append(f"loads from another host: {url}")
    return problems


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_every_get_route_sends_the_security_headers(app: Flask, world: World, https: bool) -> None:
    """Every GET route x role (and error pages): CSP, nosniff, Referrer-Policy, HSTS, no-store."""
    values = url_values(world)
    base_url = "https://localhost" if https else "http://localhost"
    paths = []
    for (rule_text, method), rule in sorted(routes(app).items()):
        if method == "GET":
            args = {name: values[name](rule_text) for name in rule.arguments}
            paths.append(rule.build(args, append_unknown=False)[1])  # type: ignore[index]
    # Error pages: unknown page, unknown API object, wrong method, bad parameter.
    paths += ["/gibt-es-nicht", "/api/v1/offers/999999999", "/konto/abmelden", "/angebote?seite=x"]
    failures: list[str] = []
    tried = 0
    for path in paths:
        for role in ROLES:
            with rolled_back():
                client = client_for(app, world, role)
                headers = api_headers(world, role) if path.startswith("/api/") else {}
                response = client.get(path, base_url=base_url, headers=headers)
                raw = response.get_data()
                response.close()
            body = raw.decode("utf-8") if response.mimetype == "text/html" else ""
            tried += 1
            where = f"GET {path} as {role}"
            problems = header_problems(response, https=https)
            logged_in = role != "anonymous"
            cache = response.headers.get("Cache-Control", "")
            if logged_in and not path.startswith("/static/") and response.status_code < 500:
                if PRIVATE_CACHE.match(path) and response.status_code == 200:
                    if "private" not in cache:
                        problems.append(f"own QR image cached publicly: {cache}")
                elif "no-store" not in cache:
                    problems.append(f"personal page without no-store: {cache!r}")
            if not logged_in and path.startswith("/v/") and "no-store" not in cache:
                problems.append("/v/ result cached")
            if response.mimetype == "text/html":
                problems += html_problems(body)
            failures += [f"{where}: {p}" for p in problems]
    record_figure(
        f"headers-{'https' if https else 'http'}",
        f"responses checked for security headers over {'https' if https else 'http'} "
        "(every GET route and error page x 7 roles)",
        tried,
        len(failures),
        0,
        outcome=f"{len(failures)} failed",
        order=30,
    )
    assert failures == []


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("/", "anonymous"),
        ("/familie/", "family_a"),
        ("/familie/pass", "family_a"),
        ("/anbieter/pruefen", "provider_x"),
        ("/verwaltung/", "staff"),
        ("/api/v1/offers", "anonymous"),
        ("/gibt-es-nicht", "anonymous"),
        ("/v/{token}", "anonymous"),
        ("/v/{token}", "provider_x"),
    ],
)
def test_page_kinds(app: Flask, world: World, path: str, role: str) -> None:
    """One page of each kind, spelled out: the headers SECURITY.md names, with the exact values."""
    path = path.format(token=world.pass_token)
    client = client_for(app, world, role)
    plain = client.get(path)
    secure = client.get(path, base_url="https://localhost")
    for response in (plain, secure):
        csp = csp_directives(response.headers["Content-Security-Policy"])
        assert "'unsafe-inline'" not in csp["script-src"]
        assert csp["object-src"] == ["'none'"]
        assert csp["base-uri"] == ["'none'"]
        assert csp["frame-ancestors"] == ["'none'"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in plain.headers
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    if role != "anonymous" or path.startswith("/v/"):
        assert plain.headers["Cache-Control"] == "no-store"
    if role == "provider_x" and path.startswith("/v/"):
        # The provider's full check (names, ages) is personal data.
        assert ">GÜLTIG</h2>" in plain.get_data(as_text=True)


def test_session_cookie_flags_in_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the production configuration the session and language cookies are Secure, HttpOnly, Lax."""
    monkeypatch.setenv("KYFFIKUS_INSTANCE_PATH", str(tmp_path))
    app = create_app(
        {
            "SECRET_KEY": "production-like-secret-" + "x" * 32,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'prod.sqlite'}",
            "RATELIMIT_STORAGE_URI": "memory://",
        }
    )
    assert not app.testing
    assert app.config["SESSION_COOKIE_SECURE"] is True
    client = app.test_client()
    response = client.get("/konto/anmelden", base_url="https://localhost")
    cookies = response.headers.getlist("Set-Cookie")
    session = [c for c in cookies if c.startswith("session=")]
    assert session, cookies
    assert "Secure" in session[0]
    assert "HttpOnly" in session[0]
    assert "SameSite=Lax" in session[0]
    lang = client.get("/sprache/en", base_url="https://localhost").headers.getlist("Set-Cookie")
    assert lang
    assert all("Secure" in c and "HttpOnly" in c and "SameSite=Lax" in c for c in lang)


def test_development_over_http_has_no_secure_cookie(app: Flask) -> None:
    """Local http (tests, make run) keeps cookies usable: Secure only in production or https."""
    assert app.config["SESSION_COOKIE_SECURE"] is False
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_templates_have_no_inline_script_or_style() -> None:
    """CSP forbids inline script: no <script> without src, no style="", no on*= handlers."""
    problems = []
    files = sorted(TEMPLATES.rglob("*.html"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(TEMPLATES)
        for tag in re.findall(r"<script\b[^>]*>", text, re.I):
            if "src=" not in tag:
                problems.append(f"{rel}: inline <script>: {tag}")
        if re.search(r"\sstyle\s*=\s*[\"']", text, re.I):
            problems.append(f"{rel}: style attribute")
        if re.search(r"<[^>]+\son[a-z]+\s*=\s*[\"']", text, re.I):
            problems.append(f"{rel}: inline event handler")
        if re.search(r"javascript:", text, re.I):
            problems.append(f"{rel}: javascript: URL")
    record_figure(
        "templates",
        "templates scanned for inline script, style attributes and event handlers",
        len(files),
        len(problems),
        0,
        outcome=f"{len(problems)} found",
        order=31,
    )
    assert problems == []
