"""The provider's pages: check a pass, record redemptions, history, account, API tokens."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("provider", __name__)


@bp.get("/pruefen")
def check() -> str:
    """The check page for the till."""
    return render_template("public/home.html")


@bp.get("/einloesungen")
def history() -> str:
    """The provider's redemptions."""
    return render_template("public/home.html")
