"""Sample production configuration for gunicorn: `gunicorn -c gunicorn.conf.py wsgi:app`.

Every value can be changed through the environment, so one file serves every host behind the load
balancer. The app keeps nothing in a worker's memory that another worker or host needs: sessions are
signed cookies, rate limits live in Redis (KYFFIKUS_RATELIMIT_STORAGE_URL), everything else in
PostgreSQL (DATABASE_URL).
"""

from __future__ import annotations

import multiprocessing
import os
import re

from gunicorn import glogging

# Where the load balancer connects. Bind to the private interface, not the internet.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")

# Threaded workers ("gthread"), two threads each, and 2 per core + 1 processes (gunicorn's advice).
# A request is a few milliseconds of CPU plus waits for PostgreSQL and Redis; a second thread uses
# those waits. Threaded workers also keep the balancer's connections alive, and their heartbeat does
# not depend on the request: a CSV export of a big provider's year (tens of seconds at state scale,
# streamed) is not killed by `timeout`, which a sync worker would do mid-download.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "2"))

# A worker whose main loop hangs this long is restarted. (A stuck query is bounded in PostgreSQL:
# ALTER ROLE kyffikus SET statement_timeout = '30s', see the README's deployment section.)
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# The load balancer keeps connections open between requests.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))

# Restart each worker now and then (with jitter so they do not all restart at once): a slow leak in
# any library cannot grow without bound.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "10000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "1000"))

# SO_REUSEPORT (GUNICORN_REUSE_PORT=1): each worker listens on a socket of its own and the kernel
# spreads new connections over them by their addresses. With the one shared socket, the worker that
# wakes first takes a whole burst of new connections: a balancer opening its pool of kept-alive
# connections, or a load generator starting, may land all of them in one worker while the others
# idle (seen with wrk and 2 workers: all 4 connections in one worker in 3 of 11 starts, all 16 of
# 16 in 1 of 5, halving the throughput). Off by default: when a worker exits (max_requests, a
# reload), connections still waiting in its own queue are reset unless the kernel migrates them
# (Linux 5.14 and later: sysctl net.ipv4.tcp_migrate_req=1).
reuse_port = os.environ.get("GUNICORN_REUSE_PORT", "0") == "1"

# Load the app once in the master, then fork: workers share the imported code's memory pages.
# The database pool is created lazily per worker (Flask-SQLAlchemy), so no connection is shared
# across a fork.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") == "1"

# Only the balancer may set X-Forwarded-For / -Proto (the app's ProxyFix, KYFFIKUS_PROXY_FIX=1,
# trusts one hop). List the balancer's addresses here, comma separated.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")

# Access log without personal data: no query string (search words, codes), no client address (an
# IP address is personal data under the GDPR), no referrer or user agent, and path segments that are
# secrets or pass numbers (/v/<token>, links from e-mails) replaced by "…". The balancer's own log
# has the addresses if an attack must be traced.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
if accesslog.lower() in ("", "off", "none"):
    accesslog = None
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'

# A QR token or e-mailed token (token_urlsafe: long, with upper case or "_"), or a pass number
# (10 symbols of upper case and digits, maybe grouped 4-4-2). Slugs are lower case and ids are
# short, so neither is touched.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,}$")
_PASS_NUMBER = re.compile(r"^[0-9A-Z]{4}-?[0-9A-Z]{4}-?[0-9A-Z]{2}$")


def _secret(segment: str) -> bool:
    if _PASS_NUMBER.match(segment):
        return True
    return bool(_TOKEN.match(segment)) and any(c.isupper() or c == "_" for c in segment)


def redact_path(path: str) -> str:
    """The request path with secret-looking segments replaced by "…"."""
    return "/".join("…" if _secret(part) else part for part in path.split("/"))


class RedactingLogger(glogging.Logger):
    """gunicorn's logger, with the path's secrets taken out of the access log."""

    def atoms(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        """The log line's fields, with a redacted path."""
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["U"] = redact_path(atoms.get("U") or "")
        return atoms


logger_class = RedactingLogger
