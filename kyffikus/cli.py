"""`flask --app kyffikus ...` command groups; commands call the same services as the views."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

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


# ---- catalogue -----------------------------------------------------------------------------


# ---- users ---------------------------------------------------------------------------------


# ---- demo ----------------------------------------------------------------------------------


# ---- passes --------------------------------------------------------------------------------


# ---- retention -----------------------------------------------------------------------------
