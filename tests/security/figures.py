"""Security figures: what each test tried and what got through, for the README's Security section.

Every figure is printed as one machine-readable line and written to its own file under
build/security-figures/ (one file per figure and database, so parallel xdist workers never write
the same file). tests/security/report.py turns the files into build/security-figures.md/.json.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
FIGURES_DIR = REPO_ROOT / "build" / "security-figures"


def backend() -> str:
    """The database this run uses (figures are kept per database)."""
    return os.environ.get("KYFFIKUS_TEST_BACKEND", "sqlite")


def record_figure(
    key: str,
    title: str,
    tried: int,
    accepted: int,
    errors: int,
    *,
    outcome: str | None = None,
    order: int = 50,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Print `SECURITY-FIGURE|title|tried|outcome|errors` and store the figure for the report.

    `accepted` counts inputs that got through although they should not have (0 is the goal);
    `outcome` replaces the default wording "N accepted" (e.g. "exactly 1 recorded").
    """
    text = outcome if outcome is not None else f"{accepted} accepted"
    figure = {
        "key": key,
        "title": title,
        "tried": int(tried),
        "accepted": int(accepted),
        "outcome": text,
        "errors": int(errors),
        "database": backend(),
        "order": order,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "details": details or {},
    }
    print(f"\nSECURITY-FIGURE|{title}|{tried}|{text}|{errors} server errors|{backend()}")
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^a-z0-9_-]+", "-", key.lower())
    target = FIGURES_DIR / f"{backend()}-{safe}.json"
    # Write then rename: a reader (or another worker) never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=FIGURES_DIR, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(figure, handle, ensure_ascii=False, indent=2)
    os.replace(tmp, target)
    return figure
