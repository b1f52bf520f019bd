#!/usr/bin/env python
"""CPU per request of the bench's targets, in one process: Flask's test client, no gunicorn, no wrk.

    .venv/bin/python bench/inprocess.py                                    # district, every target
    .venv/bin/python bench/inprocess.py --scale state -n 3000 --only floor,check_api
    .venv/bin/python bench/inprocess.py --only check_api --profile check_api   # cProfile, CPU time
    .venv/bin/python bench/inprocess.py --ablate commit                    # one change switched off
    .venv/bin/python bench/inprocess.py --repo /tmp/kyffikus-before        # an older checkout

Each target is requested n times, round robin over the same codes, passes and searches as
bench/run.py uses, on the data set bench/generate.py made (run that first). It prints the app's CPU
time per request (time.process_time, so other work on the machine changes it little) and the CPU
time of the app's PostgreSQL backends per request (from /proc), beside the floor's. This is how
each change of the hot paths was measured; the throughput figures come from bench/run.py.

--repo measures another checkout of Kyffikus (e.g. `git archive <commit> | tar -x -C DIR`) against
the same data, for before and after. --ablate switches one of the optimisations off again:
commit (read-only views end with ROLLBACK), limiter (Flask-Limiter's decorators for the check
budgets), gettext (Flask-Babel's template gettext), qr (no 304 before the database), select
(WTForms' Select widget), metadata (no directory metadata cache), pagination (count query),
pagecache (every page rendered in full: kyffikus.pagecache off).
It asserts nothing; it prints figures.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ABLATIONS = ("commit", "limiter", "gettext", "qr", "select", "metadata", "pagination", "pagecache")
TARGETS = ("floor", "readyz", "check_api", "check_page", "directory", "qr_304")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", choices=("district", "state"), default="district")
    parser.add_argument("-n", type=int, default=1500, help="requests per target (default 1500)")
    parser.add_argument("--only", default=",".join(TARGETS), help="targets, comma separated")
    parser.add_argument("--profile", default="", help="cProfile this target (CPU time)")
    parser.add_argument("--profile-out", default="", help="also write the profile to this file")
    parser.add_argument("--ablate", default="", help=f"comma separated: {', '.join(ABLATIONS)}")
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14", help="'' for memory")
    return parser.parse_args()


ARGS = _arguments()
REPO = Path(ARGS.repo).resolve()
# The checkout measured, with its own bench helpers (they import its kyffikus).
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import generate  # noqa: E402
from run import inprocess_login, load_fixtures  # noqa: E402


def _backend_cpu(db_url: str) -> float:
    """CPU seconds used so far by the database's backends (other than this query's own)."""
    import psycopg

    with psycopg.connect(db_url) as conn:
        pids = [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _ablate(app: Any, names: list[str]) -> None:
    """Switch optimisations off again, to see what each one is worth."""
    for name in names:
        if name == "commit":
            import kyffikus.readonly as readonly

            readonly.end_read_only = lambda: None  # type: ignore[assignment]
        elif name == "limiter":
            from kyffikus.extensions import limiter
            from kyffikus.provider import ratelimit

            def limit() -> str:
                return str(app.config["CHECK_RATE_LIMIT"])

            by_user = limiter.shared_limit(limit, scope="check-user", key_func=ratelimit.user_key)
            by_address = limiter.shared_limit(
                limit, scope="check-address", key_func=ratelimit.address_key
            )
            ratelimit.count_check = by_user(by_address(lambda: None))  # type: ignore[assignment]
        elif name == "gettext":
            from flask_babel import get_translations as t

            app.jinja_env.install_gettext_callables(
                gettext=lambda s: t().ugettext(s),
                ngettext=lambda s, p, n: t().ungettext(s, p, n),
                newstyle=True,
                pgettext=lambda c, s: t().upgettext(c, s),
                npgettext=lambda c, s, p, n: t().unpgettext(c, s, p, n),
            )
        elif name == "qr":
            from kyffikus.family.views import qr_not_modified

            app.before_request_funcs[None].remove(qr_not_modified)
        elif name == "select":
            from wtforms.widgets import Select

            from kyffikus.public.forms import PlainSelect

            PlainSelect.__call__ = Select.__call__  # type: ignore[method-assign]
        elif name == "pagecache":
            app.config["PAGE_CACHE_SECONDS"] = 0
        elif name == "metadata":
            app.config["DIRECTORY_METADATA_SECONDS"] = 0
        elif name == "pagination":
            from flask_sqlalchemy.pagination import SelectPagination

            import kyffikus.services.directory as directory

            directory._CountedPagination = SelectPagination  # type: ignore[misc]
        else:
            raise SystemExit(f"unknown ablation {name!r}; known: {', '.join(ABLATIONS)}")


def main() -> int:
    """Measure, print."""
    db_url = generate.database_url(ARGS.scale)
    fixtures = load_fixtures(db_url)
    os.environ.update(
        {
            "DATABASE_URL": db_url,
            "KYFFIKUS_SECRET_KEY": "bench-" + "0" * 58,
            "KYFFIKUS_SESSION_COOKIE_SECURE": "false",
            "KYFFIKUS_REQUIRE_STAFF_2FA": "false",
            "KYFFIKUS_BASE_URL": "http://127.0.0.1:8000",
            "KYFFIKUS_MAIL_BACKEND": "console",
            "KYFFIKUS_BENCH_FLOOR": "1",
            # As bench/run.py: the limiter runs on every request, with limits nobody reaches.
            "KYFFIKUS_CHECK_RATE_LIMIT": "10000000 per minute",
            "KYFFIKUS_LOGIN_RATE_LIMIT": "10000 per minute",
            "KYFFIKUS_RATELIMIT_ENABLED": "true",
        }
    )
    if ARGS.redis:
        os.environ["KYFFIKUS_RATELIMIT_STORAGE_URL"] = ARGS.redis
    import logging

    from kyffikus import create_app

    app = create_app()
    logging.getLogger("kyffikus").setLevel("WARNING")
    _ablate(app, [a for a in ARGS.ablate.split(",") if a])

    base = "http://127.0.0.1:8000"
    pairs = zip(fixtures.tokens, fixtures.numbers, strict=True)
    codes = [(f"{base}/v/{t}" if i % 5 else n) for i, (t, n) in enumerate(pairs)]
    provider = app.test_client()
    family = app.test_client()
    anonymous = app.test_client()
    if not inprocess_login(provider, generate.PROVIDER_EMAIL) or not inprocess_login(
        family, fixtures.family_email
    ):
        raise SystemExit("the bench accounts could not log in")
    browser = {"Accept-Encoding": "gzip", "Accept-Language": "de-DE,de;q=0.9"}
    api = {
        "Authorization": f"Bearer {generate.BENCH_API_TOKEN}",
        "Content-Type": "application/json",
        "Accept-Encoding": "gzip",
    }
    qr = f"/familie/pass/{fixtures.family_pass_id}/qr.png"
    etag = family.get(qr, headers=browser).headers.get("ETag", "")
    turn = [0]

    def next_of(items: list[str]) -> str:
        turn[0] += 1
        return items[turn[0] % len(items)]

    targets: dict[str, tuple[Callable[[], Any], int]] = {
        "floor": (lambda: anonymous.get("/bench/floor", headers=browser), 200),
        "readyz": (lambda: anonymous.get("/readyz", headers=browser), 200),
        "check_api": (
            lambda: anonymous.post(
                "/api/v1/checks", data=json.dumps({"code": next_of(codes)}), headers=api
            ),
            200,
        ),
        "check_page": (
            lambda: provider.get(f"/v/{next_of(fixtures.tokens)}", headers=browser),
            200,
        ),
        "directory": (
            lambda: anonymous.get(next_of(fixtures.directory_queries), headers=browser),
            200,
        ),
        "qr_304": (lambda: family.get(qr, headers={**browser, "If-None-Match": etag}), 304),
    }
    results: dict[str, tuple[float, float]] = {}
    for name in ARGS.only.split(","):
        send, status = targets[name]
        for _ in range(30):  # warm up: caches, prepared statements, the pool
            answer = send()
            if answer.status_code != status:
                raise SystemExit(f"{name} answered {answer.status_code}, not {status}")
        profiler = cProfile.Profile(time.process_time) if ARGS.profile == name else None
        database = _backend_cpu(db_url)
        started = time.process_time()
        if profiler:
            profiler.enable()
        for _ in range(ARGS.n):
            send()
        if profiler:
            profiler.disable()
        app_ms = (time.process_time() - started) / ARGS.n * 1000
        db_ms = (_backend_cpu(db_url) - database) / ARGS.n * 1000
        results[name] = (app_ms, db_ms)
        if profiler:
            stats = pstats.Stats(profiler)
            if ARGS.profile_out:
                stats.dump_stats(ARGS.profile_out)
            stats.sort_stats("cumulative").print_stats(50)
    floor = results.get("floor")
    print(f"{REPO} ({ARGS.scale}{', without ' + ARGS.ablate if ARGS.ablate else ''}):")
    print("| target | app CPU ms/req | db CPU ms/req | total | CPU ratio to floor |")
    print("|---|---:|---:|---:|---:|")
    for name, (app_ms, db_ms) in results.items():
        ratio = f"{(floor[0] + floor[1]) / (app_ms + db_ms):.2f}" if floor else ""
        print(f"| {name} | {app_ms:.2f} | {db_ms:.2f} | {app_ms + db_ms:.2f} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
