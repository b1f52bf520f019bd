"""Accounts: register, confirm, login, logout, password change and reset."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("auth", __name__)


@bp.route("/anmelden", methods=["GET", "POST"])
def login() -> str:
    """Log in."""
    return render_template("public/home.html")


@bp.route("/registrieren", methods=["GET", "POST"])
def register() -> str:
    """Register a family account."""
    return render_template("public/home.html")


@bp.post("/abmelden")
def logout() -> str:
    """Log out everywhere."""
    return render_template("public/home.html")
