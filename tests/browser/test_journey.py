"""The whole journey in Chromium, step by step, each step checking what the person sees.

A family registers, confirms its e-mail from the mail that arrived, describes its household and
applies (by keyboard only), and sees that it waits. Staff approve. The family opens its pass (QR
code and number) and downloads the PDF. A provider opens the check page and starts the camera,
which shows the pass's own QR code (a Y4M video made from the family's QR image): GÜLTIG with the
adults' names; the provider records 1 adult and 2 children (keyboard only). The family sees the
redemption, staff see it in the statistics, staff revoke the pass, the camera scan says GESPERRT,
and the typed pass number too: a typo is caught on the page before any request is sent.
"""

from __future__ import annotations

import io
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import zxingcpp
from PIL import Image
from playwright.sync_api import expect

from tests.browser.helpers import RequestLog, describe_violations, failing, qr_video, run_axe
from tests.browser.live import (
    PASSWORD,
    PROVIDER_EMAIL,
    SCREENSHOTS,
    STAFF_EMAIL,
    LiveServer,
    login,
)

FAMILY = "familie.journey@example.org"
ADULTS = [("Anna", "Müller-Lüdenscheidt"), ("Jörg", "Müller")]
CHILDREN = [("Mia", 6), ("Ben", 9)]  # first name, age in years on the day of the test
OFFER_TITLE = "10 % Ermäßigung im Erlebnispark"
CHECK_CHAR_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXY"


def audit(page: Any, name: str) -> None:
    """A state the every-page test cannot reach by GET: screenshot it and run axe on it."""
    folder = SCREENSHOTS / "journey"
    folder.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.screenshot(
        path=str(folder / f"{name}-{size['width']}x{size['height']}.png"), full_page=True
    )
    bad = failing(run_axe(page))
    assert not bad, f"axe on {name}:\n" + describe_violations(bad)


def see(page: Any, *texts: str) -> None:
    """The main area shows each text (waiting for the page that is loading)."""
    for wanted in texts:
        expect(page.locator("main")).to_contain_text(wanted)


def press(page: Any, key: str) -> None:
    """Press a key that submits a form or follows a link, and wait for the next page."""
    with page.expect_navigation():
        page.keyboard.press(key)


def focused(locator: Any) -> bool:
    """Whether the element has the keyboard focus."""
    return bool(locator.evaluate("el => el === document.activeElement"))


def tab_to(page: Any, locator: Any, limit: int = 80) -> None:
    """Press Tab until the element has the focus, as a keyboard user would."""
    for _ in range(limit):
        if focused(locator):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{limit} presses of Tab never reached {locator}")


def keyboard_type(page: Any, locator: Any, value: str) -> None:
    """Tab to a field and type into it."""
    tab_to(page, locator)
    page.keyboard.type(value)


def birth_date(age: int) -> date:
    """A birthday that makes a child `age` years old today, with day == month (e.g. 06.06.).

    Day equal to month, because headless Chromium's date field takes its digits in the order of
    its own UI locale (en-US: MM/DD/YYYY), whatever the page's language; "06062020" then means
    the same date in German and in US order. The month is kept away from today's month.
    """
    from kyffikus.models.base import berlin_today

    today = berlin_today()
    month = next(m for m in (3, 6, 9) if abs(m - today.month) >= 2)
    born = date(today.year - age, month, month)
    if (today.month, today.day) < (month, month):
        born = date(today.year - age - 1, month, month)
    return born


def typo(number: str) -> str:
    """The pass number with one character changed (the check character catches it)."""
    symbols = number.replace("-", "")
    first = symbols[3]
    other = next(c for c in CHECK_CHAR_ALPHABET if c != first)
    changed = symbols[:3] + other + symbols[4:]
    return f"{changed[:4]}-{changed[4:8]}-{changed[8:]}"


