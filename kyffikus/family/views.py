"""The family's pages: household, application, pass, redemptions, data rights."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("family", __name__)


@bp.get("/")
def dashboard() -> str:
    """The family's overview."""
    return render_template("public/home.html")
