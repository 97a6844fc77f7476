"""Circuit breakers: a model failing most of its recent calls is taken out of plans.

Closed (normal) -> open when, within ``window_s``, at least ``min_calls`` calls ended and the
share of failures reaches ``failure_rate``. Open: no calls for ``cooldown_s``. Then
half-open: exactly one caller gets the probe; its success closes the breaker (with a clean
window), its failure opens it again for another cool-down. A probe whose caller went away
without a verdict frees the slot for the next request.

Everything runs on the event loop thread, so no locks; the window is a bounded deque of
(time, ok) pairs, so memory is flat whatever the traffic.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from switchman.gateway.reliability_config import BreakerConfig

logger = logging.getLogger(__name__)

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
#: Gauge values of ``switchman_circuit_state``.
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
_MAX_WINDOW = 4096


@dataclass(slots=True)
class Admission:
    """Permission to call a model; ``probe`` marks the half-open trial call."""

    allowed: bool
    probe: bool = False
    retry_after: float = 0.0


class CircuitBreaker:
    """The breaker of one model."""

    def __init__(self, name: str, config: BreakerConfig,
                 on_change: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        self._on_change = on_change
        self._window: deque[tuple[float, bool]] = deque(maxlen=_MAX_WINDOW)
        self._state = CLOSED
        self._opened_at = 0.0
        self._probing = False
        self.opened_count = 0

    @property
    def state(self) -> str:
        """Current state; an open breaker whose cool-down is over reads as half-open."""
        if self._state == OPEN and self._clock() - self._opened_at >= self.config.cooldown_s:
            self._set(HALF_OPEN)
        return self._state

    def _set(self, state: str) -> None:
        if state != self._state:
            logger.warning("circuit of model %s: %s -> %s", self.name, self._state, state)
            self._state = state
            if self._on_change is not None:
                self._on_change(self.name, state)

    def _trim(self, now: float) -> None:
        horizon = now - self.config.window_s
        while self._window and self._window[0][0] < horizon:
            self._window.popleft()

    def counts(self) -> tuple[int, int]:
        """(calls, failures) in the current window."""
        self._trim(self._clock())
        return len(self._window), sum(1 for _, ok in self._window if not ok)

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through."""
        if self._state != OPEN:
            return 0.0
        return max(0.0, self.config.cooldown_s - (self._clock() - self._opened_at))

    def admit(self) -> Admission:
        """Whether a call may go to this model now (and whether it is the probe)."""
        if not self.config.enabled:
            return Admission(True)
        state = self.state
        if state == CLOSED:
            return Admission(True)
        if state == HALF_OPEN and not self._probing:
            self._probing = True
            return Admission(True, probe=True)
        return Admission(False, retry_after=self.retry_after() or 1.0)

    def record(self, ok: bool, probe: bool = False) -> None:
        """The verdict of one call (or attempt) admitted by :meth:`admit`."""
        if not self.config.enabled:
            return
        now = self._clock()
        if probe:
            self._probing = False
            if ok:
                self._window.clear()
                self._set(CLOSED)
            else:
                self._open(now)
            return
        self._window.append((now, ok))
        if ok or self._state != CLOSED:
            return
        self._trim(now)
        calls = len(self._window)
        if calls >= self.config.min_calls:
            failures = sum(1 for _, good in self._window if not good)
            if failures / calls >= self.config.failure_rate:
                self._open(now)

    def release(self, probe: bool) -> None:
        """A call admitted as probe ended without a verdict (caller gone): free the slot."""
        if probe:
            self._probing = False

    def _open(self, now: float) -> None:
        self._opened_at = now
        self.opened_count += 1
        self._window.clear()
        self._set(OPEN)
        # A state change from OPEN to OPEN (failed probe) still restarts the cool-down.
