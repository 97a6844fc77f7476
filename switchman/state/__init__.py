"""Shared state behind one small interface: what several requests (and, later, several
gateway replicas) must agree on.

Conversation stickiness, circuit breakers, in-flight counts and the decision log's index of
recent response ids all keep their state in a :class:`StateStore` instead of private
attributes, so that a second backend (Redis, for replicas: the online-learning and budgets
issue) replaces one object and none of its users. The interface is deliberately the few
operations those users need, each of which a Redis backend can do atomically in one round
trip: keyed values in bounded spaces, counters, and time windows of events.

:class:`LocalStore` keeps everything in this process. Its callers run on the event loop
thread, except two: the decision log's writer adds the response ids it has written, and
feedback looks a response's owner up on a worker thread. One lock keeps each operation on
keyed spaces whole between them (event windows are the loop's alone).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any, Protocol


class StoreUnavailable(Exception):
    """A shared store could not be reached; callers decide whether to fall back or refuse."""


#: Events kept per window key at most, whatever the traffic (memory stays flat).
MAX_WINDOW_EVENTS = 4096


class StateStore(Protocol):
    """Named spaces of keyed values, counters and event windows."""

    def bound(self, space: str, max_entries: int) -> None:
        """Keep at most ``max_entries`` keys in ``space``, evicting the least recently used."""

    def size(self, space: str) -> int:
        """How many keys ``space`` holds now."""

    def get(self, space: str, key: str) -> Any | None:
        """The value at ``key`` (refreshing it for eviction), or None."""

    def put(self, space: str, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` (JSON-like data only: other backends serialise it)."""

    def put_many(self, space: str, items: Sequence[tuple[str, Any]]) -> None:
        """``put`` each (key, value) in order: one round trip for a shared store."""

    def add(self, space: str, key: str, delta: int) -> int:
        """Add ``delta`` to the counter at ``key`` (0 when new); the new value."""

    def add_amount(self, space: str, key: str, delta: float,
                   limit: float | None = None) -> float | None:
        """Add ``delta`` to the amount at ``key`` (0.0 when new) unless the result would
        exceed ``limit``; the new amount, or None (and no change) when it would. This is
        what makes a budget reservation safe under any concurrency."""

    def record_event(self, space: str, key: str, at: float, value: Any) -> None:
        """Append an event at time ``at`` to the window at ``key``."""

    def events_since(self, space: str, key: str, since: float) -> list[Any]:
        """Values of the window's events at or after ``since``; older ones are dropped."""

    def clear_events(self, space: str, key: str) -> None:
        """Empty the window at ``key``."""


class LocalStore:
    """The in-process :class:`StateStore`: one gateway process, nothing shared."""

    def __init__(self) -> None:
        self._spaces: dict[str, OrderedDict[str, Any]] = {}
        self._bounds: dict[str, int] = {}
        self._windows: dict[tuple[str, str], deque[tuple[float, Any]]] = {}
        self._lock = threading.Lock()  # see the module's docstring

    def _space(self, space: str) -> OrderedDict[str, Any]:
        found = self._spaces.get(space)
        if found is None:
            found = self._spaces[space] = OrderedDict()
        return found

    def bound(self, space: str, max_entries: int) -> None:
        with self._lock:
            self._bounds[space] = max_entries
            self._evict(space, self._space(space))

    def _evict(self, space: str, entries: OrderedDict[str, Any]) -> None:
        limit = self._bounds.get(space)
        if limit is not None:
            while len(entries) > limit:
                entries.popitem(last=False)

    def size(self, space: str) -> int:
        """How many keys ``space`` holds now."""
        with self._lock:
            return len(self._space(space))

    def get(self, space: str, key: str) -> Any | None:
        with self._lock:
            entries = self._space(space)
            value = entries.get(key)
            if value is not None:
                entries.move_to_end(key)
            return value

    def put(self, space: str, key: str, value: Any) -> None:
        self.put_many(space, ((key, value),))

    def put_many(self, space: str, items: Sequence[tuple[str, Any]]) -> None:
        with self._lock:
            entries = self._space(space)
            for key, value in items:
                entries[key] = value
                entries.move_to_end(key)
            self._evict(space, entries)

    def add(self, space: str, key: str, delta: int) -> int:
        with self._lock:
            entries = self._space(space)
            value = entries.get(key, 0) + delta
            entries[key] = value
            return value

    def add_amount(self, space: str, key: str, delta: float,
                   limit: float | None = None) -> float | None:
        with self._lock:
            entries = self._space(space)
            value = entries.get(key, 0.0) + delta
            if limit is not None and delta > 0 and value > limit:
                return None
            entries[key] = value
            return value

    def _window(self, space: str, key: str) -> deque[tuple[float, Any]]:
        found = self._windows.get((space, key))
        if found is None:
            found = self._windows[(space, key)] = deque(maxlen=MAX_WINDOW_EVENTS)
        return found

    def record_event(self, space: str, key: str, at: float, value: Any) -> None:
        self._window(space, key).append((at, value))

    def events_since(self, space: str, key: str, since: float) -> list[Any]:
        window = self._window(space, key)
        while window and window[0][0] < since:
            window.popleft()
        return [value for _, value in window]

    def clear_events(self, space: str, key: str) -> None:
        self._window(space, key).clear()
