"""Every GET page of every role in Chromium: screenshots, axe, no foreign requests, page weight.

The pages come from the app's url_map (every GET rule outside /api/ and /static/), with URL
parameters filled from the seeded data set (conftest.seed). For each role and page, at 360x740
and 1280x800, in German:
- a full-page screenshot goes to build/screenshots/<role>/<endpoint>-<w>x<h>.png;
- axe-core finds no violation of impact serious or critical, nor one of the rules asserted below
  that (helpers.ASSERTED_BELOW_SERIOUS: landmark-unique);
- no request leaves 127.0.0.1;
- the page with everything it loads weighs under 150 KB on the wire (gzip; the browser cache is
  off, so each page pays for its own CSS and JavaScript).
Pages for everyone (directory, privacy, the links from e-mails) are audited for the anonymous
visitor; a logged-in role sees them with a different header menu only (ANONYMOUS_PAGES). The
admin gets the pages it shares with staff at 1280x800 only. KYFFIKUS_BROWSER_ALL_PAGES=1 audits
everything for everyone, at both sizes.
Pages that answer 403 or 404 for a role, or redirect (login required, another page), are skipped
for that role: who may see what is the authorization matrix's business. Downloads (PDF, CSV,
images, JSON) are not pages; their own tests check them.
"""

from __future__ import annotations

import os
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser.helpers import (
    RequestLog,
    describe_violations,
    failing,
    is_local,
    kb,
    page_transfers,
    run_axe,
    uncompressed_text,
    weight,
)
from tests.browser.live import SCREENSHOTS, LiveServer

ROLES = ("anonymous", "family", "provider", "staff", "admin")
VIEWPORTS = ((360, 740), (1280, 800))
MAX_WEIGHT = 150 * 1024

# Endpoints that are not pages: machine endpoints, downloads, and GETs that only redirect.
NOT_PAGES = {
    "static": "static files (counted in each page's weight)",
    "health.healthz": "health check for the load balancer (text)",
    "health.readyz": "readiness check (text)",
    "public.set_language": "sets the language cookie and redirects (the tests stay in German)",
}
# Pages for everyone that look the same for a logged-in role except for the header menu, which
# that role's own pages show anyway: audited for the anonymous visitor only, to keep the suite
# fast (KYFFIKUS_BROWSER_ALL_PAGES=1 audits them for every role too).
ANONYMOUS_PAGES = frozenset(
    {
        "public.provider",
        "public.offers",
        "public.offer",
        "public.privacy",
        "public.imprint",
        "auth.confirm_email",
        "auth.resend_confirmation",
        "auth.accept_invite",
        "auth.reset_password",
        "auth.forgot_password",
        "auth.check_email",
    }
)
ALL_PAGES = os.environ.get("KYFFIKUS_BROWSER_ALL_PAGES") == "1"

# A rule that ends in a file name (…/karte.pdf, …/<key>.csv) is a download; other downloads are
# found by asking (their content type is not HTML).
FILE_SUFFIX = re.compile(r"\.(pdf|csv|png|svg|json|txt|zip|ics)$")


def _value(name: str, endpoint: str, data: dict[str, Any]) -> Any:
    """A real value for a URL parameter: by endpoint first, then by the parameter's name."""
    tokens = data["tokens"]
    per_endpoint = {
        ("auth.confirm_email", "token"): tokens["confirm"],
        ("auth.reset_password", "token"): tokens["reset"],
        ("auth.accept_invite", "token"): tokens["invite"],
    }
    if (endpoint, name) in per_endpoint:
        return per_endpoint[(endpoint, name)]
    by_name: dict[str, Any] = {
        "slug": data["provider_slug"],
        "provider_slug": data["provider_slug"],
        "offer_id": data["offer_id"],
        "offer_key": data["offer_key"],
        "provider_id": data["provider_id"],
        "pass_id": data["pass_id"],
        "number": data["pass_number"],
        "pass_number": data["pass_number"],
        "token": data["pass_token"],
        "household_id": data["household_id"],
        "application_id": data["waiting_application_id"],
        "redemption_id": data["redemption_id"],
        "user_id": data["provider_user_id"],
        "edition_id": data["edition_id"],
        "locality_id": data["locality_id"],
        "venue_id": data["venue_id"],
        "category_id": data["category_id"],
        "code": data["postal_code"],
        "postal_code": data["postal_code"],
        "municipality_id": data["municipality_id"],
        "year": data["year"],
        "lang": "de",
    }
    if name in by_name:
        return by_name[name]
    raise LookupError(name)


