"""Property tests (Hypothesis): the pass-number parser, the check's code parser, and every form.

Every form is found by fetching every page as each role that may see it and parsing its <form>
elements, so a new form is fuzzed the moment a page shows it. Each example sends random text,
very long text, control characters, NUL bytes, mixed scripts and injection strings into the
form's fields (with a valid CSRF token), as the role the page was shown to: never a 5xx, and
when the answer is a refusal (4xx) the row counts of every table are unchanged.
Examples per form: KYFFIKUS_FUZZ_EXAMPLES (default 30); deadline off so CI stays predictable.
KYFFIKUS_FUZZ_DUMP=<file> writes every failure (with the exception and the input) to a file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import string
import traceback
from collections import Counter
from typing import Any

from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kyffikus.models.base import berlin_today
from kyffikus.services import checks, passnumber
from tests.security.conftest import (
    ROLES,
    World,
    client_for,
    csrf_for,
    rolled_back,
    row_counts,
)
from tests.security.figures import record_figure
from tests.security.forms import Form, find_forms
from tests.security.test_authz_matrix import MATRIX, REFUSALS, routes, url_values

EXAMPLES = int(os.environ.get("KYFFIKUS_FUZZ_EXAMPLES", "30"))
QUICK = settings(
    max_examples=max(EXAMPLES * 10, 200),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

MIXED_SCRIPTS = [
    "Jürgen-Ähre Straße 3",
    "Ωμέγα Ελλάδα",
    "Кириллица Ёж",
    "漢字かなカナ",
    "العربية",
    "עברית",
    "हिन्दी",
    "🙂👨‍👩‍👧‍👦🏳️‍🌈",
    "\u202egnirts desrever",
    "Z̴̡a̶͔l̷g̵o̸",
    "ﬁ ß ẞ ǅ",
    "\ufeffBOM",
    "\u200b\u200c\u200d",
]
INJECTIONS = [
    "' OR 1=1 --",
    '"; DROP TABLE pass; --',
    "<script>alert(1)</script>",
    "{{7*7}}{% raw %}",
    "%s%s%n%x",
    "../../etc/passwd",
    "${jndi:ldap://x}",
    "NaN",
    "-1",
    "0",
    "99999999999999999999999",
    "1e309",
    "2026-02-30",
    "0000-00-00",
    "31.12.1899",
    "９９７０６",
    "javascript:alert(1)",
    "//evil.example/",
    "a@b",
    "x" * 257,
]
# The same value in every field of every form, each run: NUL, control characters, an integer
# beyond a float (WTForms' NumberRange once crashed on it), 20,000 characters, mixed scripts.
NASTY = [
    "\x00",
    "\x01\x1b[31m\x7f\u2028",
    "9" * 400,
    "-" + "9" * 400,
    "ä" * 20_000,
    "".join(MIXED_SCRIPTS),
    "<script>alert(1)</script>' OR 1=1 --",
]
_ANY = st.characters(codec="utf-8")
_CONTROL = st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs"], codec="utf-8")

FUZZ_TEXT = st.one_of(
    st.text(_ANY, max_size=200),
    st.text(_CONTROL, min_size=1, max_size=40),
    st.builds(
        lambda unit, n: unit * n,
        st.sampled_from(["x", "ä", "漢", "\x00", "9", "-"]),
        st.integers(min_value=1_000, max_value=20_000),
    ),
    st.sampled_from(MIXED_SCRIPTS + INJECTIONS),
    st.lists(st.sampled_from(MIXED_SCRIPTS + INJECTIONS), min_size=2, max_size=5).map("".join),
    st.text(st.sampled_from("\x00\x01\x1b\x7f"), min_size=1, max_size=5),
)


# ---- the pass number -------------------------------------------------------------------------------


@QUICK
@given(st.one_of(st.text(_ANY, max_size=60), FUZZ_TEXT))
def test_pass_number_parser_never_fails_and_returns_only_valid_numbers(text: str) -> None:
    """parse() returns None or a canonical number whose check symbol fits; it never raises."""
    number = passnumber.parse(text)
    if number is not None:
        assert len(number) == passnumber.LENGTH
        assert set(number) <= set(passnumber.ALPHABET)
        assert passnumber.is_valid(number)


_NUMBERS = st.builds(
    lambda data: data + passnumber.check_symbol(data),
    st.text(st.sampled_from(passnumber.ALPHABET), min_size=9, max_size=9),
)


@QUICK
@given(_NUMBERS, st.sampled_from(["", "-", " ", "\u00a0", "."]), st.booleans())
def test_pass_number_round_trip_in_any_typing(number: str, sep: str, lower: bool) -> None:
    """A number typed grouped, with separators, in lower case, is read back as the same number."""
    typed = passnumber.format_number(number).replace("-", sep)
    typed = typed.lower() if lower else typed
    assert passnumber.parse(typed) == number


@QUICK
@given(_NUMBERS, st.integers(0, 9), st.sampled_from(passnumber.ALPHABET))
def test_every_single_mistyped_symbol_is_caught(number: str, where: int, symbol: str) -> None:
    """Any one symbol changed makes the check fail (31 is prime, the weights differ)."""
    changed = number[:where] + symbol + number[where + 1 :]
    if changed != number:
        assert passnumber.parse(changed) is None


@QUICK
@given(_NUMBERS, st.integers(0, 8))
def test_every_swap_of_two_neighbours_is_caught(number: str, where: int) -> None:
    """Two different neighbouring symbols swapped make the check fail."""
    swapped = number[:where] + number[where + 1] + number[where] + number[where + 2 :]
    if swapped != number:
        assert passnumber.parse(swapped) is None


# ---- the check's code parser ------------------------------------------------------------------------

_TOKENS = st.text(
    st.sampled_from(string.ascii_letters + string.digits + "-_"), min_size=32, max_size=32
)


@QUICK
@given(st.one_of(FUZZ_TEXT, st.binary(max_size=50), st.integers(), st.none()), st.booleans())
def test_code_parser_never_fails(code: Any, token_only: bool) -> None:
    """parse_code() classifies anything (any text, bytes, numbers, None) without raising."""
    parsed = checks.parse_code(code, token_only=token_only)
    assert parsed.kind in ("token", "number", "typo", "malformed")
    if parsed.kind == "token":
        assert parsed.value is not None
        assert checks._TOKEN.fullmatch(parsed.value)
    if parsed.kind == "number":
        assert not token_only
        assert passnumber.is_valid(parsed.value or "")


@QUICK
@given(
    _TOKENS,
    st.sampled_from(["https://familienpass.example", "http://localhost", ""]),
    st.sampled_from(["", "?utm=1", "#x", "  ", "\n"]),
)
def test_qr_urls_yield_their_token(token: str, base: str, tail: str) -> None:
    """The QR text <base>/v/<token> (whatever the host) gives back exactly the token."""
    parsed = checks.parse_code(f"{base}/v/{token}{tail}")
    assert parsed.kind == "token"
    assert parsed.value == token


def test_random_codes_find_no_pass(app: Flask, world: World) -> None:
    """Fuzzed codes through the whole check find nothing and never raise (with the database)."""
    from kyffikus.extensions import db
    from kyffikus.models import Provider

    provider = db.session.get(Provider, world.provider_ids["x"])
    found = errors = 0
    tried = Counter[str]()

    @settings(
        max_examples=max(EXAMPLES * 10, 200),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(FUZZ_TEXT)
    def check(code: str) -> None:
        nonlocal found, errors
        tried["codes"] += 1
        try:
            result = checks.check_pass(code, provider, berlin_today())
        except Exception:
            errors += 1
            raise
        if result.status != "not_found":
            found += 1
        assert result.status == "not_found"

    check()
    record_figure(
        "fuzz-codes",
        "fuzzed codes (random, long, control characters, mixed scripts) through the check",
        tried["codes"],
        found,
        errors,
        order=55,
    )


# ---- every form ---------------------------------------------------------------------------------------


def discover_forms(app: Flask, world: World) -> list[tuple[str, Form]]:
    """Every distinct form on every HTML page, with the first role that was shown it."""
    values = url_values(world)
    seen: dict[tuple[str, str, tuple[str, ...]], tuple[str, Form]] = {}
    for (rule_text, method), rule in sorted(routes(app).items()):
        if method != "GET" or rule_text.startswith("/api/"):
            continue
        args = {name: values[name](rule_text) for name in rule.arguments}
        path = rule.build(args, append_unknown=False)[1]  # type: ignore[index]
        for role, expected in zip(ROLES, MATRIX[(rule_text, method)], strict=True):
            if expected in REFUSALS:
                continue
            with rolled_back():
                response = client_for(app, world, role).get(path)
                html = response.get_data(as_text=True) if response.mimetype == "text/html" else ""
                response.close()
            for form in find_forms(html, path):
                seen.setdefault(form.signature(), (role, form))
    return list(seen.values())


def _fuzzable(form: Form) -> dict[str, st.SearchStrategy[Any]]:
    """For each field: its current value or fuzz (files get fuzzed content)."""
    out: dict[str, st.SearchStrategy[Any]] = {}
    defaults = form.defaults()
    for f in form.fields:
        if f.name == "csrf_token" or f.name in out:
            continue
        if f.kind == "file":
            out[f.name] = st.one_of(st.none(), FUZZ_TEXT.map(lambda t: t.encode("utf-8")))
            continue
        original = st.just(defaults.get(f.name, f.value))
        options = [st.just(o) for o in f.options]
        out[f.name] = st.one_of(original, FUZZ_TEXT, *options)
    return out


def _is_file(form: Form, name: str) -> bool:
    return any(f.name == name and f.kind == "file" for f in form.fields)


def _body(values: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, bytes):
            data[name] = (io.BytesIO(value), "daten.csv")
        elif value is not None:
            data[name] = value
    return data


class _Crashes(logging.Handler):
    """Keeps the exception of every 500 the app logs, as "Type: message at file:line"."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            frames = [
                f for f in traceback.extract_tb(exc.__traceback__) if "/kyffikus/" in f.filename
            ]
            where = (
                f" at {frames[-1].filename.split('/kyffikus/')[-1]}:{frames[-1].lineno}"
                if frames
                else ""
            )
            self.seen.append(f"{type(exc).__name__}: {str(exc)[:200]}{where}")


