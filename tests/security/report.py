"""Turn build/security-figures/*.json into the README's Security table (build/security-figures.md).

Run by the security tests' conftest at the end of every pytest session, or by hand:
    .venv/bin/python tests/security/report.py
The figures come from the test run itself; nothing in the table is written by hand.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
FIGURES_DIR = REPO_ROOT / "build" / "security-figures"
MARKDOWN = REPO_ROOT / "build" / "security-figures.md"
JSON_OUT = REPO_ROOT / "build" / "security-figures.json"
DATABASES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def load_figures(directory: Path = FIGURES_DIR) -> list[dict[str, Any]]:
    """Every stored figure, in the report's order (by order key, title, database)."""
    figures = []
    for path in sorted(directory.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            figures.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    figures.sort(key=lambda f: (f.get("order", 50), f.get("title", ""), f.get("database", "")))
    return figures


def _number(value: int) -> str:
    return f"{value:,}"


def markdown(figures: list[dict[str, Any]]) -> str:
    """The table: test, inputs tried, accepted or failed, server errors, database."""
    lines = [
        "| test | inputs tried | accepted or failed | server errors | database |",
        "|---|---:|---|---:|---|",
    ]
    # One row per test; the databases share it when their figures are the same.
    rows: dict[tuple[str, str, int, str, int], list[str]] = {}
    for f in figures:
        key = (f["key"], f["title"], int(f["tried"]), str(f["outcome"]), int(f["errors"]))
        rows.setdefault(key, []).append(DATABASES.get(f.get("database", ""), f.get("database", "")))
    for (_key, title, tried, outcome, errors), databases in rows.items():
        lines.append(
            "| {title} | {tried} | {outcome} | {errors} | {db} |".format(
                title=title.replace("|", "/"),
                tried=_number(tried),
                outcome=outcome.replace("|", "/"),
                errors=_number(errors),
                db=", ".join(sorted(databases, key=lambda d: d != "SQLite")),
            )
        )
    stamp = max((f.get("recorded_at", "") for f in figures), default="")
    lines.append("")
    lines.append(
        f"Generated from the test run (latest figure {stamp}) by tests/security/report.py."
    )
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    """Write then rename: parallel test processes never leave half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def write_report(*, quiet: bool = False) -> Path | None:
    """Write build/security-figures.md and .json; None when no figure was recorded yet."""
    figures = load_figures()
    if not figures:
        return None
    _write_atomically(MARKDOWN, markdown(figures))
    _write_atomically(JSON_OUT, json.dumps(figures, ensure_ascii=False, indent=2))
    if not quiet:
        print(MARKDOWN.read_text(encoding="utf-8"))
    return MARKDOWN


if __name__ == "__main__":
    sys.exit(0 if write_report() else 1)
