"""The JSON API (v1): public catalogue, checks and redemptions for providers."""

from __future__ import annotations

from flask import Blueprint

from kyffikus.extensions import csrf

bp = Blueprint("api", __name__)
csrf.exempt(bp)  # Bearer tokens, not cookies, authenticate API writes: no CSRF surface.
