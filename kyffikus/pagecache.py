"""Rendered pages kept for a short while, with the per-request parts filled in at every answer.

Two pages are rendered over and over with the same result: the offer directory (the same filters
give the same page to everybody of the same role, until staff change the catalogue) and the frame
of the provider's check page (everything but the result). Rendering them costs far more CPU than
the rest of those requests (Jinja, WTForms, gettext, url_for), so each worker keeps the rendered
text and only fills in what differs from request to request:

- the CSP nonce of the script tags (a fresh one for every answer, as before),
- the CSRF token of the forms (Flask-WTF's, generated as before; only when the page has a form),
- the language switch's link, which names the current path (/v/<token> carries a pass token),
- and "slots" the caller renders itself, e.g. the check result.

While a page is rendered for the cache, those parts are written as markers: a random string made
once per process followed by the part's name. Nobody can type a marker into a search field, since
the random part is never shown. A page is rendered normally (and not kept) when the session has
flashed messages to show.

The key names everything else the page depends on (template, language, role, the query); an
entry is also dropped when the catalogue was written in this process (the directory's version
counter) and after PAGE_CACHE_SECONDS (default 60 s, 0 switches the cache off), so a change made on
another worker or host shows within a minute, like the directory's filter metadata. Each worker
keeps at most PAGE_CACHE_ENTRIES pages (default 256, least recently used dropped first): a few MB.
Nothing here is needed by another worker: it is a cache, never the only copy.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from flask import current_app, g, render_template, request, session, url_for
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape

from kyffikus.services import directory

DEFAULT_SECONDS = 60.0
DEFAULT_ENTRIES = 256
_MARK = "kyf" + secrets.token_hex(12)
_SHELL = "kyffikus.page_shell"
_CACHE = "kyffikus.page_cache"
LANGUAGES = ("de", "en")
# The characters werkzeug leaves unquoted in a query it builds (the URL standard's safe set).
URL_QUERY_SAFE = "!$'()*,/:;?@"


def marker(name: str) -> str:
    """The text that stands for a per-request part while a page is rendered for the cache."""
    return f"{_MARK}{name}_"


def rendering_shell() -> bool:
    """Whether the current render is for the cache (template helpers then answer markers)."""
    return bool(g.get(_SHELL))


# The switch's path per script root and language: url_for builds it through the URL map (tens of
# microseconds) on every page; only the query (this page's path) differs from page to page.
_lang_paths: dict[tuple[str, str], str] = {}


def lang_switch_url(code: str) -> str:
    """The link that switches to a language and comes back to this page (a template global).

    The same text as url_for("public.set_language", lang=code, next=request.full_path).
    """
    if rendering_shell():
        return marker(f"lang_{code}")  # letters, digits and "_": nothing to escape
    key = (request.script_root, code)
    path = _lang_paths.get(key)
    if path is None:
        path = _lang_paths[key] = url_for("public.set_language", lang=code)
    # Encoded as url_for encodes its query arguments (werkzeug.urls._urlencode).
    return f"{path}?{urlencode([('next', request.full_path)], safe=URL_QUERY_SAFE)}"


def _settings() -> tuple[float, int]:
    config = current_app.config
    return (
        float(config.get("PAGE_CACHE_SECONDS", DEFAULT_SECONDS)),
        int(config.get("PAGE_CACHE_ENTRIES", DEFAULT_ENTRIES)),
    )


def cacheable() -> bool:
    """Whether this request may get (and leave) a cached page: nothing flashed to show."""
    return _settings()[0] > 0 and "_flashes" not in session


# A kept page: the text split at its markers, literal text and part names taking turns
# (literal, name, literal, ..., literal), so that filling it in is one pass and one join.
Pieces = tuple[str, ...]
FIXED_PARTS = ("nonce", "csrf", *(f"lang_{code}" for code in LANGUAGES))


def _store() -> OrderedDict[Hashable, tuple[int, float, Pieces]]:
    cache: OrderedDict[Hashable, tuple[int, float, Pieces]] = current_app.extensions.setdefault(
        _CACHE, OrderedDict()
    )
    return cache


def _lookup(key: Hashable) -> Pieces | None:
    cache = _store()
    entry = cache.get(key)
    if entry is None:
        return None
    version, expires, pieces = entry
    if version != directory.catalogue_version() or time.monotonic() >= expires:
        cache.pop(key, None)
        return None
    cache.move_to_end(key)
    return pieces


def _split(text: str, names: Iterable[str]) -> Pieces:
    """The rendered text as literal text and the names of its markers, taking turns."""
    # Longest first: a name may begin like another ("lang_de" and a slot called "lang").
    known = sorted(names, key=len, reverse=True)
    first, *rest = text.split(_MARK)
    pieces = [first]
    for chunk in rest:
        name = next((n for n in known if chunk.startswith(f"{n}_")), None)
        if name is None:  # cannot happen: only this module writes the random part
            pieces[-1] += _MARK + chunk
            continue
        pieces += [name, chunk[len(name) + 1 :]]
    return tuple(pieces)


def _keep(key: Hashable, version: int, pieces: Pieces) -> None:
    seconds, entries = _settings()
    cache = _store()
    cache[key] = (version, time.monotonic() + seconds, pieces)
    cache.move_to_end(key)
    while len(cache) > max(entries, 1):
        cache.popitem(last=False)


def _part(name: str, slots: Mapping[str, Callable[[], Markup | str]]) -> str:
    """This request's text for a marker."""
    from kyffikus.web import csp_nonce

    if name in slots:
        return str(slots[name]())
    if name == "nonce":
        return str(csp_nonce())
    if name == "csrf":
        return str(generate_csrf())
    return str(escape(lang_switch_url(name.removeprefix("lang_"))))


