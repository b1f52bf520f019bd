"""The authorization matrix: every route x method x role, walked with real objects of each owner.

ONE table below lists every rule of app.url_map (except /static) with every method it allows
(HEAD and OPTIONS aside) and the expected answer for each of the seven roles. URL parameters are
filled with the object whose ownership matters: family A's pass, provider X's offer, venue,
redemption and API token. So family B asking for family A's pass, or provider Y undoing
provider X's redemption, must be refused. A route missing from the table fails the test, and so
does a table row whose route no longer exists.

Each request runs in a savepoint that is rolled back afterwards, so one world serves every role
and every route, and a refused request is also checked to have sent no INSERT/UPDATE/DELETE.
POSTs carry a valid CSRF token for the session: the point is authorization, not CSRF.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any

from flask import Flask

from tests.security.conftest import (
    ROLES,
    World,
    api_headers,
    client_for,
    csrf_for,
    is_login_redirect,
    rolled_back,
    spy_writes,
)
from tests.security.figures import record_figure

# Outcome classes.
OK = "ok"  # 2xx, or a redirect that is not to the login page
REACH = "reach"  # got past authorization: any answer below 500 except 401/403/404/405/login
LOGIN = "login"  # 302 to /konto/anmelden
DONE_THEN_LOGIN = "done-login"  # an action that succeeded and then asks the visitor to log in
E401, E403, E404, E405 = "401", "403", "404", "405"
REFUSALS = {LOGIN, E401, E403, E404, E405}

# Role groups, in the order of ROLES:
#   anonymous, family_a, family_b, provider_x, provider_y, staff, admin
EVERYONE = (OK,) * 7
STAFF_PAGE = (LOGIN, E403, E403, E403, E403, OK, OK)
STAFF_POST = (LOGIN, E403, E403, E403, E403, REACH, REACH)
ADMIN_PAGE = (LOGIN, E403, E403, E403, E403, E403, OK)
ADMIN_POST = (LOGIN, E403, E403, E403, E403, E403, REACH)
FAMILY_PAGE = (LOGIN, OK, OK, E403, E403, E403, E403)
FAMILY_POST = (LOGIN, REACH, REACH, E403, E403, E403, E403)
FAMILY_A_OBJECT = (LOGIN, OK, E404, E403, E403, E403, E403)
PROVIDER_PAGE = (LOGIN, E403, E403, OK, OK, E403, E403)
PROVIDER_POST = (LOGIN, E403, E403, REACH, REACH, E403, E403)
PROVIDER_X_OBJECT = (LOGIN, E403, E403, OK, E404, E403, E403)
LOGGED_IN = (LOGIN, OK, OK, OK, OK, OK, OK)
LOGGED_IN_POST = (LOGIN, REACH, REACH, REACH, REACH, REACH, REACH)
STAFF_ACCOUNT = (LOGIN, E403, E403, E403, E403, OK, OK)
STAFF_ACCOUNT_POST = (LOGIN, E403, E403, E403, E403, REACH, REACH)
FORM_POST = (REACH,) * 7
# The API authenticates with Bearer tokens only: a session cookie is not enough (401).
API_PROVIDER = (E401, E401, E401, OK, OK, E401, E401)

Row = tuple[str, str, str, str, str, str, str]

MATRIX: dict[tuple[str, str], Row] = {
    # ---- public pages
    ("/", "GET"): EVERYONE,
    ("/angebote", "GET"): EVERYONE,
    ("/angebote/<int:offer_id>", "GET"): EVERYONE,
    ("/anbieter-verzeichnis/<slug>", "GET"): EVERYONE,
    ("/datenschutz", "GET"): EVERYONE,
    ("/impressum", "GET"): EVERYONE,
    ("/sprache/<lang>", "GET"): EVERYONE,
    ("/healthz", "GET"): EVERYONE,
    ("/readyz", "GET"): EVERYONE,
    # The QR code's URL: anyone learns valid-or-not; a provider sees the full check.
    ("/v/<token>", "GET"): EVERYONE,
    # ---- accounts
    ("/konto/", "GET"): LOGGED_IN,
    ("/konto/abmelden", "POST"): EVERYONE,
    ("/konto/anmelden", "GET"): EVERYONE,
    ("/konto/anmelden", "POST"): FORM_POST,
    ("/konto/registrieren", "GET"): EVERYONE,
    ("/konto/registrieren", "POST"): (REACH, OK, OK, OK, OK, OK, OK),
    ("/konto/registrieren/bestaetigen", "GET"): EVERYONE,
    # E-mailed links are capabilities: whoever holds the link may use it.
    ("/konto/bestaetigen/<token>", "GET"): EVERYONE,
    ("/konto/bestaetigen/<token>", "POST"): (DONE_THEN_LOGIN, OK, OK, OK, OK, OK, OK),
    ("/konto/bestaetigung-anfordern", "GET"): EVERYONE,
    ("/konto/bestaetigung-anfordern", "POST"): FORM_POST,
    ("/konto/bestaetigung-senden", "POST"): LOGGED_IN,
    ("/konto/passwort-vergessen", "GET"): EVERYONE,
    ("/konto/passwort-vergessen", "POST"): FORM_POST,
    ("/konto/passwort-neu/<token>", "GET"): EVERYONE,
    ("/konto/passwort-neu/<token>", "POST"): FORM_POST,
    ("/konto/einladung/<token>", "GET"): EVERYONE,
    ("/konto/einladung/<token>", "POST"): FORM_POST,
    ("/konto/passwort", "POST"): LOGGED_IN_POST,
    ("/konto/zweiter-faktor", "GET"): LOGGED_IN,
    ("/konto/zweiter-faktor", "POST"): LOGGED_IN,
    ("/konto/zwei-faktor", "GET"): STAFF_ACCOUNT,
    ("/konto/zwei-faktor", "POST"): STAFF_ACCOUNT_POST,
    ("/konto/zwei-faktor/beginnen", "POST"): STAFF_ACCOUNT,
    ("/konto/zwei-faktor/wiederherstellungscodes", "POST"): STAFF_ACCOUNT,
    ("/konto/zwei-faktor/abschalten", "POST"): STAFF_ACCOUNT_POST,
    # ---- families (A has an active pass; B has a submitted application and no pass)
    ("/familie/", "GET"): FAMILY_PAGE,
    ("/familie/haushalt", "GET"): FAMILY_PAGE,
    ("/familie/haushalt", "POST"): FAMILY_POST,
    ("/familie/antrag", "GET"): FAMILY_PAGE,
    ("/familie/antrag", "POST"): FAMILY_POST,
    # Only B has something to withdraw; A gets 404 for "nothing pending".
    ("/familie/antrag/zurueckziehen", "POST"): (LOGIN, E404, OK, E403, E403, E403, E403),
    ("/familie/pass", "GET"): FAMILY_PAGE,
    ("/familie/pass/<int:pass_id>/qr.png", "GET"): FAMILY_A_OBJECT,
    ("/familie/pass/<int:pass_id>/karte.pdf", "GET"): FAMILY_A_OBJECT,
    ("/familie/pass/verloren", "GET"): FAMILY_PAGE,
    ("/familie/pass/verloren", "POST"): FAMILY_POST,
    ("/familie/einloesungen", "GET"): FAMILY_PAGE,
    ("/familie/daten", "GET"): FAMILY_PAGE,
    ("/familie/daten/export.json", "GET"): FAMILY_PAGE,
    ("/familie/daten/loeschen", "POST"): FAMILY_POST,
    # ---- providers (objects of provider X: Y must get 404)
    ("/anbieter/pruefen", "GET"): PROVIDER_PAGE,
    ("/anbieter/pruefen/ergebnis", "POST"): PROVIDER_PAGE,
    ("/anbieter/einloesen", "POST"): PROVIDER_X_OBJECT,
    ("/anbieter/einloesungen", "GET"): PROVIDER_PAGE,
    ("/anbieter/einloesungen.csv", "GET"): PROVIDER_PAGE,
    ("/anbieter/einloesungen/<int:redemption_id>/rueckgaengig", "POST"): PROVIDER_X_OBJECT,
    ("/anbieter/konto", "GET"): PROVIDER_PAGE,
    ("/anbieter/konto", "POST"): PROVIDER_POST,
    ("/anbieter/konto/orte/<int:venue_id>", "POST"): (LOGIN, E403, E403, REACH, E404, E403, E403),
    ("/anbieter/konto/api-schluessel", "POST"): PROVIDER_POST,
    ("/anbieter/konto/api-schluessel/<int:token_id>/widerrufen", "POST"): PROVIDER_X_OBJECT,
    # ---- the JSON API
    ("/api/v1/openapi.json", "GET"): EVERYONE,
    ("/api/v1/offers", "GET"): EVERYONE,
    ("/api/v1/offers/<int:offer_id>", "GET"): EVERYONE,
    ("/api/v1/providers", "GET"): EVERYONE,
    ("/api/v1/providers/<slug>", "GET"): EVERYONE,
    ("/api/v1/checks", "POST"): API_PROVIDER,
    # Provider Y may not redeem provider X's offer (403), nor see X's redemption (404).
    ("/api/v1/redemptions", "POST"): (E401, E401, E401, OK, E403, E401, E401),
    ("/api/v1/redemptions/<int:redemption_id>", "DELETE"): (E401, E401, E401, OK, E404, E401, E401),
    # ---- staff: overview, catalogue, editions, localities, import/export
    ("/verwaltung/", "GET"): STAFF_PAGE,
    ("/verwaltung/anbieter", "GET"): STAFF_PAGE,
    ("/verwaltung/anbieter/neu", "GET"): STAFF_PAGE,
    ("/verwaltung/anbieter/neu", "POST"): STAFF_POST,
    ("/verwaltung/anbieter/<int:provider_id>", "GET"): STAFF_PAGE,
    ("/verwaltung/anbieter/<int:provider_id>/bearbeiten", "GET"): STAFF_PAGE,
    ("/verwaltung/anbieter/<int:provider_id>/bearbeiten", "POST"): STAFF_POST,
    ("/verwaltung/anbieter/<int:provider_id>/veroeffentlichen", "POST"): STAFF_POST,
    ("/verwaltung/anbieter/<int:provider_id>/loeschen", "POST"): STAFF_POST,
    ("/verwaltung/anbieter/<int:provider_id>/standorte/neu", "GET"): STAFF_PAGE,
    ("/verwaltung/anbieter/<int:provider_id>/standorte/neu", "POST"): STAFF_POST,
    ("/verwaltung/anbieter/<int:provider_id>/angebote/neu", "GET"): STAFF_PAGE,
    ("/verwaltung/anbieter/<int:provider_id>/angebote/neu", "POST"): STAFF_POST,
    ("/verwaltung/standorte/<int:venue_id>/bearbeiten", "GET"): STAFF_PAGE,
    ("/verwaltung/standorte/<int:venue_id>/bearbeiten", "POST"): STAFF_POST,
    ("/verwaltung/standorte/<int:venue_id>/loeschen", "POST"): STAFF_POST,
    ("/verwaltung/angebote", "GET"): STAFF_PAGE,
    ("/verwaltung/angebote/<int:offer_id>/bearbeiten", "GET"): STAFF_PAGE,
    ("/verwaltung/angebote/<int:offer_id>/bearbeiten", "POST"): STAFF_POST,
    ("/verwaltung/angebote/<int:offer_id>/vorschau", "GET"): STAFF_PAGE,
    ("/verwaltung/angebote/<int:offer_id>/veroeffentlichen", "POST"): STAFF_POST,
    ("/verwaltung/angebote/<int:offer_id>/loeschen", "POST"): STAFF_POST,
    ("/verwaltung/kategorien", "GET"): STAFF_PAGE,
    ("/verwaltung/kategorien/neu", "GET"): STAFF_PAGE,
    ("/verwaltung/kategorien/neu", "POST"): STAFF_POST,
    ("/verwaltung/kategorien/<int:category_id>/bearbeiten", "GET"): STAFF_PAGE,
    ("/verwaltung/kategorien/<int:category_id>/bearbeiten", "POST"): STAFF_POST,
    ("/verwaltung/kategorien/<int:category_id>/loeschen", "POST"): STAFF_POST,
    ("/verwaltung/auflagen", "GET"): STAFF_PAGE,
    ("/verwaltung/auflagen/neu", "GET"): STAFF_PAGE,
    ("/verwaltung/auflagen/neu", "POST"): STAFF_POST,
    ("/verwaltung/auflagen/<int:edition_id>/bearbeiten", "GET"): STAFF_PAGE,
    ("/verwaltung/auflagen/<int:edition_id>/bearbeiten", "POST"): STAFF_POST,
    ("/verwaltung/orte", "GET"): STAFF_PAGE,
    ("/verwaltung/orte/neu", "GET"): STAFF_PAGE,
    ("/verwaltung/orte/neu", "POST"): STAFF_POST,
    ("/verwaltung/orte/<int:locality_id>/bearbeiten", "GET"): STAFF_PAGE,
    ("/verwaltung/orte/<int:locality_id>/bearbeiten", "POST"): STAFF_POST,
    ("/verwaltung/gemeinden/neu", "GET"): STAFF_PAGE,
    ("/verwaltung/gemeinden/neu", "POST"): STAFF_POST,
    ("/verwaltung/gemeinden/<int:municipality_id>/bearbeiten", "GET"): STAFF_PAGE,
    ("/verwaltung/gemeinden/<int:municipality_id>/bearbeiten", "POST"): STAFF_POST,
    ("/verwaltung/postleitzahlen/<code>/bearbeiten", "GET"): STAFF_PAGE,
    ("/verwaltung/postleitzahlen/<code>/bearbeiten", "POST"): STAFF_POST,
    ("/verwaltung/import", "GET"): STAFF_PAGE,
    ("/verwaltung/import", "POST"): STAFF_POST,
    ("/verwaltung/export/anbieter.csv", "GET"): STAFF_PAGE,
    ("/verwaltung/export/angebote.csv", "GET"): STAFF_PAGE,
    # ---- staff: users and settings (roles and settings: admins only)
    ("/verwaltung/benutzer", "GET"): STAFF_PAGE,
    ("/verwaltung/benutzer/einladen", "GET"): STAFF_PAGE,
    ("/verwaltung/benutzer/einladen", "POST"): STAFF_POST,
    ("/verwaltung/benutzer/<int:user_id>", "GET"): STAFF_PAGE,
    ("/verwaltung/benutzer/<int:user_id>/deaktivieren", "POST"): STAFF_POST,
    ("/verwaltung/benutzer/<int:user_id>/freischalten", "POST"): STAFF_POST,
    ("/verwaltung/benutzer/<int:user_id>/passwort-zuruecksetzen", "POST"): STAFF_POST,
    ("/verwaltung/benutzer/<int:user_id>/rolle", "POST"): ADMIN_POST,
    ("/verwaltung/einstellungen", "GET"): ADMIN_PAGE,
    ("/verwaltung/einstellungen", "POST"): ADMIN_POST,
    # ---- staff: applications, passes, statistics, audit log
    ("/verwaltung/antraege/", "GET"): STAFF_PAGE,
    ("/verwaltung/antraege/<int:application_id>", "GET"): STAFF_PAGE,
    ("/verwaltung/antraege/<int:application_id>/genehmigen", "POST"): STAFF_POST,
    ("/verwaltung/antraege/<int:application_id>/ablehnen", "POST"): STAFF_POST,
    ("/verwaltung/antraege/schalter", "GET"): STAFF_PAGE,
    ("/verwaltung/antraege/schalter", "POST"): STAFF_POST,
    ("/verwaltung/antraege/pass/<int:pass_id>/karte.pdf", "GET"): STAFF_PAGE,
    ("/verwaltung/paesse/", "GET"): STAFF_PAGE,
    ("/verwaltung/paesse/", "POST"): STAFF_POST,
    ("/verwaltung/paesse/<int:pass_id>", "GET"): STAFF_PAGE,
    ("/verwaltung/paesse/<int:pass_id>/sperren", "GET"): STAFF_PAGE,
    ("/verwaltung/paesse/<int:pass_id>/sperren", "POST"): STAFF_POST,
    ("/verwaltung/paesse/<int:pass_id>/ersetzen", "GET"): STAFF_PAGE,
    ("/verwaltung/paesse/<int:pass_id>/ersetzen", "POST"): STAFF_POST,
    ("/verwaltung/paesse/<int:pass_id>/verlaengern", "GET"): STAFF_PAGE,
    ("/verwaltung/paesse/<int:pass_id>/verlaengern", "POST"): STAFF_POST,
    ("/verwaltung/statistik/", "GET"): STAFF_PAGE,
    ("/verwaltung/statistik/aktualisieren", "POST"): STAFF_POST,
    ("/verwaltung/statistik/export/<key>.csv", "GET"): STAFF_PAGE,
    ("/verwaltung/statistik/bericht.pdf", "GET"): STAFF_PAGE,
    ("/verwaltung/protokoll/", "GET"): STAFF_PAGE,
}


def url_values(world: World) -> dict[str, Callable[[str], Any]]:
    """Each URL parameter filled with the object whose ownership matters (by rule text)."""
    tokens = {
        "/v/": world.pass_token,
        "/konto/bestaetigen/": world.confirm_token,
        "/konto/passwort-neu/": world.reset_token,
        "/konto/einladung/": world.invite_token,
    }
    return {
        "pass_id": lambda _r: world.pass_id,
        "redemption_id": lambda _r: world.redemption_ids["x"],
        "token_id": lambda _r: world.api_token_ids["x"],
        "venue_id": lambda _r: world.venue_ids["x"],
        "offer_id": lambda _r: world.offer_ids["x"],
        "provider_id": lambda _r: world.provider_ids["x"],
        "slug": lambda _r: world.provider_slugs["x"],
        "application_id": lambda _r: world.application_b,
        "user_id": lambda _r: world.user_ids["provider_x"],
        "category_id": lambda _r: world.category_id,
        "edition_id": lambda _r: world.edition_id,
        "municipality_id": lambda _r: world.municipality_id,
        "locality_id": lambda _r: world.locality_id,
        "code": lambda _r: world.postal_code,
        "lang": lambda _r: "en",
        "key": lambda _r: "kennzahlen",
        "token": lambda r: next(v for prefix, v in tokens.items() if r.startswith(prefix)),
    }


def form_data(world: World, rule: str) -> dict[str, Any]:
    """What a POST sends besides the CSRF token: the object whose ownership matters."""
    if rule == "/anbieter/einloesen":
        return {
            "code": world.pass_token,
            "offer_id": world.offer_ids["x"],
            "adults": 1,
            "children": 0,
            "idempotency_key": secrets.token_urlsafe(12),
        }
    if rule == "/anbieter/pruefen/ergebnis":
        return {"code": world.pass_token}
    return {}


def api_body(world: World, rule: str) -> dict[str, Any] | None:
    """The JSON body of an API call."""
    if rule == "/api/v1/checks":
        return {"code": world.pass_token}
    if rule == "/api/v1/redemptions":
        return {
            "code": world.pass_token,
            "offer_id": world.offer_ids["x"],
            "adults": 1,
            "children": 1,
            "idempotency_key": secrets.token_urlsafe(12),
        }
    return None


def routes(app: Flask) -> dict[tuple[str, str], Any]:
    """Every (rule, method) of the app except /static, HEAD and OPTIONS."""
    out = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out[(rule.rule, method)] = rule
    return out


def classify(response: Any) -> set[str]:
    """The outcome classes a response belongs to."""
    status = response.status_code
    classes = {str(status)}
    if is_login_redirect(response):
        classes.update((LOGIN, DONE_THEN_LOGIN))
        return classes
    if 200 <= status < 400:
        classes.add(OK)
    if status < 500 and status not in (401, 403, 404, 405):
        classes.add(REACH)
    return classes


def test_every_route_is_in_the_matrix(app: Flask) -> None:
    """A new route (or method) must be added to the table, and a removed one taken out."""
    present = set(routes(app))
    assert sorted(present - set(MATRIX)) == [], "routes missing from the authorization matrix"
    assert sorted(set(MATRIX) - present) == [], "rows for routes that no longer exist"
    assert all(len(row) == len(ROLES) for row in MATRIX.values())


def test_authorization_matrix(app: Flask, world: World) -> None:
    """Walk every route x method x role; refusals must also leave the database untouched."""
    rules = routes(app)
    values = url_values(world)
    token = csrf_for(app)
    mismatches: list[str] = []
    refused_but_wrote: list[str] = []
    server_errors: list[str] = []
    tally: Counter[str] = Counter()
    got_through = 0
    for (rule_text, method), rule in sorted(rules.items()):
        expected_row = MATRIX.get((rule_text, method))
        if expected_row is None:
            continue  # reported by test_every_route_is_in_the_matrix
        args = {name: values[name](rule_text) for name in rule.arguments}
        built = rule.build(args, append_unknown=False)
        assert built is not None, rule_text
        path = built[1]
        for role, expected in zip(ROLES, expected_row, strict=True):
            with rolled_back():
                client = client_for(app, world, role)
                kwargs: dict[str, Any] = {}
                if rule_text.startswith("/api/"):
                    kwargs["headers"] = api_headers(world, role)
                    body = api_body(world, rule_text)
                    if body is not None:
                        kwargs["json"] = body
                elif method != "GET":
                    kwargs["data"] = {**form_data(world, rule_text), "csrf_token": token}
                with spy_writes() as writes:
                    response = client.open(path, method=method, **kwargs)
                    response.get_data()  # run streamed bodies (CSV) inside the spy, then close
                    response.close()
                classes = classify(response)
            tally[expected] += 1
            where = f"{method} {path} as {role}"
            if response.status_code >= 500:
                server_errors.append(f"{where}: {response.status_code}")
            if expected not in classes:
                location = response.headers.get("Location", "")
                mismatches.append(
                    f"{where}: expected {expected}, got {response.status_code} {location}".strip()
                )
                if expected in REFUSALS and not classes & REFUSALS:
                    got_through += 1
            # A valid API token records when it was last used, even when the request it
            # authenticated is then refused; nothing else may be written on a refusal.
            written = [t for t in writes.tables if t != "api_token"]
            if expected in REFUSALS and written:
                refused_but_wrote.append(f"{where}: wrote to {writes.tables}")
    tried = sum(tally.values())
    record_figure(
        "authz-matrix",
        "authorization matrix (every route x method x 7 roles, real objects of each owner)",
        tried,
        got_through,
        len(server_errors),
        outcome=f"{got_through} got through, {len(mismatches)} unexpected answers",
        order=10,
        details={"refusals_expected": sum(tally[c] for c in REFUSALS), "by_class": dict(tally)},
    )
    assert server_errors == []
    assert mismatches == []
    assert refused_but_wrote == []