def page_urls(live: LiveServer) -> tuple[list[tuple[str, str]], list[str]]:
    """(endpoint, path) of every GET page, and the endpoints left out with why."""
    app = live.app
    data = {**live.data, "year": _this_year()}
    pages: list[tuple[str, str]] = []
    left_out: list[str] = []
    unresolved: list[str] = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in (rule.methods or set()):
            continue
        if rule.rule.startswith(("/api/", "/static/")):
            continue
        if rule.endpoint in NOT_PAGES:
            left_out.append(f"{rule.endpoint}: {NOT_PAGES[rule.endpoint]}")
            continue
        if FILE_SUFFIX.search(rule.rule):
            left_out.append(f"{rule.endpoint}: a file ({rule.rule.rsplit('.', 1)[-1]}), not a page")
            continue
        values = {}
        try:
            for arg in rule.arguments:
                values[arg] = _value(arg, rule.endpoint, data)
        except LookupError as exc:
            unresolved.append(f"{rule.endpoint} ({rule.rule}): no value for <{exc.args[0]}>")
            continue
        with app.test_request_context():
            from flask import url_for

            pages.append((rule.endpoint, url_for(rule.endpoint, **values)))
    assert not unresolved, (
        "Pages whose URL parameters the browser test cannot fill; add them to _value() in "
        "tests/browser/test_every_page.py:\n" + "\n".join(unresolved)
    )
    return pages, left_out


def _this_year() -> int:
    from kyffikus.models.base import berlin_today

    return berlin_today().year


@dataclass
class Row:
    """One page view in the weight table."""

    endpoint: str
    viewport: str
    status: int
    weight: int
    files: int
    html: int


