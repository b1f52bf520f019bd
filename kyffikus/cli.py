"""`flask --app kyffikus ...` command groups; commands call the same services as the views."""

from __future__ import annotations

from pathlib import Path

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


# ---- demo ----------------------------------------------------------------------------------


# ---- passes --------------------------------------------------------------------------------


# ---- retention -----------------------------------------------------------------------------