def test_journey(
    live_server: LiveServer, browser: Any, browser_with_camera: Any, tmp_path: Path
) -> None:
    """Register, confirm, apply, approve, show the pass, scan, redeem, history, statistics, revoke."""
    live = live_server
    outbox = live.outbox

    # ---- 1. The family registers ---------------------------------------------------------------
    family_ctx = browser.new_context(locale="de-DE", viewport={"width": 360, "height": 740})
    family = family_ctx.new_page()
    requests = RequestLog().attach(family)
    family.goto(live("/"))
    family.get_by_role("navigation", name="Hauptmenü").get_by_role(
        "link", name="Registrieren"
    ).click()
    see(family, "Konto für den Familienpass anlegen")
    family.get_by_label("E-Mail-Adresse").fill(FAMILY)
    family.get_by_label("Neues Passwort", exact=True).fill(PASSWORD)
    family.get_by_label("Neues Passwort wiederholen").fill(PASSWORD)
    family.get_by_role("button", name="Konto anlegen").click()
    see(family, "Fast geschafft", "Bitte bestätigen Sie Ihre E-Mail-Adresse")

    # ---- 2. ... confirms the address from the mail that arrived ------------------------------
    mail = outbox.wait_for(FAMILY)[-1]
    links = [u for u in outbox.links(mail) if "/konto/bestaetigen/" in u]
    assert links, f"no confirmation link in the mail: {outbox.body(mail)}"
    assert links[0].startswith(live.url), "the mailed link must point at this server (BASE_URL)"
    family.goto(links[0])
    see(family, "Bitte bestätigen Sie mit einem Klick")
    family.get_by_role("button", name="E-Mail-Adresse bestätigen").click()
    see(family, "Ihre E-Mail-Adresse ist bestätigt")

    # ---- 3. ... logs in, describes the household and applies: keyboard only -----------------
    login(family, live, FAMILY)
    see(family, "Mein Familienpass", "Haushalt beschreiben")
    tab_to(family, family.get_by_role("link", name="Haushalt angeben"))
    press(family, "Enter")
    see(family, "Ihr Haushalt")
    for i, (first, last) in enumerate(ADULTS):
        person = family.get_by_role("group", name=re.compile(f"Erwachsene Person {i + 1}"))
        keyboard_type(family, person.get_by_label("Vorname"), first)
        keyboard_type(family, person.get_by_label("Nachname"), last)
    for i, (first, age) in enumerate(CHILDREN):
        child = family.get_by_role("group", name=f"Kind {i + 1}", exact=True)
        keyboard_type(family, child.get_by_label("Vorname"), first)
        born = birth_date(age)
        date_input = child.get_by_label("Geburtsdatum")
        keyboard_type(family, date_input, born.strftime("%d%m%Y"))
        assert date_input.input_value() == born.isoformat()
    keyboard_type(family, family.get_by_label("Straße und Hausnummer"), "Am Possen 4")
    keyboard_type(family, family.get_by_label("Postleitzahl"), "99706")
    locality = family.get_by_label("Ort", exact=True)
    keyboard_type(family, locality, "Sondershausen")  # type-ahead in the closed <select>
    assert locality.evaluate("el => el.options[el.selectedIndex].text") == "Sondershausen (99706)"
    consent = family.get_by_label(re.compile("Ich habe die Datenschutzerklärung gelesen"))
    tab_to(family, consent)
    family.keyboard.press("Space")
    assert consent.is_checked()
    tab_to(family, family.get_by_role("button", name="Angaben speichern"))
    press(family, "Enter")
    see(family, "Ihre Angaben sind gespeichert", "Anna Müller-Lüdenscheidt", "Jörg Müller")
    expect(family.locator("main")).not_to_contain_text("Nicht erfüllt")
    audit(family, "family-application-ready")
    tab_to(family, family.get_by_role("button", name="Antrag abschicken"))
    press(family, "Enter")
    # The family sees that its application waits.
    see(family, "Ihr Antrag ist abgeschickt", "In Prüfung", "Das Landratsamt prüft Ihren Antrag")
    audit(family, "family-application-waiting")

    # ---- 4. Staff log in, open the queue and approve -----------------------------------------
    staff_ctx = browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 800})
    staff = staff_ctx.new_page()
    requests.attach(staff)
    login(staff, live, STAFF_EMAIL)
    staff_menu(staff, live, "Anträge")
    see(staff, "Anträge, älteste zuerst")
    staff.get_by_role("link", name="Anna Müller-Lüdenscheidt, Jörg Müller").click()
    see(staff, "In Prüfung", "Am Possen 4", "Mia")
    staff.get_by_role("button", name="Genehmigen und Pass ausstellen").click()
    see(staff, "Genehmigt")
    mails = outbox.wait_for(FAMILY, count=3)  # confirmation, application received, approved
    subjects = [str(m["Subject"]) for m in mails]
    assert "Ihr Familienpass Kyffikus ist da" in subjects, subjects

    # ---- 5. The family opens its pass: QR code and number; downloads the PDF ----------------
    family.goto(live("/familie/"))
    family.get_by_role("link", name="Pass zeigen").click()
    see(family, "Familienpass Kyffikus", "Anna Müller-Lüdenscheidt", "Jörg Müller", "2 Kinder")
    qr = family.get_by_role("img", name=re.compile("QR-Code des Familienpasses"))
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0"), "the QR image did not load"
    number = family.locator(".pass-number").inner_text().strip()
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{2}", number), number
    qr_response = family_ctx.request.get(live(qr.get_attribute("src")))
    assert qr_response.ok
    qr_png = Image.open(io.BytesIO(qr_response.body()))
    decoded = [r.text for r in zxingcpp.read_barcodes(qr_png)]
    assert len(decoded) == 1
    assert decoded[0].startswith(f"{live.url}/v/"), decoded

    # The card opens in the browser (Content-Disposition: inline), from where it is saved or printed.
    pdf_link = family.get_by_role("link", name="Karte zum Ausdrucken (PDF)")
    with family.expect_response(lambda r: r.url.endswith("/karte.pdf")) as pdf_info:
        pdf_link.click()
    pdf = pdf_info.value
    assert pdf.status == 200
    assert pdf.headers["content-type"].startswith("application/pdf")
    # The browser shows it in its PDF viewer; the file itself, with the family's cookies:
    card = family_ctx.request.get(pdf.url)
    assert card.headers["content-type"].startswith("application/pdf")
    assert card.body().startswith(b"%PDF")
    family.go_back()

    # ---- 6. A provider scans the pass with the camera: keyboard only -------------------------
    camera = browser_with_camera(qr_video(tmp_path / "pass.y4m", qr_png))
    provider_ctx = camera.new_context(locale="de-DE", viewport={"width": 360, "height": 740})
    provider = provider_ctx.new_page()
    requests.attach(provider)
    login(provider, live, PROVIDER_EMAIL)
    timing = scan(provider, live)
    expect(provider.get_by_role("heading", name="GÜLTIG")).to_be_visible()
    see(provider, *(f"{first} {last}" for first, last in ADULTS), "2 Kinder")
    expect(provider.locator("main")).not_to_contain_text("Mia")  # never a child's name
    expect(provider.locator("main")).not_to_contain_text("Am Possen 4")  # nor the address
    audit(provider, "provider-result-valid")

    offer = provider.get_by_role("article", name=OFFER_TITLE)
    adults = offer.get_by_label("Erwachsene")
    children = offer.get_by_label("Kinder")
    tab_to(provider, adults)
    provider.keyboard.press("Home")  # 0
    provider.keyboard.press("ArrowDown")  # 1
    tab_to(provider, children)
    provider.keyboard.press("Home")
    provider.keyboard.press("ArrowDown")
    provider.keyboard.press("ArrowDown")  # 2
    assert adults.input_value() == "1"
    assert children.input_value() == "2"
    tab_to(provider, offer.get_by_role("button", name=re.compile("Einlösen")))
    press(provider, "Enter")
    offer = provider.get_by_role("article", name=OFFER_TITLE)
    expect(offer).to_contain_text("Gespeichert: 1 Erwachsene, 2 Kinder.")
    expect(offer).to_contain_text("Bereits eingelöst")  # once per day: now shown as used
    audit(provider, "provider-redeemed")

    # ---- 7. The family sees the redemption in its history ------------------------------------
    family.goto(live("/familie/"))
    family.get_by_role("link", name="Wo habe ich den Pass genutzt?").click()
    see(family, "Wo Sie den Familienpass genutzt haben")
    row = family.get_by_role("row").filter(has_text=OFFER_TITLE)
    expect(row).to_have_count(1)
    cells = [c.strip() for c in row.get_by_role("cell").all_inner_texts()]
    assert "Erlebnispark auf dem Possen" in cells[1], cells
    assert cells[3:5] == ["1", "2"], cells

    # ---- 8. Staff see it in the statistics: 4 earlier + this one = 5 (below 5 shows "<5") ----
    staff_menu(staff, live, "Statistik")
    figure = staff.locator(".stat").filter(has_text="Einlösungen im Jahr")
    expect(figure.locator(".stat-value")).to_have_text("5")

    # ---- 9. Staff revoke the pass ------------------------------------------------------------
    staff_menu(staff, live, "Pässe")
    staff.get_by_label("Passnummer, Name oder Postleitzahl").fill(number)
    staff.get_by_role("button", name="Suchen").click()
    staff.get_by_role("link", name=number).click()
    staff.get_by_role("link", name="Sperren").click()
    staff.get_by_label("Grund der Sperrung").fill("Verlust gemeldet")
    staff.get_by_label(re.compile("Ja, diesen Familienpass jetzt sperren")).check()
    staff.get_by_role("button", name=re.compile("sperren$")).click()
    see(staff, "Gesperrt", "Verlust gemeldet")

    # ---- 10. The provider scans again: GESPERRT ----------------------------------------------
    scan(provider, live)
    expect(provider.get_by_role("heading", name="GESPERRT")).to_be_visible()
    expect(provider.locator("main")).not_to_contain_text("Anna")  # no names for a revoked pass
    audit(provider, "provider-result-revoked")

    # ---- 11. The same with the typed number: a typo is caught before any request -------------
    provider.goto(live("/anbieter/pruefen"))
    field = provider.get_by_role("textbox", name="Passnummer")
    posts: list[str] = []
    provider.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    keyboard_type(provider, field, typo(number))
    provider.keyboard.press("Enter")
    expect(provider.locator("#pass-number-error")).to_contain_text("Das Prüfzeichen passt nicht")
    provider.wait_for_timeout(300)  # a request, if one were sent, would show up by now
    assert posts == [], f"the typo was sent: {posts}"
    expect(field).to_have_attribute("aria-invalid", "true")
    assert focused(field), "the focus stays in the field to correct it"
    audit(provider, "provider-number-typo")
    provider.keyboard.press("Control+A")
    provider.keyboard.type(number.lower().replace("-", " "))  # as typed at a till
    press(provider, "Enter")
    expect(provider.get_by_role("heading", name="GESPERRT")).to_be_visible()
    see(provider, "gesperrt")
    assert len(posts) == 1, posts

    assert requests.foreign == [], f"requests left 127.0.0.1: {requests.foreign}"
    print(
        "\nscan timing (fake camera, headless Chromium): first frame -> code decoded "
        f"{timing['decoded']:.0f} ms; first frame -> result shown {timing['shown']:.0f} ms; "
        f"camera start -> result shown {timing['total']:.0f} ms"
    )
    for ctx in (family_ctx, staff_ctx, provider_ctx):
        ctx.close()


