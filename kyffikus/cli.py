"""`flask --app kyffikus ...` command groups; commands call the same services as the views."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

catalogue_cli = AppGroup("catalogue", help="Den Angebotskatalog laden und prüfen.")
users_cli = AppGroup("users", help="Benutzerkonten anlegen und verwalten.")
demo_cli = AppGroup("demo", help="Demo-Daten für die lokale Entwicklung.")
passes_cli = AppGroup("passes", help="Familienpässe pflegen (für cron).")
retention_cli = AppGroup("retention", help="Löschfristen durchsetzen (für cron).")


def register_cli(app: Flask) -> None:
    """Attach every command group to the app."""
    for group in (catalogue_cli, users_cli, demo_cli, passes_cli, retention_cli):
        app.cli.add_command(group)
    app.cli.add_command(bootstrap)


@click.command("bootstrap")
@with_appcontext
def bootstrap() -> None:
    """For `make run`: load the catalogue and the demo accounts when the database is empty."""
    from sqlalchemy import func, select

    from kyffikus.extensions import db
    from kyffikus.models import Provider, User

    if db.session.scalar(select(func.count()).select_from(Provider)) == 0:
        click.echo("Leere Datenbank: Katalog wird geladen.")
        ctx = click.get_current_context()
        ctx.invoke(catalogue_cli.get_command(ctx, "load"))  # type: ignore[arg-type]
    if db.session.scalar(select(func.count()).select_from(User)) == 0:
        ctx = click.get_current_context()
        demo_load = demo_cli.get_command(ctx, "load")
        if demo_load is not None:
            ctx.invoke(demo_load)
    else:
        # A second `make run` should still show the logins, if the demo accounts are there.
        emails = [email for email, _role, _label in DEMO_ACCOUNTS]
        present = set(db.session.scalars(select(User.email).where(User.email.in_(emails))))
        if present:
            click.echo(f"Demo-Anmeldungen (Passwort für alle: {DEMO_PASSWORD}):")
            for email, _role, label in DEMO_ACCOUNTS:
                if email in present:
                    click.echo(f"  {label:<15} {email}")


# ---- catalogue -----------------------------------------------------------------------------


@catalogue_cli.command("load")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Katalogdatei (JSON Lines); Standard: kyffikus/data/catalogue.jsonl.",
)
@click.option(
    "--localities",
    "localities_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Gemeinden und Orte (JSON); Standard: kyffikus/data/localities.json.",
)
def catalogue_load(path: Path | None, localities_path: Path | None) -> None:
    """Katalog und Orte laden: prüft erst alles, legt dann an und aktualisiert (löscht nichts)."""
    from kyffikus.extensions import db
    from kyffikus.services.catalogue_load import CatalogueFileError, load_catalogue

    try:
        report = load_catalogue(path, localities_path)
    except CatalogueFileError as exc:
        db.session.rollback()
        for error in exc.errors:
            click.echo(str(error), err=True)
        click.echo(exc.message, err=True)
        raise SystemExit(1) from exc
    db.session.commit()
    for line in report.lines():
        click.echo(line)
    click.echo(f"Fertig: {report.total_added} neu, {report.total_updated} geändert.")


# ---- users ---------------------------------------------------------------------------------


@users_cli.command("create")
@click.option("--email", required=True, help="E-Mail-Adresse (wird auch der Anmeldename).")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["family", "provider", "staff", "admin"]),
    help="Rolle des Kontos.",
)
@click.option(
    "--provider",
    "provider_slug",
    default=None,
    help="Kurzname (slug) des Anbieters; nur für --role provider.",
)
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Datei, deren erste Zeile das Passwort ist (sonst wird verdeckt danach gefragt).",
)
def users_create(
    email: str, role: str, provider_slug: str | None, password_file: Path | None
) -> None:
    """Ein Konto mit bestätigter E-Mail-Adresse anlegen (Passwortregeln wie bei der Registrierung)."""
    from sqlalchemy import select

    from kyffikus.extensions import db
    from kyffikus.models import Provider
    from kyffikus.services import DomainError
    from kyffikus.services.accounts import create_user

    provider = None
    if role == "provider" and not provider_slug:
        click.echo(
            "Für die Rolle provider ist --provider SLUG nötig (der Kurzname des Anbieters).",
            err=True,
        )
        raise SystemExit(1)
    if provider_slug:
        if role != "provider":
            click.echo("--provider passt nur zur Rolle provider.", err=True)
            raise SystemExit(1)
        provider = db.session.scalars(
            select(Provider).where(Provider.slug == provider_slug)
        ).first()
        if provider is None:
            click.echo(
                f"Unbekannter Anbieter: {provider_slug!r}. Kurznamen zeigt die Anbieterliste.",
                err=True,
            )
            raise SystemExit(1)
    if password_file is not None:
        lines = password_file.read_text(encoding="utf-8").splitlines()
        password = lines[0] if lines else ""
    else:
        password = click.prompt(
            "Passwort", hide_input=True, confirmation_prompt="Passwort wiederholen"
        )
    try:
        user = create_user(email, role, password, provider=provider, confirmed=True)
    except DomainError as exc:
        db.session.rollback()
        click.echo(exc.message, err=True)
        raise SystemExit(1) from exc
    db.session.commit()
    click.echo(f"Konto angelegt: {user.email} (Rolle {user.role}, Nr. {user.id}).")


# ---- demo ----------------------------------------------------------------------------------

# Printed on purpose: demo data is for trying Kyffikus out and never loads in production by itself.
DEMO_PASSWORD = "Kyffikus-Demo-2026"  # noqa: S105
DEMO_PROVIDER_SLUG = "erlebnispark-possen"
DEMO_ACCOUNTS = (
    ("familie@demo.kyffikus.de", "family", "Familie"),
    ("anbieter@demo.kyffikus.de", "provider", "Anbieter"),
    ("verwaltung@demo.kyffikus.de", "staff", "Verwaltung"),
    ("admin@demo.kyffikus.de", "admin", "Administration"),
)


@demo_cli.command("load")
def demo_load() -> None:
    """Demo-Konten für jede Rolle und eine Demo-Familie mit gültigem Pass anlegen (wiederholbar)."""
    import os
    from datetime import date

    from flask import current_app
    from sqlalchemy import func, select

    from kyffikus.config import is_production
    from kyffikus.extensions import db
    from kyffikus.models import Locality, Provider
    from kyffikus.services import DomainError
    from kyffikus.services.accounts import create_user, find_user_by_email
    from kyffikus.services.applications import (
        HouseholdInput,
        active_pass,
        approve_application,
        household_of,
        open_application,
        save_household,
        submit_application,
    )
    from kyffikus.services.catalogue_load import load_localities

    demo_wanted = bool(current_app.config.get("DEMO")) or os.environ.get("KYFFIKUS_DEMO") == "1"
    if is_production(current_app.config) and not demo_wanted:
        click.echo(
            "Die Demo-Daten werden in Produktion nicht geladen (sie enthalten bekannte Passwörter). "
            "Wer das wirklich will, setzt KYFFIKUS_DEMO=1.",
            err=True,
        )
        raise SystemExit(1)
    try:
        if db.session.scalar(select(func.count()).select_from(Locality)) == 0:
            load_localities()
            db.session.flush()
        provider = (
            db.session.scalars(select(Provider).where(Provider.slug == DEMO_PROVIDER_SLUG)).first()
            or db.session.scalars(select(Provider).order_by(Provider.name)).first()
        )
        if provider is None:
            provider = Provider(
                slug="demo-anbieter",
                name="Demo-Anbieter",
                description="Ein Beispielanbieter für die Demo.",
                is_sample=True,
            )
            db.session.add(provider)
            db.session.flush()
        users = {}
        for email, role, _label in DEMO_ACCOUNTS:
            user = find_user_by_email(email)
            if user is None:
                user = create_user(
                    email,
                    role,
                    DEMO_PASSWORD,
                    provider=provider if role == "provider" else None,
                    confirmed=True,
                )
            users[role] = user
        family = users["family"]
        household = household_of(family)
        if household is None:
            locality = db.session.scalars(
                select(Locality).where(
                    Locality.postal_code == "99706", Locality.name == "Sondershausen"
                )
            ).one()
            household = save_household(
                family,
                HouseholdInput(
                    adults=[("Maria", "Beispiel"), ("Jonas", "Beispiel")],
                    children=[("Lena", date(2016, 4, 12)), ("Paul", date(2020, 9, 3))],
                    street="Hauptstraße 12",
                    postal_code="99706",
                    locality=str(locality.id),
                    phone=None,
                    consent=True,
                ),
            )
        pass_ = active_pass(household)
        if pass_ is None:
            application = open_application(household)
            if application is None or application.status != "submitted":
                application = submit_application(household, family)
            pass_ = active_pass(household) or approve_application(application, users["staff"])
    except DomainError as exc:
        db.session.rollback()
        click.echo(f"Demo-Daten nicht geladen: {exc.message}", err=True)
        raise SystemExit(1) from exc
    db.session.commit()
    click.echo("Demo-Daten geladen. Anmeldungen (Passwort für alle: " + DEMO_PASSWORD + "):")
    for email, role, label in DEMO_ACCOUNTS:
        extra = f" – {provider.name}" if role == "provider" else ""
        click.echo(f"  {label:<15} {email}{extra}")
    click.echo(
        f"Demo-Familie: Pass {pass_.grouped_number}, gültig bis {pass_.valid_until:%d.%m.%Y}."
    )


# ---- passes --------------------------------------------------------------------------------


@passes_cli.command("expire")
@click.option(
    "--on",
    "on",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Stichtag (JJJJ-MM-TT); Standard: heute (Europe/Berlin).",
)
def passes_expire(on: Any) -> None:
    """Gültige Pässe, deren Gültigkeit vor dem Stichtag endete, als abgelaufen markieren."""
    from kyffikus.extensions import db
    from kyffikus.services.passes import expire_passes

    count = expire_passes(on.date() if on is not None else None)
    db.session.commit()
    noun = "Familienpass" if count == 1 else "Familienpässe"
    click.echo(f"Als abgelaufen markiert: {count} {noun}.")


# ---- retention -----------------------------------------------------------------------------


@retention_cli.command("run")
@click.option("--dry-run", is_flag=True, help="Nur zählen, nichts löschen.")
def retention_run(dry_run: bool) -> None:
    """Löschfristen durchsetzen: abgelehnte Anträge, beendete Pässe, alte Einlösungen."""
    from kyffikus.extensions import db
    from kyffikus.models.base import utcnow
    from kyffikus.services.retention import run_retention

    report = run_retention(utcnow(), dry_run=dry_run)
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    for line in report.lines():
        click.echo(line)
