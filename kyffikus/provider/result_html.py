"""The result of a check as HTML, written in Python: the till's hottest fragment.

A check result is rendered for every scan, and through Jinja it cost a fifth of the check page's
CPU (a context call per helper, an escape per value, the fixed words looked up per render). Here
the fixed words are translated and escaped once per language, each offer's pass-independent head
once per offer text and language, and the rest is joined from strings. Every value that comes
from the database or the request goes through markupsafe.escape, as Jinja's autoescape did.

What the page shows, for a provider:
- the big word, its colour class and the reason in a sentence, for every status;
- for a valid pass: the names to compare with an ID, the children's ages, the validity, the end
  of the pass number, and this provider's offers, each with what is left of its allowance and a
  redemption form (the people counts preselected to what the pass allows);
- after a redemption: what was saved and, within the undo window, a button to undo it.
"""

from __future__ import annotations

import secrets
from base64 import urlsafe_b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

from kyffikus.i18n import gettext as _
from kyffikus.i18n import locale_code, ngettext
from kyffikus.models.base import BERLIN
from kyffikus.services import checks, directory

# The colour of the result, by status (provider.css).
STATUS_CLASS = {
    "valid": "check-valid",
    "expired": "check-expired",
    "not_yet_valid": "check-expired",
    "revoked": "check-revoked",
    "replaced": "check-replaced",
    "not_found": "check-notfound",
}
NO_DISCOUNT_STATUSES = frozenset({"revoked", "replaced", "expired", "not_yet_valid"})
MAX_CACHED = 4096


@dataclass(frozen=True)
class Undo:
    """The undo button after a redemption: where it posts and until when (Berlin time)."""

    url: str
    until: datetime


@dataclass(frozen=True)
class Words:
    """The fixed words of a check result in one language, escaped once."""

    on_pass: Markup
    compare_id: Markup
    children: Markup
    no_children: Markup
    valid: Markup
    number: Markup
    ends_in: Markup
    your_offers: Markup
    no_offers: Markup
    adults: Markup
    redeem: Markup
    used_badge: Markup
    undo: Markup
    not_again: Markup
    nobody_fits: Markup
    no_discount: Markup


def _translated_words() -> Words:
    return Words(
        on_pass=escape(_("Auf dem Pass stehen")),
        compare_id=escape(_("Bitte mit einem Ausweis vergleichen.")),
        children=escape(_("Kinder")),
        no_children=escape(_("Keine Kinder unter 18 Jahren")),
        valid=escape(_("Gültig")),
        number=escape(_("Passnummer")),
        ends_in=escape(_("endet auf")),
        your_offers=escape(_("Ihre Angebote für diesen Pass")),
        no_offers=escape(_("Sie haben in der aktuellen Ausgabe keine veröffentlichten Angebote.")),
        adults=escape(_("Erwachsene")),
        redeem=escape(_("Einlösen")),
        used_badge=escape(_("Bereits eingelöst")),
        undo=escape(_("Rückgängig machen")),
        not_again=escape(
            _("Dieses Angebot kann für diesen Pass gerade nicht noch einmal eingelöst werden.")
        ),
        nobody_fits=escape(_("Für dieses Angebot passt niemand auf diesem Pass (Altersgrenze).")),
        no_discount=escape(_("Bitte keine Ermäßigung gewähren.")),
    )


_words: dict[str, Words] = {}


def words() -> Words:
    """The fixed words in the request's language, translated once per language and process."""
    code = locale_code()
    found = _words.get(code)
    if found is None:
        found = _words[code] = _translated_words()
    return found


_HEAD = Markup(
    '<h4 id="offer-{id}-title">{title}</h4>\n'
    '          <p class="offer-benefit">{benefit}</p>\n'
    '          <p class="offer-meta">{limit} · {age}</p>'
)
_CONDITIONS = Markup('<p class="offer-meta">{}</p>')
# The heads of the offers a check shows, per language and offer text: few (a provider's offers),
# and the same for every pass, so a check renders only what depends on the pass.
_heads: dict[tuple[Any, ...], str] = {}


