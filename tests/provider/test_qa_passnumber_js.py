"""QA: the check page's JavaScript and the server agree on every pass number.

The browser refuses a typed number before any request when its check character is wrong
(kyffikus/static/js/passnumber.js); if it disagreed with kyffikus/services/passnumber.py, a cashier
could not type a valid pass at all. The script runs in Node.js, or in Debian's Chromium when Node
is missing.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from kyffikus.services import passnumber

SCRIPT = Path(__file__).resolve().parents[2] / "kyffikus" / "static" / "js" / "passnumber.js"
CHROMIUM = "/usr/bin/chromium"


def _inputs() -> list[str]:
    """Valid numbers, every single substitution and neighbour swap of some, and typed variants."""
    rng = random.Random(20260130)
    numbers = []
    for _ in range(300):
        data = "".join(rng.choice(passnumber.ALPHABET) for _ in range(passnumber.LENGTH - 1))
        numbers.append(data + passnumber.check_symbol(data))
    texts = list(numbers)
    for number in numbers[:20]:
        for i in range(len(number)):
            for symbol in passnumber.ALPHABET:
                if symbol != number[i]:
                    texts.append(number[:i] + symbol + number[i + 1 :])
            if i + 1 < len(number) and number[i] != number[i + 1]:
                texts.append(number[:i] + number[i + 1] + number[i] + number[i + 2 :])
    for number in numbers[:30]:
        grouped = passnumber.format_number(number)
        texts += [
            grouped,
            grouped.lower(),
            " ".join(grouped.split("-")),
            grouped.replace("-", "."),
            grouped.replace("-", "\u00a0"),  # a no-break space, as copied from a PDF or mail
            grouped.replace("-", "\t"),
            number.replace("0", "O").replace("1", "I"),
            number.replace("1", "l").replace("2", "z").replace("V", "u"),
            number[:-1],
            number + "0",
        ]
    return texts + ["", "-", "ÄÖÜ", "ß" * 5, "0000000000"]


def _run_in_node(texts: list[str]) -> list[list[object]]:
    program = (
        "global.window = {};\n"
        + SCRIPT.read_text(encoding="utf-8")
        + "\nconst P = window.KyffikusPassNumber;\n"
        + f"const texts = {json.dumps(texts)};\n"
        + "process.stdout.write(JSON.stringify(texts.map(t => [P.isValid(t), P.normalise(t)])));\n"
    )
    done = subprocess.run(  # noqa: S603 - a fixed program on the test's own data
        [shutil.which("node") or "node", "-e", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def _run_in_chromium(texts: list[str]) -> list[list[object]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-sync"],
        )
        try:
            page = browser.new_page()
            page.add_script_tag(content=SCRIPT.read_text(encoding="utf-8"))
            return page.evaluate(
                "texts => texts.map(t => [window.KyffikusPassNumber.isValid(t),"
                " window.KyffikusPassNumber.normalise(t)])",
                texts,
            )
        finally:
            browser.close()


def test_browser_and_server_agree_on_every_number() -> None:
    texts = _inputs()
    if shutil.which("node"):
        answers = _run_in_node(texts)
    elif Path(CHROMIUM).exists():
        answers = _run_in_chromium(texts)
    else:
        pytest.skip("neither Node.js nor Debian's chromium is installed")

    disagreements = [
        (text, js_valid, passnumber.is_valid(text))
        for text, (js_valid, _js_normal) in zip(texts, answers, strict=True)
        if js_valid != passnumber.is_valid(text)
    ]
    assert len(texts) > 5000
    assert disagreements == []
    # Every single substitution and swap is caught on the page as well.
    assert sum(1 for valid, _n in answers if valid) == sum(passnumber.is_valid(t) for t in texts)
