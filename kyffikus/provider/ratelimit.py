"""Rate limits on checking passes (page, /v/<token>, API): per user and per address.

One budget is shared by every check route (scope "check"), so guessing numbers or tokens cannot be
spread over the page, the QR URL and the API. The limit string is CHECK_RATE_LIMIT, read per request
(e.g. "60 per minute;600 per hour": every window counts).

The check is the hottest path of the service, so its limits are counted here rather than through
Flask-Limiter's decorators, which send one command to the storage per window and key, and two
more per request for the X-RateLimit headers (six round trips to Redis per check with the
production limits). Here every window of both budgets is counted in ONE round trip (a Lua script
in Redis), with the same semantics and the same storage as Flask-Limiter: fixed windows that
start with their first request, the user's budget before the address's, the first exhausted
window refuses the request (429) and later counters are left alone, Flask-Limiter's key names,
and the same X-RateLimit-Limit/-Remaining/-Reset and Retry-After headers. The counters live in
Flask-Limiter's storage (Redis when KYFFIKUS_RATELIMIT_STORAGE_URL is set), so `limiter.reset()`
clears them too; RATELIMIT_ENABLED=false switches them off like every other limit.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any, TypeVar

from flask import Response, abort, after_this_request, current_app, g, request
from flask_login import current_user
from limits import RateLimitItem, parse_many
from limits.storage import RedisClusterStorage, RedisStorage, Storage
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from kyffikus.extensions import limiter, remote_address

log = logging.getLogger("kyffikus.ratelimit")

F = TypeVar("F", bound=Callable[..., Any])

USER_SCOPE = "check-user"
ADDRESS_SCOPE = "check-address"

# KEYS: the counters in the order they are counted; ARGV: each counter's window in seconds and
# its limit. Counts until the first counter over its limit (like Flask-Limiter, which refuses at
# the first breach), and answers each counted key's value and seconds to live.
_COUNT_SCRIPT = """
local answer = {}
for i, key in ipairs(KEYS) do
  local current = redis.call("incr", key)
  local ttl = redis.call("ttl", key)
  if current == 1 or ttl < 0 then
    redis.call("expire", key, ARGV[2 * i - 1])
    ttl = tonumber(ARGV[2 * i - 1])
  end
  answer[#answer + 1] = current
  answer[#answer + 1] = ttl
  if current > tonumber(ARGV[2 * i]) then
    break
  end
end
return answer
"""
_scripts: weakref.WeakKeyDictionary[Storage, Any] = weakref.WeakKeyDictionary()


def user_key() -> str:
    """The API token's user, else the logged-in user, else the address."""
    token = g.get("api_token")
    if token is not None:
        return f"user:{token.user_id}"
    if current_user and current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"anon:{remote_address()}"


def address_key() -> str:
    """The client's address (behind the proxy fix)."""
    return f"addr:{remote_address()}"


@lru_cache(maxsize=16)
def _windows(limit: str) -> tuple[RateLimitItem, ...]:
    # Smallest window first, as Flask-Limiter counts them.
    return tuple(sorted(parse_many(limit), key=lambda item: item.get_expiry()))


@dataclass(frozen=True)
class Counted:
    """One window of one budget after this request: its limit, its count, when it resets."""

    item: RateLimitItem
    count: int
    reset_at: float

    @property
    def breached(self) -> bool:
        """Whether this request went over the window's limit."""
        return self.count > self.item.amount


Plan = tuple[tuple[str, RateLimitItem], ...]


@lru_cache(maxsize=1024)
def _plan(limit: str, prefix: str, user: str, address: str) -> Plan:
    """The counters of a check, in counting order: each window of the user's, then the address's.

    Kept per user and address (a till checks over and over with the same ones): the key names are
    built once, not on every check.
    """
    windows = _windows(limit)
    prefixes = [prefix] if prefix else []
    return tuple(
        [(item.key_for(*prefixes, user, USER_SCOPE), item) for item in windows]
        + [(item.key_for(*prefixes, address, ADDRESS_SCOPE), item) for item in windows]
    )


@lru_cache(maxsize=1024)
def _evalsha(sha: str, key_prefix: str, plan: Plan) -> bytes:
    """The EVALSHA of a plan in Redis's wire format (RESP), packed once per plan."""
    keys = [f"{key_prefix}:{key}" for key, _item in plan]
    args = [str(n) for _key, item in plan for n in (item.get_expiry(), item.amount)]
    parts = [b"EVALSHA", sha.encode(), str(len(keys)).encode()]
    parts += [part.encode() for part in keys + args]
    return b"*%d\r\n" % len(parts) + b"".join(
        b"$%d\r\n%s\r\n" % (len(part), part) for part in parts
    )


def _count(storage: Storage, plan: Plan) -> list[Counted]:
    """Count the request in each planned window, until the first one over its limit."""
    if isinstance(storage, RedisStorage) and not isinstance(storage, RedisClusterStorage):
        script = _scripts.get(storage)
        if script is None:
            script = _scripts[storage] = storage.get_connection().register_script(_COUNT_SCRIPT)
        answer = _run_script(storage, script, plan)
        now = time.time()
        return [
            Counted(item, int(answer[2 * i]), now + max(int(answer[2 * i + 1]), 0))
            for i, (_key, item) in enumerate(plan[: len(answer) // 2])
        ]
    # Memory (tests, a single process) or a cluster: one command per window.
    counted = []
    for key, item in plan:
        count = storage.incr(key, item.get_expiry())
        counted.append(Counted(item, count, storage.get_expiry(key)))
        if count > item.amount:
            break
    return counted


# Each thread keeps one Redis connection of its own for the check budgets (made by the storage's
# pool, so with its address and settings): no pool to ask and release on every check.
_thread = threading.local()


def _own_connection(pool: Any) -> Any:
    connection = getattr(_thread, "connection", None)
    if connection is None or _thread.pool is not pool or _thread.pid != os.getpid():
        connection = pool.make_connection()
        _thread.connection, _thread.pool, _thread.pid = connection, pool, os.getpid()
    return connection


def _run_script(storage: RedisStorage, script: Any, plan: Plan) -> Any:
    """EVALSHA on this thread's own connection, packed once per plan: the check's one round trip,
    without the client's per-command layers. Anything unusual (the script not loaded, a broken
    connection) goes the client's usual way, which loads the script and reconnects."""
    connection = _own_connection(storage.get_connection().connection_pool)
    try:
        connection.send_packed_command([_evalsha(script.sha, storage.key_prefix, plan)])
        return _read_counts(connection)
    except (RedisError, OSError, ValueError):
        connection.disconnect()  # connects again on its next use
    keys = [storage.prefixed_key(key) for key, _item in plan]
    args = [n for _key, item in plan for n in (item.get_expiry(), item.amount)]
    return script(keys=keys, args=args)


def _read_counts(connection: Any) -> list[int]:
    """The script's answer, an array of integers, read straight from this thread's socket.

    redis-py's reply parser costs a check more CPU than the round trip's own system calls. Any
    other answer (an error such as NOSCRIPT, a closed connection) raises, and the caller goes the
    client's way. Nothing else uses this connection, so no reply of another command is waiting.
    """
    sock = connection._sock  # noqa: SLF001 - the connection's socket, connected by send_packed_command
    data = sock.recv(1024)
    while True:
        if not data:
            raise RedisConnectionError("Redis closed the connection")
        if data[:1] != b"*":
            raise ResponseError(data[:80].decode("utf-8", "replace").strip())
        lines = data.split(b"\r\n")
        count = int(lines[0][1:]) if len(lines) > 1 else -1
        if count >= 0 and len(lines) > count + 1:  # all of the array's lines are in
            values = lines[1 : count + 1]
            if lines[count + 1] or not all(v[:1] == b":" for v in values):
                raise ResponseError("unexpected answer to the check budgets' script")
            return [int(v[1:]) for v in values]
        more = sock.recv(1024)
        if not more:
            raise RedisConnectionError("Redis closed the connection")
        data += more


def _headers(limit: Counted) -> Callable[[Response], Response]:
    def add(response: Response) -> Response:
        # The names and values Flask-Limiter sends (RATELIMIT_HEADERS_ENABLED).
        reset_at = int(limit.reset_at + 1)
        response.headers["X-RateLimit-Limit"] = str(limit.item.amount)
        response.headers["X-RateLimit-Remaining"] = str(max(0, limit.item.amount - limit.count))
        response.headers["X-RateLimit-Reset"] = str(reset_at)
        response.headers["Retry-After"] = str(int(reset_at - time.time()))
        return response

    return add


def count_check() -> None:
    """Count this request against the user's and the address's check budget; 429 when spent."""
    config = current_app.config
    if not config.get("RATELIMIT_ENABLED", True):
        return
    limit = str(config["CHECK_RATE_LIMIT"])
    windows = _windows(limit)
    prefix = str(config.get("RATELIMIT_KEY_PREFIX") or "")
    plan = _plan(limit, prefix, user_key(), address_key())
    counted = _count(limiter.storage, plan)
    breached = counted[-1] if counted and counted[-1].breached else None
    # The headers describe the breached window, else the address's smallest one (Flask-Limiter's
    # choice: the last budget counted).
    shown = breached or (counted[len(windows)] if len(counted) > len(windows) else None)
    if config.get("RATELIMIT_HEADERS_ENABLED") and shown is not None:
        after_this_request(_headers(shown))
    if breached is not None:
        scope = USER_SCOPE if len(counted) <= len(windows) else ADDRESS_SCOPE
        # Neither the user nor the address goes into the log (personal data): the scope is enough.
        log.info("check rate limit %s reached (%s) on %s", breached.item, scope, request.endpoint)
        abort(429)


def check_limits(view: F) -> F:
    """Count the request against the check budgets (per user and per address) before the view."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        count_check()
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
