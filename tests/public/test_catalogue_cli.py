"""`flask --app kyffikus catalogue load`: reports what it added, idempotent, refuses broken files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from kyffikus.models import Locality, Offer, Provider
from kyffikus.services.catalogue_load import CATALOGUE_FILE


def count(db_session: Any, model: type[Any]) -> int:
    """Rows of a model."""
    return int(db_session.scalar(select(func.count()).select_from(model)))


def test_load_reports_34_providers_and_47_offers(runner: Any, db_session: Any) -> None:
    result = runner.invoke(args=["catalogue", "load"])

    assert result.exit_code == 0, result.output
    assert "Anbieter: 34 neu, 0 geändert" in result.output
    assert "Angebote: 47 neu, 0 geändert" in result.output
    assert count(db_session, Provider) == 34
    assert count(db_session, Offer) == 47


def test_second_run_adds_nothing(runner: Any, db_session: Any) -> None:
    runner.invoke(args=["catalogue", "load"])
    result = runner.invoke(args=["catalogue", "load"])

    assert result.exit_code == 0, result.output
    assert "Anbieter: 0 neu, 0 geändert" in result.output
    assert "Angebote: 0 neu, 0 geändert" in result.output
    assert "Fertig: 0 neu, 0 geändert." in result.output
    assert count(db_session, Provider) == 34
    assert count(db_session, Offer) == 47


def test_broken_file_names_line_and_field_exits_1_and_loads_nothing(
    runner: Any, db_session: Any, tmp_path: Path
) -> None:
    lines = CATALOGUE_FILE.read_text(encoding="utf-8").splitlines()
    offer_line = next(n for n, line in enumerate(lines, 1) if json.loads(line)["kind"] == "offer")
    first, second = json.loads(lines[offer_line - 1]), json.loads(lines[offer_line])
    first["min_age"] = 30
    second["limit"] = "weekly"
    lines[offer_line - 1] = json.dumps(first, ensure_ascii=False)
    lines[offer_line] = json.dumps(second, ensure_ascii=False)
    broken = tmp_path / "catalogue.jsonl"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = runner.invoke(args=["catalogue", "load", "--file", str(broken)])

    assert result.exit_code == 1
    assert f"Zeile {offer_line}, Feld min_age:" in result.output
    assert f"Zeile {offer_line + 1}, Feld limit:" in result.output
    assert "nichts wurde geladen" in result.output
    assert count(db_session, Provider) == 0
    assert count(db_session, Offer) == 0
    assert count(db_session, Locality) == 0


def test_missing_file_is_refused(runner: Any, tmp_path: Path) -> None:
    result = runner.invoke(args=["catalogue", "load", "--file", str(tmp_path / "fehlt.jsonl")])

    assert result.exit_code == 2
    assert "does not exist" in result.output or "existiert nicht" in result.output