def offer_head(offer: checks.OfferAllowance, language: str) -> str:
    """An offer's title, benefit, limit, ages and conditions (the same for every pass)."""
    key = (
        language,
        offer.offer_id,
        offer.title,
        offer.discount_kind,
        offer.discount_value,
        offer.conditions,
        offer.min_age,
        offer.max_age,
        offer.limit,
    )
    head = _heads.get(key)
    if head is None:
        head = _HEAD.format(
            id=offer.offer_id,
            title=offer.title,
            benefit=directory.discount_label(offer),
            limit=directory.limit_label(offer),
            age=directory.age_label(offer),
        )
        if offer.conditions:
            head += _CONDITIONS.format(offer.conditions)
        if len(_heads) >= MAX_CACHED:
            _heads.clear()
        _heads[key] = head = str(head)
    return head


_options: dict[int, str] = {}


def count_options(top: int) -> str:
    """The options 0 … top of a people count, top selected (the redemption form's default)."""
    found = _options.get(top)
    if found is None:
        found = "".join(
            f'<option value="{n}"{" selected" if n == top else ""}>{n}</option>'
            for n in range(top + 1)
        )
        if len(_options) < MAX_CACHED:
            _options[top] = found
    return found


def _details(result: checks.CheckResult, w: Words) -> list[str]:
    holders = "".join(
        f"\n          <li><strong>{escape(name)}</strong></li>" for name in result.holders
    )
    if result.children_count:
        # Translated outside the f-strings: pybabel does not look into them.
        count = ngettext("%(num)s Kind", "%(num)s Kinder", result.children_count)
        ages = _("Alter in Jahren: %(ages)s", ages=", ".join(map(str, result.children_ages)))
        children = f'\n        {escape(count)}\n        <span class="muted">({escape(ages)})</span>'
    else:
        children = f"\n        {w.no_children}"
    valid = _(
        "vom %(start)s bis %(end)s",
        start=checks.format_day(result.valid_from) if result.valid_from else "",
        end=checks.format_day(result.valid_until) if result.valid_until else "",
    )
    return [
        '\n  <div class="check-details">\n    <dl class="dl dl-grid">'
        f'\n      <dt>{w.on_pass}</dt>\n      <dd>\n        <ul class="holder-list">{holders}'
        f'\n        </ul>\n        <span class="muted small">{w.compare_id}</span>\n      </dd>'
        f"\n      <dt>{w.children}</dt>\n      <dd>{children}\n      </dd>"
        f"\n      <dt>{w.valid}</dt>\n      <dd>{escape(valid)}</dd>"
        f'\n      <dt>{w.number}</dt>\n      <dd><span class="visually-hidden">{w.ends_in} </span>'
        f"{escape(result.number_hint or '')}</dd>\n    </dl>"
        f'\n\n    <h3 id="offers-title">{w.your_offers}</h3>'
    ]


def _saved(redeemed: Any, undo: Undo | None, hidden: str, w: Words) -> str:
    message = _(
        "Gespeichert: %(adults)s Erwachsene, %(children)s Kinder.",
        adults=redeemed.adults,
        children=redeemed.children,
    )
    out = (
        '\n          <div class="flash flash-success" role="status">'
        f"\n            <p>{escape(message)}</p>\n          </div>"
    )
    if undo is not None:
        until = _("möglich bis %(time)s Uhr", time=f"{undo.until.astimezone(BERLIN):%H:%M}")
        out += (
            f'\n          <form method="post" action="{escape(undo.url)}">{hidden}'
            f'\n            <button type="submit" class="btn btn-secondary">{w.undo}</button>'
            f'\n            <span class="muted small">{escape(until)}</span>\n          </form>'
        )
    return out


