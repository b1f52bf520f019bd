"""The English catalogue is complete and sound, and the public pages really come out in English."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from kyffikus.i18n import LANG_COOKIE
from kyffikus.models.base import berlin_today
from tests.public.directory_data import EN_PO, REPO, use_compiled_english

POT = REPO / "kyffikus" / "translations" / "messages.pot"

# Everything a translation must carry over unchanged: Python and str.format placeholders, HTML
# entities and tags.
PLACEHOLDER = re.compile(
    r"%\([A-Za-z_]\w*\)[sdif]|%[sdif]|%%|\{[A-Za-z_0-9]*\}|&[a-z]+;|&#\d+;|</?[A-Za-z][^>]*>"
)

# Proper names that stay German in the English text (the office's and the programme's names).
PROPER_NAMES = [
    "Landratsamt Kyffhäuserkreis",
    "Jugend- und Sozialamt",
    "Solidarisches Zusammenleben der Generationen",
    "Thüringer Landesbeauftragter für den Datenschutz und die Informationsfreiheit",
]

# Frequent German words that must not be left in the English main text.
GERMAN_WORDS = [
    " und ",
    " der ",
    " die ",
    " das ",
    " für ",
    " mit ",
    " Sie ",
    "Angebote",
    "Bitte",
    "Anmelden",
    "Passwort",
    "Familienpass",
    "Ermäßigung",
]


def load(path: Any) -> Catalog:
    """A .po or .pot file parsed by babel."""
    with path.open("rb") as source:
        return read_po(source, locale="en")


def messages(catalog: Catalog) -> list[Message]:
    """Every message except the header."""
    return [m for m in catalog if m.id]


def as_list(value: str | tuple[str, ...] | list[str]) -> list[str]:
    """A singular message as a one-item list, a plural one as its forms."""
    return [value] if isinstance(value, str) else list(value)


def placeholders(text: str) -> list[str]:
    """The placeholders, entities and tags of a text, sorted (order may change in English)."""
    return sorted(PLACEHOLDER.findall(text))


@pytest.fixture(scope="module")
def english() -> Catalog:
    return load(EN_PO)


def test_the_catalogue_has_the_strings_of_the_template(english: Catalog) -> None:
    template_ids = {m.id for m in messages(load(POT))}
    english_ids = {m.id for m in messages(english)}

    assert len(template_ids) > 1000
    assert sorted(map(str, template_ids - english_ids)) == []  # run `make extract-messages`
    assert sorted(map(str, english_ids - template_ids)) == []


def test_every_message_is_translated_and_none_is_fuzzy(english: Catalog) -> None:
    untranslated = [m.id for m in messages(english) if not all(as_list(m.string))]
    fuzzy = [m.id for m in messages(english) if m.fuzzy]

    assert untranslated == []
    assert fuzzy == []


def test_plural_messages_have_both_english_forms(english: Catalog) -> None:
    plurals = [m for m in messages(english) if m.pluralizable]

    assert plurals, "the catalogue has plural messages (ngettext)"
    assert english.num_plurals == 2
    for message in plurals:
        assert len(as_list(message.string)) == 2, message.id


def test_placeholders_tags_and_entities_are_kept(english: Catalog) -> None:
    broken = []
    for message in messages(english):
        ids = as_list(message.id)
        for index, text in enumerate(as_list(message.string)):
            # msgstr[0] answers the singular msgid, msgstr[1] the plural one
            source = ids[min(index, len(ids) - 1)]
            if placeholders(text) != placeholders(source):
                broken.append((source, text))

    assert broken == []


@pytest.mark.parametrize(
    ("msgid", "msgstr"),
    [
        ("GÜLTIG", "VALID"),
        ("ABGELAUFEN", "EXPIRED"),
        ("GESPERRT", "REVOKED"),
        ("ERSETZT", "REPLACED"),
        ("NICHT GEFUNDEN", "NOT FOUND"),
        ("NOCH NICHT GÜLTIG", "NOT YET VALID"),
        ("Familienpass", "Family pass"),
        ("Anbieter", "Provider"),
        ("Einlösungen", "Redemptions"),
        ("Ausgabe", "Edition"),
        ("Passnummer", "Pass number"),
        ("Gemeinde", "Municipality"),
    ],
)
def test_the_glossary_terms(english: Catalog, msgid: str, msgstr: str) -> None:
    message = english.get(msgid)

    assert message is not None
    assert message.string == msgstr


def main_text(page: str) -> str:
    """The visible text of <main>: tags and scripts removed, entities decoded, spaces collapsed."""
    found = re.search(r"<main\b.*?</main>", page, flags=re.S)
    assert found, "the page has a <main> landmark"
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", found.group(0), flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    text = html_lib.unescape(text)
    return " " + re.sub(r"\s+", " ", text) + " "


@pytest.fixture
def english_client(app: Flask, client: FlaskClient) -> FlaskClient:
    """A client whose language switch is set to English, with the compiled catalogue fresh."""
    use_compiled_english(app)
    client.set_cookie(LANG_COOKIE, "en")
    return client


@pytest.fixture
def neutral_catalogue(
    make_edition: Callable[..., Any],
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
) -> None:
    """One current edition with an offer whose own texts (catalogue data, not translated) are not German."""
    today = berlin_today()
    edition = make_edition(
        name="Edition 2099",
        valid_from=today - timedelta(days=30),
        valid_until=today + timedelta(days=300),
    )
    provider = make_provider(name="Kyffikus Test Pool", published=True)
    make_offer(provider, edition, title="Swimming pool", description="Swimming.", discount_value=20)


@pytest.mark.parametrize(
    ("url", "phrases"),
    [
        (
            "/",
            [
                "Who can get the family pass?",
                "How it works",
                "For providers",
                "In the current edition",
            ],
        ),
        (
            "/angebote",
            ["Offers for families", "All categories", "All localities", "1 offer found", "20% off"],
        ),
        ("/konto/anmelden", ["Log in", "Email address", "Password"]),
    ],
)
def test_public_pages_come_out_in_english(
    english_client: FlaskClient, neutral_catalogue: None, url: str, phrases: list[str]
) -> None:
    response = english_client.get(url)

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<html lang="en">' in page
    assert "Kyffhäuserkreis family pass" in page  # the site header
    text = main_text(page)
    for phrase in phrases:
        assert phrase in text
    for name in PROPER_NAMES:
        text = text.replace(name, " ")
    left_german = [word for word in GERMAN_WORDS if word in text]
    assert left_german == [], text
