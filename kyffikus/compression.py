"""gzip for HTML, JSON and static text files, when the client accepts it.

A small after_request of our own rather than Flask-Compress: we need gzip only (every browser and
till system speaks it), the rules that matter here are ours anyway (never touch a streamed CSV export,
never a PNG, leave tiny bodies alone), and it adds no dependency (Flask-Compress pulls in Brotli and
zstandard bindings).

Static text files (CSS, JavaScript, SVG) are compressed once per file version and kept in memory
(a few hundred KB at most); their ETag becomes weak so a revalidation still answers 304.
"""

from __future__ import annotations

import gzip
import os
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.security import safe_join

# Below this, gzip's header and the CPU are not worth it (an API error, a 302).
MIN_SIZE = 500
# Pages and JSON are compressed on every answer: level 1 (nginx's default gzip_comp_level) costs
# a third of level 6's CPU for a body about a tenth larger (the check page: 3.5 KB, not 3.1 KB).
LEVEL = 1
# Static files are compressed once per version and kept: the smallest body is worth its CPU.
STATIC_LEVEL = 9

COMPRESSIBLE = frozenset(
    {
        "text/html",
        "application/json",
        "application/problem+json",
        "text/plain",
        "text/csv",
        "text/css",
        "text/javascript",
        "application/javascript",
        "image/svg+xml",
        "application/xml",
        "text/xml",
    }
)
STATIC_COMPRESSIBLE = frozenset(
    {"text/css", "text/javascript", "application/javascript", "image/svg+xml"}
)

_static_cache: dict[tuple[str, int, int], bytes] = {}


def _accepts_gzip() -> bool:
    return request.accept_encodings["gzip"] > 0


def _gzip(data: bytes, level: int = LEVEL) -> bytes:
    # mtime=0: the same body always compresses to the same bytes.
    return gzip.compress(data, compresslevel=level, mtime=0)


def _static_gzip(filename: str) -> bytes | None:
    folder = current_app.static_folder
    path = safe_join(folder, filename) if folder else None
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    key = (path, stat.st_mtime_ns, stat.st_size)
    body = _static_cache.get(key)
    if body is None:
        with open(path, "rb") as handle:
            body = _gzip(handle.read(), STATIC_LEVEL)
        _static_cache[key] = body
    return body


def _close_body(response: Response) -> None:
    close = getattr(response.response, "close", None)
    if close is not None:
        close()


def compress_response(response: Response) -> Response:
    """gzip the body of a compressible, non-streamed response when the client accepts gzip."""
    mimetype = response.mimetype or ""
    if mimetype not in COMPRESSIBLE:
        return response
    # Whatever we answer, a cache must keep gzip and identity apart.
    response.vary.add("Accept-Encoding")
    if (
        response.status_code < 200
        or response.status_code in (204, 206, 304)
        or "Content-Encoding" in response.headers
        or request.method == "HEAD"
        or not _accepts_gzip()
    ):
        return response
    if request.endpoint == "static" and response.direct_passthrough:
        if mimetype not in STATIC_COMPRESSIBLE or response.status_code != 200:
            return response
        body = _static_gzip((request.view_args or {}).get("filename", ""))
        if body is None:
            return response
        _close_body(response)
        response.direct_passthrough = False
        response.set_data(body)
        # Byte ranges of the gzip body are not what a client asked ranges of: offer none.
        response.headers.pop("Accept-Ranges", None)
    else:
        # Streamed bodies (CSV exports) go out as they are produced; buffering them would defeat it.
        if response.is_streamed or response.direct_passthrough:
            return response
        data = response.get_data()
        if len(data) < MIN_SIZE:
            return response
        response.set_data(_gzip(data))
    # A weak ETag: the gzip body differs byte for byte, but If-None-Match (compared weakly)
    # still finds it, so a revalidation answers 304.
    etag, weak = response.get_etag()
    if etag and not weak:
        response.set_etag(etag, weak=True)
    response.headers["Content-Encoding"] = "gzip"
    return response


def init_app(app: Flask) -> None:
    """Compress responses after every other after_request hook has run."""
    # after_request hooks run in reverse order of registration: insert first to run last.
    funcs: list[Any] = app.after_request_funcs.setdefault(None, [])
    funcs.insert(0, compress_response)