def test_every_form_survives_fuzzing(app: Flask, world: World) -> None:
    """No 5xx for any input; a refused submission (4xx) leaves every table's row count as it was."""
    crashes = _Crashes()
    logging.getLogger("kyffikus").addHandler(crashes)
    try:
        _fuzz_every_form(app, world, crashes)
    finally:
        logging.getLogger("kyffikus").removeHandler(crashes)


def _fuzz_every_form(app: Flask, world: World, crashes: _Crashes) -> None:
    forms = discover_forms(app, world)
    assert len(forms) > 30, [f.action for _r, f in forms]
    token = csrf_for(app)
    tally: Counter[str] = Counter()
    failures: list[str] = []

    def send(role: str, form: Form, values: dict[str, Any]) -> int:
        """Submit once as the role; record 5xx and refusals that wrote anything."""
        data = _body(values)
        with rolled_back():
            client = client_for(app, world, role)
            before = row_counts()
            if form.method == "GET":
                response = client.get(form.action, query_string=data)
            else:
                data["csrf_token"] = token
                response = client.open(form.action, method=form.method, data=data)
            response.get_data()
            response.close()
            after = row_counts() if 400 <= response.status_code < 500 else before
        tally["tried"] += 1
        where = f"{form.method} {form.action} as {role}"
        if response.status_code >= 500:
            tally["errors"] += 1
            crash = crashes.seen[-1] if crashes.seen else "?"
            failures.append(f"{where}: {response.status_code} ({crash}) for {values!r:.300}")
        if 400 <= response.status_code < 500:
            tally["refused"] += 1
            changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
            if changed:
                tally["written on refusal"] += 1
                failures.append(f"{where}: refused with {response.status_code} but wrote {changed}")
        else:
            tally["accepted or re-shown"] += 1
        return response.status_code

    def fuzz(role: str, form: Form) -> None:
        # First the same nasty value in every field, so the worst cases run every time.
        names = list(_fuzzable(form))
        for nasty in NASTY:
            if form.method == "GET":
                nasty = nasty[:2_000]  # a URL longer than that never reaches the app (proxy limits)
            values: dict[str, Any] = {
                n: nasty.encode("utf-8") if _is_file(form, n) else nasty for n in names
            }
            send(role, form, values)

        # Then random mixtures. No shrinking: a failure is reported with its input, cheaply.
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        @given(st.fixed_dictionaries(_fuzzable(form)))
        def submit(values: dict[str, Any]) -> None:
            assert send(role, form, values) < 500

        submit()

    for role, form in forms:
        # A failure is collected (with its input) in `failures`; every form is still run.
        with contextlib.suppress(AssertionError):
            fuzz(role, form)
    record_figure(
        "fuzz-forms",
        f"form submissions with random, long, control, NUL and mixed-script input "
        f"({len(forms)} forms x {EXAMPLES})",
        tally["tried"],
        tally["written on refusal"],
        tally["errors"],
        outcome=f"{tally['written on refusal']} refusals wrote data "
        f"({tally['refused']} refused, {tally['accepted or re-shown']} accepted or re-shown)",
        order=50,
        details=dict(tally),
    )
    if failures and os.environ.get("KYFFIKUS_FUZZ_DUMP"):
        with open(os.environ["KYFFIKUS_FUZZ_DUMP"], "w", encoding="utf-8") as handle:
            handle.write("\n".join(failures))
    assert failures == []
