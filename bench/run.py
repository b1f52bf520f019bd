#!/usr/bin/env python
"""`make bench`: serve Kyffikus with gunicorn on a generated data set and measure it against its floor.

    make bench                                                # both scales, about 7 minutes
                                                              # (+ 3 minutes to generate the state)
    .venv/bin/python bench/run.py --scale district --duration 5
    .venv/bin/python bench/run.py --scale state --explain-only   # the plans, no load
    .venv/bin/python bench/run.py --priority                  # on a shared machine (root)

For each scale it (re)uses the data set from bench/generate.py (made again when it is not from
today or the schema changed), starts gunicorn (2 workers, the
project's gunicorn.conf.py with a listening socket per worker, production settings over http, rate
limiting on with raised limits, in Redis when one answers on 127.0.0.1:6379, else in memory) and
drives it from a second process with wrk (16 connections; Debian's package; installed when missing and we are root; otherwise a small threaded Python
client stands in and says so). Every throughput figure is also given as a ratio to the floor
(GET /bench/floor: a short text through the same app and middleware) measured in the same run,
taking turns with each target in short slices (so both see the same drift of a shared machine's
speed), and the CPU time per request of the workers, their PostgreSQL backends and
Redis is reported beside it (robust when other work shares the machine).

It prints tables of figures and asserts nothing about time: the figures go into the README.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import generate  # noqa: E402

VENV_BIN = Path(sys.executable).parent
REDIS_URL = "redis://127.0.0.1:6379/14"
LARGE_TABLES = (
    "pass",
    "redemption",
    "household",
    "adult",
    "child",
    "application",
    "pass_event",
    "user_account",
)

# `--priority`: run gunicorn and wrk with a higher CPU priority (needs root), so that other work on
# a shared machine disturbs the figures less.
PRIORITY: list[str] = []

# Goals from the issue: throughput as a share of the floor.
GOALS = {
    "check_api": 0.4,
    "check_page": 0.3,
    "directory": 0.3,
    "qr_304": 0.8,
}


def log(message: str = "") -> None:
    """Print at once (the run is long; show progress)."""
    print(message, flush=True)


# ---- load generators -------------------------------------------------------------------------


@dataclass
class Load:
    """One measured load: throughput and latency."""

    name: str
    label: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    requests: int = 0
    errors: int = 0
    connections: int = 0
    note: str = ""
    ratio: float | None = None
    goal: float | None = None
    floor: float | None = None  # the floor measured around this load
    cpu_ms: float | None = (
        None  # CPU per request: gunicorn workers + their PostgreSQL backends + Redis
    )
    floor_cpu_ms: float | None = None
    cpu_split: dict[str, float] = field(default_factory=dict)  # app, db, redis


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s, p50, p99, request and error counts from `wrk --latency` output."""
    result: dict[str, float] = {"errors": 0.0}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", output):
        result["rps"] = float(m.group(1))
    if m := re.search(r"^\s*50%\s+(\S+)", output, re.M):
        result["p50"] = _ms(m.group(1))
    if m := re.search(r"^\s*99%\s+(\S+)", output, re.M):
        result["p99"] = _ms(m.group(1))
    if m := re.search(r"(\d+) requests in", output):
        result["requests"] = float(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        result["errors"] += float(m.group(1))
    if m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        # gunicorn's sync workers close each connection after the response: wrk counts some of those
        # closes as read errors although the response arrived. Only connect errors and timeouts count.
        result["errors"] += float(m.group(1)) + float(m.group(4))
    return result


# Turns of each target and of the floor (alternating) within one measured duration.
ROUNDS = 5

# Turns of each scale in the side-by-side latency comparison (each as long as a turn above): a
# one-connection p99 is the tenth-slowest of about a thousand requests, so one hiccup of the
# machine moves a turn's figure; the median of ten turns holds still.
LATENCY_TURNS = 10

# wrk's connections: enough that both workers (2 threads each) always have requests waiting,
# whatever the waits on PostgreSQL and Redis, and that the kernel's spread of them over the two
# workers is never lopsided enough to leave one short (spread at random, one worker would get 3
# or fewer of 16 in 0.4 % of turns, but all of 4 in an eighth of them).
CONNECTIONS = 16


def combine(parts: list[Load]) -> Load:
    """Several slices of the same load as one: requests and CPU added up, latency weighted."""
    first = parts[0]
    requests = sum(p.requests for p in parts)
    seconds = sum(p.requests / p.rps for p in parts if p.rps)
    weight = [p.requests or 1 for p in parts]
    total = sum(weight)
    cpu = [p for p in parts if p.cpu_ms is not None]
    combined = Load(
        first.name,
        first.label,
        rps=requests / seconds if seconds else 0.0,
        p50_ms=sum(p.p50_ms * w for p, w in zip(parts, weight, strict=True)) / total,
        p99_ms=max(p.p99_ms for p in parts),
        requests=requests,
        errors=sum(p.errors for p in parts),
        connections=first.connections,
        goal=first.goal,
    )
    if cpu and requests:
        combined.cpu_ms = sum((p.cpu_ms or 0) * p.requests for p in cpu) / requests
        groups = {g for p in cpu for g in p.cpu_split}
        combined.cpu_split = {
            g: sum(p.cpu_split.get(g, 0.0) * p.requests for p in cpu) / requests for g in groups
        }
    return combined


class Driver:
    """Sends load with wrk, or with a threaded Python client when wrk cannot be had."""

    def __init__(
        self,
        base_url: str,
        workdir: Path,
        *,
        python_client: bool = False,
        cpu_pids: Callable[[], dict[str, list[int]]] | None = None,
    ) -> None:
        self.base_url = base_url
        self.workdir = workdir
        self.wrk = None if python_client else ensure_wrk()
        self.kind = "wrk" if self.wrk else "python-threads"
        self.cpu_pids = cpu_pids

    def run(
        self,
        load: Load,
        *,
        duration: float,
        connections: int,
        script: str,
        env: dict[str, str],
        warmup: float = 2.0,
    ) -> Load:
        """Warm up, then measure for `duration` seconds with `connections` open at once."""
        load.connections = connections
        if self.wrk:
            self._wrk(script, env, warmup, connections)
            groups = self.cpu_pids() if self.cpu_pids else {}
            cpu_before = {pid: cpu_seconds(pid) for pids in groups.values() for pid in pids}
            output = self._wrk(script, env, duration, connections)
            used = {
                group: sum(max(0.0, cpu_seconds(pid) - cpu_before[pid]) for pid in pids)
                for group, pids in groups.items()
            }
            parsed = parse_wrk(output)
            load.rps = parsed.get("rps", 0.0)
            load.p50_ms = parsed.get("p50", float("nan"))
            load.p99_ms = parsed.get("p99", float("nan"))
            load.requests = int(parsed.get("requests", 0))
            load.errors = int(parsed.get("errors", 0))
            if groups and load.requests:
                load.cpu_ms = sum(used.values()) * 1000 / load.requests
                load.cpu_split = {g: v * 1000 / load.requests for g, v in used.items()}
        else:
            self._python(load, script, env, warmup, connections)
            self._python(load, script, env, duration, connections)
        return load

    def _wrk(self, script: str, env: dict[str, str], seconds: float, connections: int) -> str:
        command = [
            *PRIORITY, str(self.wrk), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "--timeout", "10s", "-s", str(BENCH / "lua" / script), self.base_url,
        ]  # fmt: skip
        done = subprocess.run(
            command, env={**os.environ, **env}, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed: {done.stderr.strip()}")
        return done.stdout

    def _python(
        self, load: Load, script: str, env: dict[str, str], seconds: float, connections: int
    ) -> None:
        """The stand-in for wrk: one thread per connection, each sending requests back to back."""
        make = _python_requests(script, env)
        latencies: list[float] = []
        errors = [0]
        lock = threading.Lock()
        parts = urllib.parse.urlsplit(self.base_url)
        stop_at = time.perf_counter() + seconds

        def worker() -> None:
            mine: list[float] = []
            bad = 0
            while time.perf_counter() < stop_at:
                method, path, headers, body = make()
                started = time.perf_counter()
                try:
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                    conn.request(method, path, body=body, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    conn.close()
                    if response.getheader("Set-Cookie") and "Cookie" in headers:
                        # As get_paths.lua: keep what the server sets, as a browser does.
                        jar = dict(
                            pair.strip().split("=", 1) for pair in headers["Cookie"].split(";")
                        )
                        _cookie_header({"set-cookie": response.getheader("Set-Cookie", "")}, jar)
                        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
                    if response.status >= 400:
                        bad += 1
                except OSError:
                    bad += 1
                mine.append((time.perf_counter() - started) * 1000)
            with lock:
                latencies.extend(mine)
                errors[0] += bad

        started = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        latencies.sort()
        load.requests = len(latencies)
        load.rps = len(latencies) / elapsed if elapsed else 0.0
        load.p50_ms = _percentile(latencies, 50)
        load.p99_ms = _percentile(latencies, 99)
        load.errors = errors[0]


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(pct / 100 * len(values)) - 1))
    return values[index]


def _python_requests(
    script: str, env: dict[str, str]
) -> Callable[[], tuple[str, str, dict[str, str], Any]]:
    """What the Lua scripts do, for the Python client."""
    import random

    if script == "check_api.lua":
        codes = Path(env["BENCH_CODES"]).read_text(encoding="utf-8").split()
        headers = {
            "Authorization": f"Bearer {env['BENCH_TOKEN']}",
            "Content-Type": "application/json",
            "Accept-Encoding": "gzip",
        }
        return lambda: (
            "POST",
            "/api/v1/checks",
            headers,
            json.dumps({"code": random.choice(codes)}),
        )
    paths = Path(env["BENCH_PATHS"]).read_text(encoding="utf-8").split()
    headers = {"Accept-Encoding": "gzip", "Accept-Language": "de-DE,de;q=0.9"}
    if env.get("BENCH_COOKIE"):
        headers["Cookie"] = env["BENCH_COOKIE"]
    if env.get("BENCH_IF_NONE_MATCH"):
        headers["If-None-Match"] = env["BENCH_IF_NONE_MATCH"]
    return lambda: ("GET", random.choice(paths), headers, None)


def ensure_wrk() -> str | None:
    """The wrk binary; installed from Debian's packages when missing and we may (root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is missing: installing Debian's package (apt-get install -y wrk) ...")
        for command in (
            ["apt-get", "install", "-y", "wrk"],
            ["apt-get", "update"],
            ["apt-get", "install", "-y", "wrk"],
        ):
            subprocess.run(command, capture_output=True, check=False)
            if shutil.which("wrk"):
                break
    found = shutil.which("wrk")
    if not found:
        log(
            "wrk is not available: using the threaded Python client instead (it needs CPU itself, so"
        )
        log("absolute figures are lower; the ratios to the floor stay comparable).")
    return found


# ---- the server ------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_answers() -> bool:
    """Whether Redis answers on 127.0.0.1:6379."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        client.flushdb()  # database 14 is the bench's own: old counters must not refuse requests
        return True
    except Exception:
        return False


def server_env(
    db_url: str,
    port: int,
    storage: str,
    worker_class: str | None = None,
    threads: int | None = None,
) -> dict[str, str]:
    """Production settings over plain http, with the floor route and raised rate limits."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KYFFIKUS_", "GUNICORN_"))}
    env.update(
        {
            "DATABASE_URL": db_url,
            "KYFFIKUS_SECRET_KEY": os.urandom(32).hex(),
            "KYFFIKUS_SESSION_COOKIE_SECURE": "false",
            # A local bench server: the staff account logs in with its password alone.
            "KYFFIKUS_REQUIRE_STAFF_2FA": "false",
            "KYFFIKUS_BASE_URL": f"http://127.0.0.1:{port}",
            "KYFFIKUS_MAIL_BACKEND": "console",
            "KYFFIKUS_BENCH_FLOOR": "1",
            # The limiter runs on every request as in production; the limits are only raised so
            # that the load generator is never refused.
            "KYFFIKUS_CHECK_RATE_LIMIT": "10000000 per minute",
            "KYFFIKUS_LOGIN_RATE_LIMIT": "10000 per minute",
            "KYFFIKUS_RATELIMIT_ENABLED": "true",
            "GUNICORN_ACCESS_LOG": "off",
            # Each worker its own listening socket (SO_REUSEPORT), so the kernel spreads wrk's
            # connections over both workers. With one shared socket, the worker that wakes first
            # often takes every connection of a turn (wrk opens them all at once) and the other
            # idles: a turn then measures one worker, and the ratio is noise (gunicorn.conf.py).
            "GUNICORN_REUSE_PORT": "1",
            # A worker restart would reset its peak memory (VmHWM) in the middle of the run.
            "GUNICORN_MAX_REQUESTS": "0",
        }
    )
    if storage != "memory://":
        env["KYFFIKUS_RATELIMIT_STORAGE_URL"] = storage
    if worker_class:
        env["GUNICORN_WORKER_CLASS"] = worker_class
    if threads:
        env["GUNICORN_THREADS"] = str(threads)
    return env


def gunicorn_settings(env: dict[str, str]) -> str:
    """What gunicorn.conf.py makes of this environment: worker class and threads."""
    import runpy

    saved = dict(os.environ)
    try:
        os.environ.update(env)
        conf = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    threads = f" × {conf['threads']} threads" if conf.get("worker_class") == "gthread" else ""
    threads += ", a listening socket each (SO_REUSEPORT)" if conf.get("reuse_port") else ""
    nice = " (gunicorn and wrk at nice -10)" if PRIORITY else ""
    return f"gunicorn, 2 {conf.get('worker_class', 'sync')} workers{threads}{nice}"


class Server:
    """gunicorn with 2 workers on the bench database."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        self.env = env
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        command = [
            *PRIORITY, str(VENV_BIN / "gunicorn"), "-c", str(REPO / "gunicorn.conf.py"), "-w", "2",
            "-b", f"127.0.0.1:{self.port}", "wsgi:app",
        ]  # fmt: skip
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in __exit__
        self.process = subprocess.Popen(
            command, cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: see {self.log_path}")
            with contextlib.suppress(OSError):
                status, _h, _b = request("GET", self.url("/readyz"))
                if status == 200 and len(self.workers()) == 2:
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not become ready: see {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def url(self, path: str) -> str:
        """An absolute URL on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def workers(self) -> list[int]:
        """The worker processes' ids."""
        if self.process is None:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(p) for p in children.read_text().split()]
        except OSError:
            return []


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def serving_pids(server: Server, db_url: str) -> dict[str, list[int]]:
    """The processes that do a request's work: the workers, their PostgreSQL backends, Redis."""
    import psycopg

    groups: dict[str, list[int]] = {"app": list(server.workers()), "db": [], "redis": []}
    with contextlib.suppress(psycopg.Error), psycopg.connect(db_url, connect_timeout=3) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        groups["db"] = [int(r[0]) for r in rows]
    done = subprocess.run(["pidof", "redis-server"], capture_output=True, text=True, check=False)
    groups["redis"] = [int(p) for p in done.stdout.split()]
    return groups


def proc_status_kib(pid: int, key: str) -> int:
    """A value in kB from /proc/<pid>/status (VmRSS, VmHWM), 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# ---- HTTP helpers (the load generator's own requests) ------------------------------------------


def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, str], bytes]:
    """One request without redirects; returns status, headers (lower-case names) and body."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def _cookie_header(headers: dict[str, str], jar: dict[str, str]) -> None:
    # http.client folds several Set-Cookie headers into one, comma separated.
    raw = headers.get("set-cookie", "")
    for match in re.finditer(r"(?:^|,\s*)([A-Za-z0-9_.-]+)=([^;,]*)", raw):
        name, value = match.group(1), match.group(2)
        if name.lower() in ("expires", "path", "domain", "max-age", "samesite"):
            continue
        jar[name] = value


def login(server: Server, email: str, password: str) -> tuple[str | None, str]:
    """Log in through the real login form; returns the Cookie header and where it landed."""
    jar: dict[str, str] = {}
    status, headers, body = request("GET", server.url("/konto/anmelden"))
    _cookie_header(headers, jar)
    match = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', body) or re.search(
        rb'value="([^"]+)"[^>]*name="csrf_token"', body
    )
    if status != 200 or not match:
        return None, f"login page answered {status}"
    form = urllib.parse.urlencode(
        {"csrf_token": match.group(1).decode(), "email": email, "password": password}
    ).encode()
    cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
    status, headers, _body = request(
        "POST",
        server.url("/konto/anmelden"),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
        body=form,
    )
    _cookie_header(headers, jar)
    if status not in (302, 303):
        return None, f"login answered {status}"
    landing = headers.get("location", "")
    # As a browser: follow to the landing page, which may add to the session (a CSRF token).
    status, headers, _body = request(
        "GET",
        server.url(urllib.parse.urlsplit(landing).path or "/"),
        headers={"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())},
    )
    _cookie_header(headers, jar)
    return "; ".join(f"{k}={v}" for k, v in jar.items()), landing


# ---- fixtures from the database ----------------------------------------------------------------


@dataclass
class Fixtures:
    """What the load needs from the bench database."""

    tokens: list[str]
    numbers: list[str]
    family_email: str
    family_pass_id: int
    directory_queries: list[str]
    year: int


def load_fixtures(db_url: str) -> Fixtures:
    """Active passes to check (random, fixed seed), a family with a pass, directory queries."""
    import psycopg

    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT setseed(0.7)")
        rows = conn.execute(
            "SELECT token, number FROM pass WHERE status = 'active' ORDER BY random() LIMIT 2000"
        ).fetchall()
        family = conn.execute(
            """
            SELECT u.email, p.id FROM user_account u
            JOIN household h ON h.user_id = u.id
            JOIN pass p ON p.household_id = h.id AND p.status = 'active'
            WHERE u.role = 'family' ORDER BY u.id LIMIT 1
            """
        ).fetchone()
        categories = [
            r[0] for r in conn.execute("SELECT slug FROM category ORDER BY position").fetchall()
        ]
        towns = [
            r[0]
            for r in conn.execute(
                "SELECT v.town FROM venue v GROUP BY v.town ORDER BY count(*) DESC LIMIT 3"
            ).fetchall()
        ]
    words = ["Familie", "Eintritt", "Kinder", "Museum", "Schwimmbad", "Ermäßigung"]
    queries = []
    for i, word in enumerate(words):
        params: dict[str, str] = {"q": word}
        if i % 2 == 0 and categories:
            params["category"] = categories[i % len(categories)]
        elif towns:
            params["town"] = towns[i % len(towns)]
        if i % 3 == 0:
            params["age"] = "6"
        queries.append("/angebote?" + urllib.parse.urlencode(params))
    if family is None:
        raise SystemExit("the bench data set has no family with an active pass")
    return Fixtures(
        tokens=[r[0] for r in rows],
        numbers=[r[1] for r in rows],
        family_email=family[0],
        family_pass_id=family[1],
        directory_queries=queries,
        year=generate.TODAY.year,
    )


# ---- in-process inspection (routes, EXPLAIN) ---------------------------------------------------


def inprocess_app(env: dict[str, str]) -> Any:
    """The same app in this process, to read its routes and run EXPLAIN on its queries."""
    saved = dict(os.environ)
    try:
        os.environ.update(
            {k: v for k, v in env.items() if k.startswith("KYFFIKUS_") or k == "DATABASE_URL"}
        )
        from kyffikus import create_app

        return create_app({"RATELIMIT_STORAGE_URI": "memory://"})
    finally:
        os.environ.clear()
        os.environ.update(saved)


def find_rule(app: Any, predicate: Callable[[Any], bool]) -> Any | None:
    """The first URL rule matching the predicate."""
    return next((r for r in app.url_map.iter_rules() if predicate(r)), None)


@contextlib.contextmanager
def captured_sql(engine: Any) -> Iterator[list[tuple[str, Any, float]]]:
    """Record (statement, parameters, seconds) of every statement sent."""
    from sqlalchemy import event

    seen: list[tuple[str, Any, float]] = []
    starts: dict[int, float] = {}

    def before(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        starts[id(cursor)] = time.perf_counter()

    def after(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        seen.append(
            (
                statement,
                parameters,
                time.perf_counter() - starts.pop(id(cursor), time.perf_counter()),
            )
        )

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def explain(engine: Any, statement: str, parameters: Any) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of a SELECT, rolled back."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).all()
        conn.rollback()
    return [r[0] for r in rows]


def seq_scans(plan: list[str]) -> list[str]:
    """Sequential scans on the large tables in a plan."""
    found = []
    for line in plan:
        match = re.search(r"Seq Scan on (\w+)", line)
        if match and match.group(1) in LARGE_TABLES:
            found.append(match.group(1))
    return found


@dataclass
class Explained:
    """One statement of a route, with its plan."""

    route: str
    statement: str
    seconds: float
    plan: list[str]
    seq: list[str] = field(default_factory=list)


def inprocess_login(client: Any, email: str) -> bool:
    """Log the test client in through the form."""
    page = client.get("/konto/anmelden").get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page
    )
    if not match:
        return False
    response = client.post(
        "/konto/anmelden",
        data={"csrf_token": match.group(1), "email": email, "password": generate.BENCH_PASSWORD},
    )
    return response.status_code in (302, 303)


def explain_routes(
    env: dict[str, str], fixtures: Fixtures, base_url: str, stats_path: str | None
) -> list[Explained]:
    """The SQL of the check (API), and the slowest statements of the directory and the dashboard."""
    from kyffikus.extensions import db

    app = inprocess_app(env)
    found: list[Explained] = []
    with app.app_context():
        engine = db.engine
        client = app.test_client()
        jobs: list[tuple[str, Callable[[], Any], int]] = [
            (
                "POST /api/v1/checks",
                lambda: client.post(
                    "/api/v1/checks",
                    json={"code": f"{base_url}/v/{fixtures.tokens[1]}"},
                    headers={"Authorization": f"Bearer {generate.BENCH_API_TOKEN}"},
                ),
                99,
            ),
            (
                "GET " + fixtures.directory_queries[0],
                lambda: client.get(fixtures.directory_queries[0]),
                2,
            ),
        ]
        if stats_path:
            staff = app.test_client()
            if inprocess_login(staff, generate.STAFF_EMAIL):
                jobs.append(("GET " + stats_path, lambda: staff.get(stats_path), 3))
        for route, call, top in jobs:
            call()  # warm: the plans below are of a warm cache, as under load
            with captured_sql(engine) as seen:
                call()
            selects = [s for s in seen if s[0].lstrip().upper().startswith(("SELECT", "WITH"))]
            selects.sort(key=lambda s: s[2], reverse=True) if top < 99 else None
            for statement, parameters, seconds in selects[:top]:
                plan = explain(engine, statement, parameters)
                found.append(Explained(route, statement, seconds, plan, seq_scans(plan)))
        db.engine.dispose()
    return found


# ---- the measurements of one scale ---------------------------------------------------------------


@dataclass
class ScaleResult:
    """Everything measured at one scale."""

    scale: str
    marker: dict[str, Any]
    loads: list[Load] = field(default_factory=list)
    check_latency: Load | None = None
    floors: list[float] = field(default_factory=list)
    dashboard_ms: list[float] = field(default_factory=list)
    dashboard_note: str = ""
    exports: list[dict[str, Any]] = field(default_factory=list)
    worker_hwm_kib: list[int] = field(default_factory=list)
    worker_rss_start_kib: list[int] = field(default_factory=list)
    explained: list[Explained] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    client: str = ""
    storage: str = ""
    load_before: float = 0.0
    load_after: float = 0.0
    duration: float = 0.0
    server: str = ""


def stream_export(server: Server, path: str, cookie: str) -> dict[str, Any]:
    """Download a CSV export, sampling the workers' RSS meanwhile; bytes, rows, time, memory."""
    workers = server.workers()
    before = {pid: proc_status_kib(pid, "VmRSS") for pid in workers}
    peak = dict(before)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in workers:
                peak[pid] = max(peak[pid], proc_status_kib(pid, "VmRSS"))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    first_byte = None
    size = 0
    lines = 0
    parts = urllib.parse.urlsplit(server.url(path))
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    conn.request(
        "GET", f"{parts.path}?{parts.query}", headers={"Cookie": cookie, "Accept-Encoding": "gzip"}
    )
    response = conn.getresponse()
    while chunk := response.read(65536):
        if first_byte is None:
            first_byte = time.perf_counter() - started
        size += len(chunk)
        lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    conn.close()
    stop.set()
    sampler.join()
    growth = max((peak[pid] - before[pid] for pid in workers), default=0)
    return {
        "path": path,
        "status": response.status,
        "streamed": response.getheader("Content-Length") is None,
        "bytes": size,
        "rows": max(0, lines - 1),
        "seconds": elapsed,
        "first_byte_ms": (first_byte or elapsed) * 1000,
        "rss_before_kib": max(before.values(), default=0),
        "rss_peak_kib": max(peak.values(), default=0),
        "rss_growth_kib": growth,
    }


def bench_scale(scale: str, args: argparse.Namespace, storage: str) -> ScaleResult:
    """Serve one data set and measure it."""
    marker = generate.ensure(scale, args.server, regenerate=args.regenerate)
    result = ScaleResult(
        scale, marker, storage=storage, load_before=os.getloadavg()[0], duration=args.duration
    )
    db_url = generate.database_url(scale, args.server)
    fixtures = load_fixtures(db_url)
    port = free_port()
    env = server_env(db_url, port, storage, args.worker_class, args.threads)
    app = inprocess_app(env)
    workdir = Path(tempfile.mkdtemp(prefix=f"kyffikus-bench-{scale}-"))
    log_path = workdir / "gunicorn.log"
    result.server = gunicorn_settings(env)
    log(f"Serving {scale} on 127.0.0.1:{port} (gunicorn log: {log_path}) ...")
    stats_path = None
    with Server(env, port, log_path) as server:
        base = server.url("")
        driver = Driver(
            base,
            workdir,
            python_client=args.python_client,
            cpu_pids=lambda: serving_pids(server, db_url),
        )
        result.client = driver.kind
        result.worker_rss_start_kib = [proc_status_kib(p, "VmRSS") for p in server.workers()]
        cookies: dict[str, str | None] = {}
        for role, email in (
            ("provider", generate.PROVIDER_EMAIL),
            ("family", fixtures.family_email),
            ("staff", generate.STAFF_EMAIL),
        ):
            cookie, where = login(server, email, generate.BENCH_PASSWORD)
            cookies[role] = cookie
            if not cookie:
                result.skipped.append(f"{role} login failed ({where})")

        def write(name: str, lines: list[str]) -> str:
            path = workdir / name
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            return str(path)

        codes = check_codes(base, fixtures)
        check_env = {
            "BENCH_CODES": write("codes.txt", codes),
            "BENCH_TOKEN": generate.BENCH_API_TOKEN,
        }
        floor_env = {"BENCH_PATHS": write("floor.txt", ["/bench/floor"])}

        # Each target: (name, label, script, env), after a probe request shows it answers as it should.
        targets: list[tuple[str, str, str, dict[str, str]]] = [
            (
                "readyz",
                "GET /readyz (SELECT 1)",
                "get_paths.lua",
                {"BENCH_PATHS": write("readyz.txt", ["/readyz"])},
            ),
        ]
        status, _h, body = request(
            "POST",
            server.url("/api/v1/checks"),
            headers={
                "Authorization": f"Bearer {generate.BENCH_API_TOKEN}",
                "Content-Type": "application/json",
            },
            body=json.dumps({"code": codes[1]}).encode(),
        )
        if status == 200:
            targets.append(
                ("check_api", "POST /api/v1/checks (API token)", "check_api.lua", check_env)
            )
        else:
            result.skipped.append(f"POST /api/v1/checks answered {status}: {body[:120]!r}")
        if cookies["provider"]:
            page_env = {"BENCH_PATHS": write("pages.txt", [f"/v/{t}" for t in fixtures.tokens]),
                        "BENCH_COOKIE": cookies["provider"]}  # fmt: skip
            status, _h, _b = request(
                "GET",
                server.url(f"/v/{fixtures.tokens[0]}"),
                headers={"Cookie": cookies["provider"]},
            )
            if status == 200:
                targets.append(
                    ("check_page", "GET /v/<token> (provider logged in)", "get_paths.lua", page_env)
                )
            else:
                result.skipped.append(f"the check result page answered {status}")
        status, _h, _b = request("GET", server.url(fixtures.directory_queries[0]))
        if status == 200:
            targets.append(
                ("directory", "GET /angebote?q=…&category|town=…", "get_paths.lua",
                 {"BENCH_PATHS": write("directory.txt", fixtures.directory_queries)})
            )  # fmt: skip
        else:
            result.skipped.append(f"the directory answered {status}")
        qr_rule = find_rule(
            app,
            lambda r: (
                r.rule.startswith("/familie")
                and ("qr" in r.endpoint.lower() or "qr" in r.rule.lower())
            ),
        )
        if qr_rule is None:
            result.skipped.append("the pass's QR image route does not exist yet")
        elif cookies["family"]:
            qr_path = _build_path(
                qr_rule, {"pass_id": fixtures.family_pass_id, "id": fixtures.family_pass_id}
            )
            status, headers, _b = request(
                "GET", server.url(qr_path), headers={"Cookie": cookies["family"]}
            )
            etag = headers.get("etag")
            repeat = 0
            if status == 200 and etag:
                repeat, _h, _b = request(
                    "GET",
                    server.url(qr_path),
                    headers={"Cookie": cookies["family"], "If-None-Match": etag},
                )
            if repeat == 304 and etag:
                targets.append(
                    ("qr_304", f"GET {qr_rule.rule} repeated (If-None-Match → 304)", "get_paths.lua",
                     {"BENCH_PATHS": write("qr.txt", [qr_path]), "BENCH_COOKIE": cookies["family"],
                      "BENCH_IF_NONE_MATCH": etag})
                )  # fmt: skip
            else:
                result.skipped.append(
                    f"the QR image answered {status} then {repeat} (ETag: {etag})"
                )

        # Each target and the floor take turns in short slices (ROUNDS of each, alternating): the
        # speed of a shared virtual machine drifts within seconds, and a ratio is only fair when
        # the target and its floor saw the same drift. The slices of each are then added up.
        rounds = max(1, min(ROUNDS, int(args.duration // 2)))
        for name, label, script, env_ in targets:
            log(f"  {label} (and the floor), {rounds} turns each ...")
            parts: list[Load] = []
            floors: list[Load] = []
            for turn in range(rounds):
                warmup = 2.0 if turn == 0 else 1.0
                floors.append(driver.run(Load("floor", "floor"), duration=args.duration / rounds,
                                         connections=args.connections, script="get_paths.lua",
                                         env=floor_env, warmup=warmup))  # fmt: skip
                parts.append(driver.run(Load(name, label, goal=GOALS.get(name)), duration=args.duration / rounds,
                                        connections=args.connections, script=script, env=env_,
                                        warmup=warmup))  # fmt: skip
            load = combine(parts)
            floor_load = combine(floors)
            load.floor = floor_load.rps
            load.floor_cpu_ms = floor_load.cpu_ms
            result.loads += [floor_load, load]
        if any(name == "check_api" for name, *_rest in targets):
            log("  POST /api/v1/checks, one connection (latency) ...")
            result.check_latency = driver.run(
                Load("check_latency", "POST /api/v1/checks, 1 connection"),
                duration=args.duration, connections=1, script="check_api.lua", env=check_env,
            )  # fmt: skip
        result.worker_hwm_kib = [proc_status_kib(p, "VmHWM") for p in server.workers()]

        # The statistics dashboard, one request at a time: the first one cold, then warm.
        stats_rule = find_rule(app, lambda r: r.rule.rstrip("/").endswith("/statistik"))
        stats_path = stats_rule.rule if stats_rule else None
        if stats_path and cookies["staff"]:
            log(f"  GET {stats_path} (staff) ...")
            stats_html = b""
            for _ in range(6):
                started = time.perf_counter()
                status, _h, stats_html = request(
                    "GET", server.url(stats_path), headers={"Cookie": cookies["staff"]}
                )
                elapsed = (time.perf_counter() - started) * 1000
                if status != 200:
                    result.dashboard_note = f"answered {status}"
                    break
                result.dashboard_ms.append(elapsed)
            links = sorted(set(re.findall(rb'href="([^"]*/export/[^"]+\.csv[^"]*)"', stats_html)))
            for link in links[:1]:
                path = link.decode().replace("&amp;", "&")
                log(f"  {path} (streamed, worker memory sampled) ...")
                result.exports.append(stream_export(server, path, cookies["staff"]))
        elif not stats_path:
            result.skipped.append("the statistics dashboard route does not exist yet")
        # The provider's history of the year as CSV: every redemption at the bench provider.
        history_csv = find_rule(app, lambda r: r.endpoint == "provider.history_csv")
        if history_csv and cookies["provider"]:
            query = {
                "date_from": f"{fixtures.year}-01-01",
                "date_to": f"{fixtures.year}-12-31",
                "offer": "",
            }
            path = f"{history_csv.rule}?{urllib.parse.urlencode(query)}"
            log(f"  {path} (the provider's year, streamed, worker memory sampled) ...")
            result.exports.append(stream_export(server, path, cookies["provider"]))
    result.load_after = os.getloadavg()[0]
    log("  EXPLAIN (ANALYZE) of the check's queries ...")
    try:
        result.explained = explain_routes(env, fixtures, base, stats_path)
    except Exception as exc:  # the figures above are still worth printing
        result.skipped.append(f"EXPLAIN failed: {type(exc).__name__}: {exc}")
    with app.app_context():
        from kyffikus.extensions import db

        db.engine.dispose()
    return result


def explain_scale(scale: str, args: argparse.Namespace, storage: str) -> ScaleResult:
    """Only the EXPLAIN part, without a server (quick, for looking at plans)."""
    marker = generate.ensure(scale, args.server, regenerate=args.regenerate)
    result = ScaleResult(scale, marker, storage=storage, duration=args.duration)
    db_url = generate.database_url(scale, args.server)
    env = server_env(db_url, 5000, storage)
    app = inprocess_app(env)
    stats_rule = find_rule(app, lambda r: r.rule.rstrip("/").endswith("/statistik"))
    result.explained = explain_routes(
        env, load_fixtures(db_url), "http://127.0.0.1:5000", stats_rule.rule if stats_rule else None
    )
    return result


def _build_path(rule: Any, values: dict[str, Any]) -> str:
    path = rule.rule
    for argument in rule.arguments:
        path = re.sub(rf"<(?:[^:>]+:)?{argument}>", str(values.get(argument, "")), path)
    return path


# ---- printing ------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:  # NaN
        return "–"
    return f"{value:,.{digits}f}"


def _cpu(load: Load) -> str:
    if not load.cpu_ms:
        return "–"
    split = load.cpu_split
    parts = " + ".join(f"{split.get(k, 0.0):.2f}" for k in ("app", "db", "redis"))
    return f"{load.cpu_ms:.2f} ({parts})"


def print_scale(result: ScaleResult) -> None:
    """The tables of one scale, in Markdown (they go into the README as they are)."""
    floors = [load.rps for load in result.loads if load.name == "floor"]
    floor = statistics.mean(floors) if floors else 0.0
    counts = result.marker.get("counts", {})
    log()
    log(f"### {result.scale}: {counts.get('household', 0):,} families, {counts.get('pass', 0):,} passes, "
        f"{counts.get('redemption', 0):,} redemptions (generated in {result.marker.get('seconds', '?')} s)")  # fmt: skip
    log()
    log(f"Server: {result.server}. Load: {result.client}, {result.loads[0].connections if result.loads else '?'} connections, "
        f"{result.duration:g} s per target and as much for its floor, in {ROUNDS} alternating turns of each "
        f"(after 2 s, then 1 s of warm-up); "
        f"rate limits in {result.storage}; load average {result.load_before:.1f} before, "
        f"{result.load_after:.1f} after.")  # fmt: skip
    log(f"The floor, taking turns with each target: {', '.join(f'{f:,.0f}' for f in floors)} "
        f"req/s (mean {floor:,.0f}); each ratio is to the floor measured in turns with that target. CPU ms/req is "
        f"the CPU time of the gunicorn workers, their PostgreSQL backends and Redis per request; the CPU "
        f"ratio (floor's CPU per request / the route's) is what the throughput ratio would be if only CPU "
        f"limited it, which holds up better than req/s when other work shares the machine.")  # fmt: skip
    log()
    log(
        "| route | req/s | its floor | ratio to floor | goal | p50 ms | p99 ms | requests | errors "
        "| CPU ms/req (app + db + redis) | CPU ratio |"
    )
    log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for load in result.loads:
        if load.name == "floor":
            continue
        local = load.floor or floor
        ratio = load.rps / local if local else None
        load.ratio = ratio
        goal = f"≥ {load.goal}" if load.goal else ""
        met = ""
        if load.goal and ratio is not None:
            met = " ✓" if ratio >= load.goal else " ✗"
        cpu_ratio = load.floor_cpu_ms / load.cpu_ms if load.cpu_ms and load.floor_cpu_ms else None
        log(f"| {load.label} | {_fmt(load.rps, 0)} | {_fmt(local, 0)} | {_fmt(ratio, 2)}{met} | {goal} | "
            f"{_fmt(load.p50_ms, 2)} | {_fmt(load.p99_ms, 2)} | {load.requests:,} | {load.errors} | "
            f"{_cpu(load)} | {_fmt(cpu_ratio, 2)} |")  # fmt: skip
    floor_loads = [load for load in result.loads if load.name == "floor"]
    if floor_loads:
        p50 = statistics.median(x.p50_ms for x in floor_loads)
        p99 = statistics.median(x.p99_ms for x in floor_loads)
        cpus = [x.cpu_ms for x in floor_loads if x.cpu_ms]
        floor_cpu = statistics.mean(cpus) if cpus else None
        log(f"| floor: GET /bench/floor (mean of its {len(floor_loads)} turns with the targets) | {_fmt(floor, 0)} | | 1.00 | | "
            f"{_fmt(p50, 2)} | {_fmt(p99, 2)} | {sum(x.requests for x in floor_loads):,} | "
            f"{sum(x.errors for x in floor_loads)} | {_fmt(floor_cpu, 2)} | 1.00 |")  # fmt: skip
    if result.check_latency:
        lat = result.check_latency
        log(f"| {lat.label} | {_fmt(lat.rps, 0)} | | | | {_fmt(lat.p50_ms, 2)} | {_fmt(lat.p99_ms, 2)} | "
            f"{lat.requests:,} | {lat.errors} | {_cpu(lat)} | |")  # fmt: skip
    log()
    if result.dashboard_ms:
        cold, warm = result.dashboard_ms[0], result.dashboard_ms[1:]
        log(f"Statistics dashboard: first request {cold:,.0f} ms, then median {statistics.median(warm):,.0f} ms, "
            f"max {max(warm):,.0f} ms (goal at state scale: < 500 ms).")  # fmt: skip
    elif result.dashboard_note:
        log(f"Statistics dashboard: {result.dashboard_note}.")
    for export in result.exports:
        log(f"CSV export {export['path']}: {export['status']}, {'streamed' if export['streamed'] else 'NOT streamed'}, "
            f"{export['rows']:,} rows, {export['bytes'] / 1e6:,.1f} MB in {export['seconds']:,.1f} s "
            f"(first byte after {export['first_byte_ms']:,.0f} ms); worker RSS {export['rss_before_kib'] / 1024:,.0f} MiB "
            f"before, peak {export['rss_peak_kib'] / 1024:,.0f} MiB (+{export['rss_growth_kib'] / 1024:,.1f} MiB).")  # fmt: skip
    if result.worker_hwm_kib:
        log(f"Worker memory: RSS at start {', '.join(f'{k / 1024:,.0f}' for k in result.worker_rss_start_kib)} MiB; "
            f"peak (VmHWM) under load {', '.join(f'{k / 1024:,.0f}' for k in result.worker_hwm_kib)} MiB.")  # fmt: skip
    for note in result.skipped:
        log(f"Not measured: {note}.")
    print_explained(result)


def print_explained(result: ScaleResult) -> None:
    """The plans of the routes' statements, with sequential scans on large tables flagged."""
    if result.explained:
        log()
        log(f"EXPLAIN (ANALYZE, BUFFERS) at {result.scale} scale:")
        for item in result.explained:
            flag = f"  ⚠ Seq Scan on {', '.join(sorted(set(item.seq)))}" if item.seq else ""
            log()
            log(f"-- {item.route}: {item.seconds * 1000:.2f} ms in the app{flag}")
            log("   " + " ".join(item.statement.split())[:400])
            for line in item.plan:
                log("   " + line)


def check_codes(base: str, fixtures: Fixtures) -> list[str]:
    """The codes a till sends: 4 of 5 as the QR text a scanner reads, 1 of 5 as a typed number."""
    pairs = zip(fixtures.tokens, fixtures.numbers, strict=True)
    return [(f"{base}/v/{t}" if i % 5 else n) for i, (t, n) in enumerate(pairs)]


def _median_turns(parts: list[Load]) -> Load:
    """Turns of the same load as one: requests and CPU added up, p50 and p99 the turns' medians."""
    combined = combine(parts)
    combined.p50_ms = statistics.median(p.p50_ms for p in parts)
    combined.p99_ms = statistics.median(p.p99_ms for p in parts)
    return combined


def latency_side_by_side(args: argparse.Namespace, storage: str) -> dict[str, Load]:
    """The check's latency at both scales, both served at once and taking turns (one connection).

    Measured one scale after the other, minutes apart, the two figures also differ by how fast the
    shared machine happened to be in each minute; side by side, both see the same drift.
    """
    loads: dict[str, list[Load]] = {"district": [], "state": []}
    with contextlib.ExitStack() as stack:
        drivers: dict[str, tuple[Driver, dict[str, str]]] = {}
        for scale in loads:
            db_url = generate.database_url(scale, args.server)
            fixtures = load_fixtures(db_url)
            port = free_port()
            env = server_env(db_url, port, storage, args.worker_class, args.threads)
            workdir = Path(tempfile.mkdtemp(prefix=f"kyffikus-bench-latency-{scale}-"))
            server = stack.enter_context(Server(env, port, workdir / "gunicorn.log"))
            codes = workdir / "codes.txt"
            codes.write_text("\n".join(check_codes(server.url(""), fixtures)) + "\n", "utf-8")
            driver = Driver(
                server.url(""),
                workdir,
                python_client=args.python_client,
                cpu_pids=lambda server=server, db_url=db_url: serving_pids(server, db_url),
            )
            drivers[scale] = (
                driver,
                {"BENCH_CODES": str(codes), "BENCH_TOKEN": generate.BENCH_API_TOKEN},
            )
        log(
            f"  POST /api/v1/checks at both scales side by side, one connection, {LATENCY_TURNS} "
            "turns each ..."
        )
        for turn in range(LATENCY_TURNS):
            # Each scale goes first in every other turn.
            for scale, (driver, env_) in list(drivers.items())[:: -1 if turn % 2 else 1]:
                loads[scale].append(
                    driver.run(
                        Load("check_latency", f"POST /api/v1/checks, 1 connection ({scale})"),
                        duration=args.duration / ROUNDS, connections=1, script="check_api.lua",
                        env=env_, warmup=3.0 if turn == 0 else 1.0,
                    )
                )  # fmt: skip
    return {scale: _median_turns(parts) for scale, parts in loads.items()}


def print_comparison(
    results: list[ScaleResult], side_by_side: dict[str, Load] | None = None
) -> None:
    """District against state: the check's latency, the dashboard, memory."""
    by = {r.scale: r for r in results}
    if "district" not in by or "state" not in by:
        return
    d, s = by["district"], by["state"]
    log()
    log("### district vs state")
    log()
    latency_d, latency_s = d.check_latency, s.check_latency
    if side_by_side:
        latency_d, latency_s = side_by_side["district"], side_by_side["state"]
        log(
            "The check's latency: both data sets served at once, taking turns "
            f"({LATENCY_TURNS} turns each, one connection; p50 and p99 are the turns' medians)."
        )
        log()
    log("| figure | district | state | state / district | goal |")
    log("|---|---:|---:|---:|---|")
    if latency_d and latency_s:
        for attr, label in (
            ("p50_ms", "check p50 ms (1 connection)"),
            ("p99_ms", "check p99 ms (1 connection)"),
        ):
            a, b = getattr(latency_d, attr), getattr(latency_s, attr)
            log(
                f"| {label} | {_fmt(a, 2)} | {_fmt(b, 2)} | {_fmt(b / a if a else None, 2)} | ≤ 1.2 |"
            )
        a, b = latency_d.cpu_ms, latency_s.cpu_ms
        if a and b:
            log(
                f"| check CPU ms per request (1 connection) | {a:.2f} | {b:.2f} | {b / a:.2f} | ≤ 1.2 |"
            )
    for name in ("check_api", "check_page", "directory", "qr_304"):
        a_load = next((x for x in d.loads if x.name == name), None)
        b_load = next((x for x in s.loads if x.name == name), None)
        if a_load and b_load and a_load.cpu_ms and b_load.cpu_ms:
            log(f"| {a_load.label} CPU ms/req | {a_load.cpu_ms:.2f} | {b_load.cpu_ms:.2f} | "
                f"{b_load.cpu_ms / a_load.cpu_ms:.2f} | |")  # fmt: skip
        if a_load and b_load:
            log(f"| {a_load.label} req/s | {_fmt(a_load.rps, 0)} | {_fmt(b_load.rps, 0)} | "
                f"{_fmt(b_load.rps / a_load.rps if a_load.rps else None, 2)} | |")  # fmt: skip
    if d.dashboard_ms and s.dashboard_ms:
        a, b = statistics.median(d.dashboard_ms[1:]), statistics.median(s.dashboard_ms[1:])
        log(
            f"| statistics dashboard ms (median, warm) | {a:,.0f} | {b:,.0f} | {b / a:,.1f} | state < 500 ms |"
        )
    if d.worker_hwm_kib and s.worker_hwm_kib:
        a, b = max(d.worker_hwm_kib) / 1024, max(s.worker_hwm_kib) / 1024
        log(f"| worker peak RSS MiB | {a:,.0f} | {b:,.0f} | {b / a:,.2f} | flat |")


def machine() -> str:
    """A line about the machine the figures come from."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pg = "?"
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(f"{generate.DEFAULT_SERVER}/postgres", connect_timeout=3) as conn:
            pg = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, PostgreSQL {pg}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark at the chosen scale(s) and print the tables."""
    parser = argparse.ArgumentParser(
        description="Kyffikus benchmark (prints figures, asserts nothing)."
    )
    parser.add_argument("--scale", choices=("district", "state", "both"), default="both")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per measured load (default 10)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=CONNECTIONS,
        help=f"concurrent connections (default {CONNECTIONS})",
    )
    parser.add_argument("--server", default=generate.DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument(
        "--explain-only",
        action="store_true",
        help="only print EXPLAIN (ANALYZE) of the routes' queries",
    )
    parser.add_argument(
        "--regenerate", action="store_true", help="generate the data set even if one is there"
    )
    parser.add_argument(
        "--python-client", action="store_true", help="use the Python client instead of wrk"
    )
    parser.add_argument(
        "--priority",
        action="store_true",
        help="nice -10 for gunicorn and wrk (root; for a shared machine)",
    )
    parser.add_argument(
        "--worker-class", default=None, help="gunicorn worker class (default: gunicorn.conf.py's)"
    )
    parser.add_argument("--threads", type=int, default=None, help="threads per gthread worker")
    parser.add_argument(
        "--memory-limits", action="store_true", help="rate limits in memory even if Redis answers"
    )
    args = parser.parse_args(argv)
    if args.priority:
        if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("nice"):
            PRIORITY[:] = ["nice", "-n", "-10"]
        else:
            log("--priority needs root; running at normal priority.")
    started = time.monotonic()
    storage = "memory://" if args.memory_limits or not redis_answers() else REDIS_URL
    command = "bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    log(f"Kyffikus benchmark: {command.strip()}")
    log(f"Machine: {machine()}")
    scales = ("district", "state") if args.scale == "both" else (args.scale,)
    results = []
    for scale in scales:
        if args.explain_only:
            print_explained(explain_scale(scale, args, storage))
            continue
        result = bench_scale(scale, args, storage)
        results.append(result)
        print_scale(result)
    side_by_side = None
    if len(results) == 2 and not args.explain_only:
        side_by_side = latency_side_by_side(args, storage)
    print_comparison(results, side_by_side)
    log()
    log(f"Benchmark finished in {(time.monotonic() - started) / 60:.1f} minutes.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
