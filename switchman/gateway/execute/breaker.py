"""Circuit breakers: a model failing most of its recent calls is taken out of plans.

Closed (normal) -> open when, within ``window_s``, at least ``min_calls`` calls ended and the
share of failures reaches ``failure_rate``. Open: no calls for ``cooldown_s``. Then
half-open: exactly one caller gets the probe; its success closes the breaker (with a clean
window), its failure opens it again for another cool-down. A probe whose caller went away
without a verdict frees the slot for the next request.

State (the current state, the window of recent (time, ok) outcomes, the probe in progress)
lives in the gateway's state store, so replicas sharing a store share their breakers; the
store bounds each window, so memory is flat whatever the traffic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from switchman.config.reliability import BreakerConfig
from switchman.state import LocalStore, StateStore

logger = logging.getLogger(__name__)

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
#: Gauge values of ``switchman_circuit_state``.
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
#: Store spaces: (state, opened_at) per model, probes in progress, opened count, outcomes.
_STATE, _PROBING, _OPENED, _WINDOW = ("breaker", "breaker_probe", "breaker_opened",
                                      "breaker_window")


@dataclass(slots=True)
class Admission:
    """Permission to call a model; ``probe`` marks the half-open trial call."""

    allowed: bool
    probe: bool = False
    retry_after: float = 0.0


class CircuitBreaker:
    """The breaker of one model; its state lives in a :class:`StateStore` (see module doc)."""

    def __init__(self, name: str, config: BreakerConfig,
                 on_change: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 store: StateStore | None = None) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        self._on_change = on_change
        self._store: StateStore = LocalStore() if store is None else store

    def _status(self) -> tuple[str, float]:
        """(state as last set, when it last opened)."""
        found = self._store.get(_STATE, self.name)
        return (CLOSED, 0.0) if found is None else (found[0], found[1])

    @property
    def opened_count(self) -> int:
        return self._store.add(_OPENED, self.name, 0)

    @property
    def state(self) -> str:
        """Current state; an open breaker whose cool-down is over reads as half-open."""
        state, opened_at = self._status()
        if state == OPEN and self._clock() - opened_at >= self.config.cooldown_s:
            self._set(HALF_OPEN, opened_at)
            return HALF_OPEN
        return state

    def _set(self, state: str, opened_at: float) -> None:
        old, _ = self._status()
        self._store.put(_STATE, self.name, (state, opened_at))
        if state != old:
            logger.warning("circuit of model %s: %s -> %s", self.name, old, state)
            if self._on_change is not None:
                self._on_change(self.name, state)

    def counts(self) -> tuple[int, int]:
        """(calls, failures) in the current window."""
        window = self._store.events_since(_WINDOW, self.name,
                                          self._clock() - self.config.window_s)
        return len(window), sum(1 for ok in window if not ok)

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through."""
        state, opened_at = self._status()
        if state != OPEN:
            return 0.0
        return max(0.0, self.config.cooldown_s - (self._clock() - opened_at))

    def admit(self) -> Admission:
        """Whether a call may go to this model now (and whether it is the probe)."""
        if not self.config.enabled:
            return Admission(True)
        state = self.state
        if state == CLOSED:
            return Admission(True)
        if state == HALF_OPEN:
            if self._store.add(_PROBING, self.name, 1) == 1:  # the first caller claims it
                return Admission(True, probe=True)
            self._store.add(_PROBING, self.name, -1)
        return Admission(False, retry_after=self.retry_after() or 1.0)

    def record(self, ok: bool, probe: bool = False) -> None:
        """The verdict of one call (or attempt) admitted by :meth:`admit`."""
        if not self.config.enabled:
            return
        now = self._clock()
        if probe:
            self._store.add(_PROBING, self.name, -1)
            if ok:
                self._store.clear_events(_WINDOW, self.name)
                self._set(CLOSED, 0.0)
            else:
                self._open(now)
            return
        self._store.record_event(_WINDOW, self.name, now, ok)
        if ok or self._status()[0] != CLOSED:
            return
        calls, failures = self.counts()
        if calls >= self.config.min_calls and failures / calls >= self.config.failure_rate:
            self._open(now)

    def release(self, probe: bool) -> None:
        """A call admitted as probe ended without a verdict (caller gone): free the slot."""
        if probe:
            self._store.add(_PROBING, self.name, -1)

    def _open(self, now: float) -> None:
        self._store.add(_OPENED, self.name, 1)
        self._store.clear_events(_WINDOW, self.name)
        # A state change from OPEN to OPEN (failed probe) still restarts the cool-down.
        self._set(OPEN, now)
