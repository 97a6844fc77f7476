"""The :class:`~switchman.state.StateStore` on Redis, for gateway replicas that share state.

Each operation is one round trip and atomic on the server: keyed values live in a hash per
space with a sorted set of last-use times beside it (a Lua script refreshes and evicts, so a
bounded space stays bounded however many replicas write to it); counters are hash fields
(``HINCRBY``); event windows are sorted sets scored by time. Values are stored as JSON.

Redis errors surface as :class:`~switchman.state.StoreUnavailable`. Calls are synchronous
with a short socket timeout: the callers (breakers, stickiness, the
ledger) are synchronous code on the event loop, and a loopback round trip costs tens of
microseconds. :class:`FallbackStore` keeps requests going when Redis is not reachable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis

from switchman.state import MAX_WINDOW_EVENTS, LocalStore, StateStore, StoreUnavailable

logger = logging.getLogger(__name__)

# KEYS: hash, recency zset. ARGV: key, now. Returns the JSON value or nil; refreshes recency.
_GET = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
end
return v
"""
# KEYS: hash, recency zset, bound. ARGV: now, then key, value pairs. Evicts the least
# recently used.
_PUT = """
local limit = tonumber(redis.call('GET', KEYS[3]) or '0')
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if limit > 0 then redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i]) end
end
if limit > 0 then
  local extra = redis.call('ZCARD', KEYS[2]) - limit
  if extra > 0 then
    local old = redis.call('ZPOPMIN', KEYS[2], extra)
    for i = 1, #old, 2 do redis.call('HDEL', KEYS[1], old[i]) end
  end
end
"""
# KEYS: hash. ARGV: field, delta, limit ('' = none). Adds unless a positive delta passes limit.
_ADD_AMOUNT = """
local value = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') + tonumber(ARGV[2])
if ARGV[3] ~= '' and tonumber(ARGV[2]) > 0 and value > tonumber(ARGV[3]) then
  return false
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.17g', value))
return string.format('%.17g', value)
"""
# KEYS: window zset. ARGV: since. Drops older events, returns the rest in time order.
_SINCE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


@contextlib.contextmanager
def _reachable() -> Iterator[None]:
    """Redis errors as :class:`StoreUnavailable`, so callers need not know the backend."""
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailable(f"redis: {exc}") from exc


class RedisStore:
    """State shared by every gateway that names the same Redis database and ``prefix``."""

    def __init__(self, url: str, prefix: str = "switchman", timeout_s: float = 0.25) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout_s,
                                           socket_connect_timeout=timeout_s)
        self._prefix = prefix
        self._get = self._redis.register_script(_GET)
        self._put = self._redis.register_script(_PUT)
        self._since = self._redis.register_script(_SINCE)
        self._add_amount = self._redis.register_script(_ADD_AMOUNT)

    def _key(self, space: str, suffix: str = "") -> str:
        return f"{self._prefix}:{space}{suffix}"

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the server answers."""
        with _reachable():
            self._redis.ping()

    def bound(self, space: str, max_entries: int) -> None:
        with _reachable():
            self._redis.set(self._key(space, ":bound"), max_entries)

    def size(self, space: str) -> int:
        with _reachable():
            return int(self._redis.hlen(self._key(space)))

    def get(self, space: str, key: str) -> Any | None:
        with _reachable():
            raw = self._get(keys=[self._key(space), self._key(space, ":lru")],
                            args=[key, time.time()])
            return None if raw is None else json.loads(raw)  # tuples come back as lists

    def put(self, space: str, key: str, value: Any) -> None:
        self.put_many(space, ((key, value),))

    def put_many(self, space: str, items: Sequence[tuple[str, Any]]) -> None:
        if not items:
            return
        args: list[Any] = [time.time()]
        for key, value in items:
            args += (key, json.dumps(value))
        with _reachable():
            self._put(keys=[self._key(space), self._key(space, ":lru"),
                            self._key(space, ":bound")], args=args)

    def add(self, space: str, key: str, delta: int) -> int:
        with _reachable():
            return int(self._redis.hincrby(self._key(space), key, delta))

    def add_amount(self, space: str, key: str, delta: float,
                   limit: float | None = None) -> float | None:
        with _reachable():
            found = self._add_amount(keys=[self._key(space, ":amounts")],
                                     args=[key, repr(float(delta)), "" if limit is None
                                           else repr(float(limit))])
            return None if found is None else float(found)

    def record_event(self, space: str, key: str, at: float, value: Any) -> None:
        with _reachable():
            window = self._key(space, ":" + key)
            member = f"{uuid.uuid4().hex}|{json.dumps(value)}"  # unique: equal events both count
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(window, {member: at})
                pipe.zremrangebyrank(window, 0, -MAX_WINDOW_EVENTS - 1)
                pipe.execute()

    def events_since(self, space: str, key: str, since: float) -> list[Any]:
        with _reachable():
            members = self._since(keys=[self._key(space, ":" + key)], args=[since])
            return [json.loads(m.split(b"|", 1)[1]) for m in members]

    def clear_events(self, space: str, key: str) -> None:
        with _reachable():
            self._redis.delete(self._key(space, ":" + key))

    def close(self) -> None:
        self._redis.close()


class FallbackStore:
    """A shared store that degrades to local state while it is unreachable.

    Stickiness and breakers must never fail a request because Redis is down: each failing
    call is answered from a local store instead, with a warning (once per outage) and
    ``on_failure`` (a metric). After ``retry_s`` the shared store is tried again.
    """

    def __init__(self, shared: StateStore, on_failure: Callable[[], None] | None = None,
                 retry_s: float = 5.0) -> None:
        self.shared = shared
        self.local = LocalStore()
        self._on_failure = on_failure
        self._retry_s = retry_s
        self._down_until = 0.0

    @property
    def degraded(self) -> bool:
        """Whether calls go to local state now."""
        return time.monotonic() < self._down_until

    def _call(self, name: str, *args: Any) -> Any:
        if not self.degraded:
            try:
                return getattr(self.shared, name)(*args)
            except StoreUnavailable as exc:
                logger.warning("shared state store unreachable (%s); using local state for "
                               "%.0f s", exc, self._retry_s)
                self._down_until = time.monotonic() + self._retry_s
        if self._on_failure is not None:
            self._on_failure()
        return getattr(self.local, name)(*args)

    def bound(self, space: str, max_entries: int) -> None:
        self.local.bound(space, max_entries)
        self._call("bound", space, max_entries)

    def size(self, space: str) -> int:
        return self._call("size", space)

    def get(self, space: str, key: str) -> Any | None:
        return self._call("get", space, key)

    def put(self, space: str, key: str, value: Any) -> None:
        self._call("put", space, key, value)

    def put_many(self, space: str, items: Sequence[tuple[str, Any]]) -> None:
        self._call("put_many", space, items)

    def add(self, space: str, key: str, delta: int) -> int:
        return self._call("add", space, key, delta)

    def add_amount(self, space: str, key: str, delta: float,
                   limit: float | None = None) -> float | None:
        return self._call("add_amount", space, key, delta, limit)

    def record_event(self, space: str, key: str, at: float, value: Any) -> None:
        self._call("record_event", space, key, at, value)

    def events_since(self, space: str, key: str, since: float) -> list[Any]:
        return self._call("events_since", space, key, since)

    def clear_events(self, space: str, key: str) -> None:
        self._call("clear_events", space, key)
