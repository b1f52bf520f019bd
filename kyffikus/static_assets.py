"""Fingerprinted static URLs and their cache lifetimes.

Every ``url_for("static", filename=...)`` gets ``?v=<first 12 hex digits of the file's SHA-256>``
(a URL default, so every template is covered without changes; ``asset_url(path)`` is the same as a
template global). The digest is computed once per process and cached (in debug mode it follows the
file's mtime, so edited CSS shows up at once).

A static request whose ``v`` matches the file's current digest is cacheable for a year and immutable:
a changed file gets a new URL. Anything else (no ``v``, or a ``v`` from another release during a
rolling deploy) gets a short lifetime, so a browser never keeps a wrong file under a fingerprinted URL.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from flask import Flask, Response, current_app, request, url_for
from werkzeug.security import safe_join

LONG_CACHE = "public, max-age=31536000, immutable"
# Unfingerprinted static files: short, so a deploy shows within minutes.
SHORT_MAX_AGE = 300
DIGEST_LENGTH = 12

_digests: dict[tuple[str, str], tuple[Any, str | None]] = {}


def _file_digest(static_folder: str, filename: str, follow_mtime: bool) -> str | None:
    """The SHA-256 prefix of a static file's content, or None if there is no such file."""
    key = (static_folder, filename)
    cached = _digests.get(key)
    if cached is not None and not follow_mtime:
        return cached[1]
    path = safe_join(static_folder, filename)
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    stamp = (stat.st_mtime_ns, stat.st_size)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(65536), b""):
            sha.update(chunk)
    digest = sha.hexdigest()[:DIGEST_LENGTH]
    _digests[key] = (stamp, digest)
    return digest


def static_digest(filename: str) -> str | None:
    """The fingerprint of a file under the app's static folder (cached per process)."""
    app = current_app
    if not app.static_folder:
        return None
    return _file_digest(app.static_folder, filename, follow_mtime=bool(app.debug))


def asset_url(path: str) -> str:
    """The fingerprinted URL of a static file: /static/<path>?v=<digest>."""
    return url_for("static", filename=path)


def _add_fingerprint(endpoint: str, values: dict[str, Any]) -> None:
    if endpoint != "static" or "v" in values:
        return
    filename = values.get("filename")
    if not filename:
        return
    digest = static_digest(str(filename))
    if digest:
        values["v"] = digest


def _static_cache_headers(response: Response) -> Response:
    if request.endpoint != "static" or response.status_code not in (200, 206, 304):
        return response
    filename = (request.view_args or {}).get("filename", "")
    version = request.args.get("v")
    if version and filename and version == static_digest(filename):
        response.headers["Cache-Control"] = LONG_CACHE
    else:
        response.headers["Cache-Control"] = f"public, max-age={SHORT_MAX_AGE}"
    response.headers.pop("Expires", None)
    return response


def init_app(app: Flask) -> None:
    """Fingerprint static URLs and set their cache lifetimes."""
    app.url_defaults(_add_fingerprint)
    app.jinja_env.globals["asset_url"] = asset_url
    app.after_request(_static_cache_headers)
