"""The district office's pages."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("staff", __name__)


@bp.get("/")
def dashboard() -> str:
    """The staff overview."""
    return render_template("public/home.html")