def _fill(pieces: Pieces, slots: Mapping[str, Callable[[], Markup | str]]) -> str:
    """The kept page with this request's nonce, CSRF token, language links and slots."""
    out = list(pieces)
    values: dict[str, str] = {}
    for index in range(1, len(out), 2):
        name = out[index]
        value = values.get(name)
        if value is None:
            value = values[name] = _part(name, slots)
        out[index] = value
    return "".join(out)


def _render_shell(template: str, slots: Mapping[str, Any], context: Any) -> str:
    """Render the template with markers for every per-request part."""
    field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    saved = {name: g.get(name) for name in ("csp_nonce", field) if name in g}
    g.csp_nonce = marker("nonce")
    setattr(g, field, marker("csrf"))  # what csrf_token() answers while it is set
    setattr(g, _SHELL, True)
    try:
        return render_template(template, **context, **{name: marker(name) for name in slots})
    finally:
        setattr(g, _SHELL, False)
        for name in ("csp_nonce", field):
            g.pop(name, None)
        for name, value in saved.items():
            setattr(g, name, value)


# CSRF tokens signed for a session in the last moments, by (secret, the session's raw token): the
# till's check page is shown over and over in one session, and signing costs more than the rest of
# filling in the page. A token reused is at most CSRF_REUSE_SECONDS older than a fresh one.
_signed_csrf: dict[tuple[str, str], tuple[float, str]] = {}
CSRF_REUSE_SECONDS = 60.0
MAX_SIGNED_CSRF = 4096


def reuse_csrf_token() -> None:
    """Let this request use the CSRF token signed for its session a moment ago, if there is one.

    Flask-WTF signs the session's raw token with a timestamp on every request; the signature of
    the last minute is as good (it expires at most a minute earlier, and at most 2 % of
    WTF_CSRF_TIME_LIMIT earlier). Tokens stay bound to their session: the raw token is the key.
    """
    config = current_app.config
    field = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    if field in g:
        return
    limit = config.get("WTF_CSRF_TIME_LIMIT", 3600)
    reuse = CSRF_REUSE_SECONDS if limit is None else min(CSRF_REUSE_SECONDS, 0.02 * float(limit))
    secret = str(config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key)
    now = time.monotonic()
    raw = session.get(field)
    entry = _signed_csrf.get((secret, raw)) if isinstance(raw, str) else None
    if entry is not None and now - entry[0] < reuse:
        setattr(g, field, entry[1])
        return
    token = generate_csrf()  # also makes the session's raw token if it has none yet
    raw = session.get(field)
    if isinstance(raw, str):
        if len(_signed_csrf) >= MAX_SIGNED_CSRF:
            _signed_csrf.clear()
        _signed_csrf[(secret, raw)] = (now, token)


def cached_page(key: Hashable | None) -> str | None:
    """The page kept under key, filled for this request; None when there is none (or no key)."""
    if key is None or not cacheable():
        return None
    pieces = _lookup(key)
    return _fill(pieces, {}) if pieces is not None else None


def render_page(
    template: str,
    key: Hashable | None,
    slots: Mapping[str, Callable[[], Markup]] | None = None,
    **context: Any,
) -> str:
    """Render a page through the cache: the kept text filled in, or rendered, kept and filled.

    key names everything the page depends on besides the per-request parts (None: render it
    normally, e.g. with form errors). slots are parts the caller renders for every request, as
    safe HTML (Markup, e.g. from render_template): the template gets each as a variable.
    """
    slots = slots or {}
    if key is None or not cacheable():
        return render_template(template, **context, **{n: f() for n, f in slots.items()})
    pieces = _lookup(key)
    if pieces is None:
        version = directory.catalogue_version()
        pieces = _split(_render_shell(template, slots, context), [*FIXED_PARTS, *slots])
        _keep(key, version, pieces)
    return _fill(pieces, slots)


def clear() -> None:
    """Forget every kept page of this app (tests; a deployment does not need it)."""
    _store().clear()
