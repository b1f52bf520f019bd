"""schemathesis against /api/v1/openapi.json: every operation, every built-in check, in-process.

The Flask app is called through WSGI (no server). Provider X's Bearer token goes with every call,
so the providers' operations are exercised past authentication (and schemathesis' ignored_auth
check sends the same requests without it). Each operation gets KYFFIKUS_SCHEMATHESIS_EXAMPLES
positive and as many negative examples (default 25). The goal: 0 server errors, 0 answers that
break the document.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from kyffikus.extensions import db
from tests.security.conftest import World, rolled_back
from tests.security.figures import record_figure

EXAMPLES = int(os.environ.get("KYFFIKUS_SCHEMATHESIS_EXAMPLES", "25"))

# A schema-valid redemption can still be refused for what no schema can know: the pass is unknown,
# not valid, or has fewer children than asked for. The document gives 422 for exactly that, so
# positive_data_acceptance counts 422 as an expected answer there (404/409 already are).
# NUL characters are refused with the documented 400 anywhere in a request, also inside JSON
# properties the API ignores (kyffikus/input_guard.py: PostgreSQL cannot store them); so strings
# here are generated without them. NUL input is fuzzed in test_fuzz.py and the input guard's tests.
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"allow-x00": False},
        "operations": [
            {
                "include-path": "/api/v1/redemptions",
                "include-method": "POST",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]
                    }
                },
            }
        ],
    }
)


def test_api_conforms_to_its_openapi_document(
    app: Flask, world: World, catalogue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All checks over every operation: no 5xx, every answer as documented."""
    # The rate limit has its own tests; here it would only turn examples into 429s.
    monkeypatch.setitem(app.config, "CHECK_RATE_LIMIT", "1000000 per minute")
    db.session.commit()  # the catalogue too must survive the rolled-back savepoint of each call
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=CONFIG)
    # identity: the werkzeug client under schemathesis does not undo gzip (compression has its tests).
    headers = {
        "Authorization": f"Bearer {world.api_tokens['x']}",
        "Accept-Encoding": "identity",
    }
    tally: Counter[str] = Counter()
    failures: list[str] = []
    operations = []

    def exercise(operation: Any, mode: GenerationMode) -> None:
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            with rolled_back():
                response = case.call(headers=headers)
                tally["tried"] += 1
                if response.status_code >= 500:
                    tally["server errors"] += 1
                try:
                    case.validate_response(response, headers=headers)
                except (Exception, BaseExceptionGroup) as exc:  # FailureGroup, assertions
                    tally["broke the document"] += 1
                    failures.append(f"{operation.label} ({mode.value}): {str(exc)[:4000]}")
                    raise

        # A failure is collected above with its example; every operation still runs.
        with contextlib.suppress(Exception, BaseExceptionGroup):
            run()

    for result in schema.get_all_operations():
        operation = result.ok()
        operations.append(operation.label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            exercise(operation, mode)
    record_figure(
        "schemathesis",
        f"schemathesis: generated API requests, all checks ({len(operations)} operations, "
        f"{EXAMPLES} positive + {EXAMPLES} negative examples each)",
        tally["tried"],
        tally["broke the document"],
        tally["server errors"],
        outcome=f"{tally['broke the document']} failed a check",
        order=60,
        details={"operations": operations},
    )
    if failures and os.environ.get("KYFFIKUS_SCHEMATHESIS_DUMP"):
        with open(os.environ["KYFFIKUS_SCHEMATHESIS_DUMP"], "w", encoding="utf-8") as handle:
            handle.write("\n\n".join(failures))
    assert len(operations) >= 7
    assert failures == []