def staff_menu(page: Any, live: LiveServer, item: str) -> None:
    """Open an area of the staff pages through the menu on the staff overview."""
    page.goto(live("/verwaltung/"))
    menu = page.get_by_role("navigation", name="Verwaltung", exact=True)
    menu.get_by_role("link", name=item, exact=True).click()


def scan(page: Any, live: LiveServer) -> dict[str, float]:
    """Open the check page, start the camera by keyboard, wait for the result; return the timing."""
    page.goto(live("/anbieter/pruefen"))
    assert page.get_by_role("heading", name="Pass prüfen", exact=True).is_visible()
    origin = page.evaluate("performance.timeOrigin")
    start = page.get_by_role("button", name="Kamera starten")
    tab_to(page, start)
    page.keyboard.press("Enter")
    page.wait_for_url("**/anbieter/pruefen/ergebnis", timeout=15000)
    expect(page.locator("#result")).to_be_visible()
    measured = json.loads(page.evaluate("sessionStorage.getItem('kyffikusScanTiming')"))
    shown = page.evaluate(
        "performance.timeOrigin + performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
    )
    first = origin + measured["firstFrame"]
    return {
        "decoded": measured["found"] - measured["firstFrame"],
        "shown": shown - first,
        "total": shown - (origin + measured["started"]),
    }
