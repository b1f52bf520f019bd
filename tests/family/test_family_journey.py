"""The whole family journey through the test client, as a family and a staff member would click it."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select

from kyffikus.extensions import db
from kyffikus.models import Application, Pass, User
from tests.conftest import TEST_PASSWORD, csrf_token, login_as, post_form
from tests.family.family_helpers import decode_qr, household_form, pdf_text, render_pdf_pages

EMAIL = "familie.reise@example.org"


def test_register_confirm_apply_approve_show_print(
    app, client, localities, make_user, outbox
) -> None:
    # 1. Register.
    response = post_form(
        client,
        "/konto/registrieren",
        {"email": EMAIL, "password": TEST_PASSWORD, "password_repeat": TEST_PASSWORD},
    )
    assert response.status_code == 302, response.get_data(as_text=True)

    # 2. Confirm the address from the mail that arrived.
    (mail,) = outbox.wait_for(EMAIL)
    (link,) = [u for u in outbox.links(mail) if "/konto/bestaetigen/" in u]
    path = urlsplit(link).path
    response = client.post(path, data={"csrf_token": csrf_token(client, path)})
    assert response.status_code == 302
    user = db.session.scalars(select(User).where(User.email == EMAIL)).one()
    assert user.email_confirmed_at is not None

    # 3. Log in.
    response = post_form(client, "/konto/anmelden", {"email": EMAIL, "password": TEST_PASSWORD})
    assert response.status_code == 302
    assert "Haushalt angeben" in client.get("/familie/").get_data(as_text=True)

    # 4. Describe the household and apply.
    response = post_form(
        client,
        "/familie/haushalt",
        household_form(
            adults=[("Ŝimon", "Müller-Lüdenscheidt"), ("Siobhán", "O'Brien")],
            children=[("Ella", "2015-07-01"), ("Noah", "2021-11-30")],
        ),
    )
    assert response.status_code == 302
    assert "Erfüllt:" in client.get("/familie/antrag").get_data(as_text=True)
    assert post_form(client, "/familie/antrag", {}).status_code == 302
    outbox.wait_for(EMAIL, count=2)
    application = db.session.scalars(
        select(Application).where(Application.status == "submitted")
    ).one()

    # 5. Staff approve it from the queue.
    staff = make_user("staff")
    staff_client = app.test_client()
    login_as(staff_client, staff)
    queue = staff_client.get("/verwaltung/antraege/").get_data(as_text=True)
    assert "Ŝimon Müller-Lüdenscheidt" in queue
    detail = f"/verwaltung/antraege/{application.id}"
    assert post_form(staff_client, f"{detail}/genehmigen", {}, token_from=detail).status_code == 302

    # 6. The family is mailed a link to its pass.
    approved_mail = outbox.wait_for(EMAIL, count=3)[-1]
    pass_ = db.session.scalars(select(Pass).where(Pass.application_id == application.id)).one()
    assert pass_.grouped_number in outbox.body(approved_mail)
    assert "http://localhost/familie/pass" in outbox.links(approved_mail)

    # 7. The pass page, its QR code and the printable card.
    page = client.get("/familie/pass").get_data(as_text=True)
    assert pass_.grouped_number in page
    assert "Ŝimon Müller-Lüdenscheidt" in page
    pass_url = f"http://localhost/v/{pass_.token}"
    assert decode_qr(client.get(f"/familie/pass/{pass_.id}/qr.png").data) == [pass_url]
    card = client.get(f"/familie/pass/{pass_.id}/karte.pdf")
    assert card.status_code == 200
    assert decode_qr(render_pdf_pages(card.data)[0]) == [pass_url]
    assert "Ŝimon Müller-Lüdenscheidt" in pdf_text(card.data)

    # 8. Any phone camera opens the QR address: it says "valid", and names nobody.
    public = app.test_client().get(urlsplit(pass_url).path).get_data(as_text=True)
    assert "GÜLTIG" in public
    assert "NICHT GÜLTIG" not in public
    assert "Müller" not in public