def retry_keys(count: int) -> Iterator[str]:
    """A fresh retry key per offer and render (a double tap or a reload posts the same key), as
    secrets.token_urlsafe(16) makes them, from one read of the system's randomness."""
    random = secrets.token_bytes(16 * count)
    for start in range(0, len(random), 16):
        yield urlsafe_b64encode(random[start : start + 16]).rstrip(b"=").decode("ascii")


def _offer(
    offer: checks.OfferAllowance, retry_key: str, hidden: str, redeem_url: str, w: Words
) -> str:
    oid = int(offer.offer_id)
    used = checks.used_message(offer)
    if not offer.available:
        return (
            f'\n          <p class="offer-used"><span class="badge">{w.used_badge}</span> '
            f'{escape(used or "")}</p>\n          <p class="muted small">{w.not_again}</p>'
        )
    out = f'\n          <p class="offer-meta">{escape(used)}</p>' if used else ""
    if offer.max_adults + offer.max_children == 0:
        return f'{out}\n          <p class="muted">{w.nobody_fits}</p>'
    return (
        f'{out}\n          <form method="post" action="{redeem_url}" class="redeem-form">{hidden}'
        f'\n            <input type="hidden" name="offer_id" value="{oid}">'
        f'\n            <input type="hidden" name="idempotency_key" value="{retry_key}">'
        '\n            <div class="field">'
        f'\n              <label for="adults-{oid}">{w.adults}</label>'
        f'\n              <select id="adults-{oid}" name="adults">{count_options(offer.max_adults)}'
        '</select>\n            </div>\n            <div class="field">'
        f'\n              <label for="children-{oid}">{w.children}</label>'
        f'\n              <select id="children-{oid}" name="children">'
        f"{count_options(offer.max_children)}</select>\n            </div>"
        f'\n            <button type="submit" class="btn btn-primary btn-large">{w.redeem}'
        f'<span class="visually-hidden">: {escape(offer.title)}</span></button>\n          </form>'
    )


def render(
    result: checks.CheckResult,
    code: str | None,
    *,
    csrf: str,
    redeem_url: str,
    just_redeemed: Any = None,
    undo: Undo | None = None,
) -> Markup:
    """The result of a check as safe HTML (every value from outside escaped here)."""
    w = words()
    out = [
        f'<section class="check-result {STATUS_CLASS[result.status]}" id="result"'
        ' aria-labelledby="result-word" tabindex="-1">'
        f'\n  <h2 class="check-word" id="result-word">{escape(checks.status_word(result.status))}</h2>'
        f'\n  <p class="check-reason">{escape(checks.status_message(result))}</p>'
    ]
    if result.is_valid:
        out += _details(result, w)
        if not result.offers:
            out.append(f"\n    <p>{w.no_offers}</p>")
        else:
            language = locale_code()
            # The hidden fields every form of the result posts: the CSRF token and the code.
            hidden = (
                f'\n            <input type="hidden" name="csrf_token" value="{escape(csrf)}">'
                f'\n            <input type="hidden" name="code" value="{escape(code or "")}">'
            )
            url = str(escape(redeem_url))
            keys = retry_keys(len(result.offers))
            out.append('\n    <ul class="offer-list check-offers" aria-labelledby="offers-title">')
            for offer in result.offers:
                out.append(
                    f'\n      <li>\n        <article class="offer-card" aria-labelledby="offer-'
                    f'{int(offer.offer_id)}-title">\n          {offer_head(offer, language)}'
                )
                if just_redeemed is not None and just_redeemed.offer_id == offer.offer_id:
                    out.append(_saved(just_redeemed, undo, hidden, w))
                out.append(_offer(offer, next(keys), hidden, url, w))
                out.append("\n        </article>\n      </li>")
            out.append("\n    </ul>")
        out.append("\n  </div>")
    elif result.status in NO_DISCOUNT_STATUSES:
        out.append(f'\n  <div class="check-details">\n    <p>{w.no_discount}</p>\n  </div>')
    out.append("\n</section>")
    return Markup("".join(out))  # noqa: S704 - every value above is escaped