@pytest.mark.parametrize("role", ROLES)
def test_every_page(
    role: str,
    live_server: LiveServer,
    browser: Any,
    playwright: Any,
    role_state: Callable[[str], Path | None],
) -> None:
    """Every page this role can open: screenshot, 0 failing axe findings, local only, < 150 KB."""
    started = time.monotonic()
    pages, left_out = page_urls(live_server)
    # An admin sees the staff pages with the same templates; those were checked at both sizes for
    # staff, so the admin gets them at the desktop size only (and its own pages at both sizes).
    as_staff = None
    if role == "admin" and not ALL_PAGES:
        as_staff = playwright.request.new_context(storage_state=role_state("staff"))
    context = browser.new_context(
        storage_state=role_state(role), locale="de-DE", extra_http_headers={"Accept-Language": "de"}
    )
    page = context.new_page()
    # No cache: every page pays for its own CSS and JavaScript, as on a first visit.
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    log = RequestLog().attach(page)
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))

    out = SCREENSHOTS / role
    out.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    rows: list[Row] = []
    skipped: list[str] = []
    downloads: list[str] = []
    refused: list[str] = []
    # Every finding, also below serious, for the summary: "rule (impact)" -> pages.
    axe_rules: defaultdict[str, set[str]] = defaultdict(set)
    seen: dict[str, int] = {}
    for endpoint, path in pages:
        if role != "anonymous" and endpoint in ANONYMOUS_PAGES and not ALL_PAGES:
            continue
        # Ask first, without following redirects: a download (PDF, CSV, image) would not render,
        # and a redirect (login required, or to another page) is that other page's business.
        probe = context.request.get(live_server(path), max_redirects=0)
        kind = probe.headers.get("content-type", "")
        if probe.status in (401, 403, 404, 405):
            refused.append(f"{endpoint} ({probe.status})")
            continue
        if 300 <= probe.status < 400:
            target = probe.headers.get("location", "").removeprefix(live_server.url)
            skipped.append(f"{endpoint} (redirects to {target})")
            continue
        if not kind.startswith("text/html"):
            downloads.append(f"{endpoint} ({kind.split(';')[0]})")
            continue
        seen[endpoint] = seen.get(endpoint, 0) + 1
        name = endpoint if seen[endpoint] == 1 else f"{endpoint}-{seen[endpoint]}"
        viewports = VIEWPORTS
        if as_staff is not None and as_staff.get(live_server(path), max_redirects=0).status == 200:
            viewports = VIEWPORTS[1:]
        for width, height in viewports:
            page.set_viewport_size({"width": width, "height": height})
            console_errors.clear()
            response = page.goto(live_server(path), wait_until="load")
            assert response is not None, path
            where = f"{role} {endpoint} {path} at {width}x{height}"
            if response.status >= 500:
                failures.append(f"{where}: HTTP {response.status}")
                break
            lang = page.get_attribute("html", "lang")
            if lang != "de":
                failures.append(f"{where}: not in German (<html lang={lang!r}>)")
            transfers = page_transfers(page)
            total = weight(transfers)
            rows.append(
                Row(
                    name,
                    f"{width}x{height}",
                    response.status,
                    total,
                    len(transfers),
                    transfers[0].transfer if transfers else 0,
                )
            )
            foreign = [t.url for t in transfers if not is_local(t.url)]
            if foreign:
                failures.append(f"{where}: requests left 127.0.0.1: {foreign}")
            if total >= MAX_WEIGHT:
                heavy = sorted(transfers, key=lambda t: -t.transfer)[:5]
                failures.append(
                    f"{where}: {kb(total)} KB transferred (limit 150 KB); largest: "
                    + ", ".join(f"{t.url} {kb(t.transfer)} KB" for t in heavy)
                )
            for url in uncompressed_text(transfers):
                print(f"note: {where}: {url} came without gzip")
            found = run_axe(page)
            for v in found:
                axe_rules[f"{v['id']} ({v['impact']})"].add(name)
            bad = failing(found)
            if bad:
                failures.append(
                    f"{where}: axe found {len(bad)} failing rule(s):\n" + describe_violations(bad)
                )
            page.screenshot(path=str(out / f"{name}-{width}x{height}.png"), full_page=True)
            if console_errors:
                print(f"note: {where}: console errors: {console_errors}")
    context.close()
    if as_staff is not None:
        as_staff.dispose()
    # Request events arrive asynchronously, so the whole run's log is checked once at the end.
    if log.foreign:
        failures.append(f"{role}: requests left 127.0.0.1: {sorted(set(log.foreign))}")

    print(
        f"\n== {role}: {len(rows)} page views in {time.monotonic() - started:.0f} s; bytes on the "
        "wire with gzip, headers included, browser cache off"
    )
    print(
        f"{'endpoint':42} {'viewport':>9} {'status':>6} {'total KB':>8} {'HTML KB':>7} {'files':>5}"
    )
    for r in rows:
        print(
            f"{r.endpoint:42} {r.viewport:>9} {r.status:>6} {kb(r.weight):>8} {kb(r.html):>7} {r.files:>5}"
        )
    if axe_rules:
        print(
            f"-- axe findings below serious for {role}: "
            + "; ".join(
                f"{rule} on {', '.join(sorted(on))}" for rule, on in sorted(axe_rules.items())
            )
        )
    if refused:
        print(
            f"-- refused to {role} (403/404, the authorization tests' business): {len(refused)} pages"
        )
    if skipped:
        print(f"-- redirected for {role}: " + "; ".join(skipped))
    if downloads:
        print(f"-- downloads for {role} (checked by their own tests): " + "; ".join(downloads))
    if role == "anonymous" and left_out:
        print("-- not pages: " + "; ".join(left_out))
    assert rows, f"no page rendered for {role}"
    assert not failures, "\n".join(failures)


def test_axe_finds_what_it_should(browser: Any) -> None:
    """The audit can fail: an image without alt text, an unlabelled field, two regions named alike."""
    page = browser.new_page()
    page.set_content(
        '<!doctype html><html lang="de"><head><title>Probe</title></head><body><main>'
        '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><input type="text">'
        '<section aria-labelledby="t"><h2 id="t">Tabelle</h2>'
        '<div role="region" aria-label="Tabelle" tabindex="0"><p>1</p></div></section>'
        "</main></body></html>"
    )
    violations = run_axe(page)
    page.close()
    found = {v["id"]: v["impact"] for v in violations}
    assert found.get("image-alt") == "critical", found
    assert found.get("label") == "critical", found
    assert found.get("landmark-unique") == "moderate", found
    assert {v["id"] for v in failing(violations)} >= {"image-alt", "label", "landmark-unique"}
