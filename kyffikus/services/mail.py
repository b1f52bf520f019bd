"""Outgoing e-mail: SMTP in production and tests, the console for `make run`."""

from __future__ import annotations

import logging
import smtplib
import sys
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app, render_template

log = logging.getLogger("kyffikus.mail")


def send_mail(to: str, subject: str, template: str, **context: object) -> None:
    """Render templates/emails/<template>.txt and send it to one recipient."""
    body = render_template(f"emails/{template}.txt", **context)
    cfg = current_app.config
    msg = EmailMessage()
    msg["From"] = cfg["MAIL_FROM"]
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="kyffikus.local")
    msg.set_content(body)
    backend = cfg.get("MAIL_BACKEND", "smtp")
    if backend == "console":
        sys.stdout.write(
            f"\n----- E-Mail an {to} -----\nBetreff: {subject}\n\n{body}\n----- Ende -----\n"
        )
        sys.stdout.flush()
        return
    if backend == "none":
        return
    with smtplib.SMTP(
        cfg["MAIL_SERVER"], int(cfg["MAIL_PORT"]), timeout=cfg["MAIL_TIMEOUT"]
    ) as smtp:
        if cfg.get("MAIL_USE_TLS"):
            smtp.starttls()
        if cfg.get("MAIL_USERNAME"):
            smtp.login(cfg["MAIL_USERNAME"], cfg["MAIL_PASSWORD"] or "")
        smtp.send_message(msg)
    log.info("mail sent: %s", template)
