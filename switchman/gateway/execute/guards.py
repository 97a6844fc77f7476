"""Per-model protection the executor consults before each call: in-flight limits, retry
delays, and the breakers, built once from the configuration.

An in-flight limit is a counter, not a semaphore: a request that finds a model full moves
on (to the next model of its plan, or to a 429) instead of waiting in an unbounded queue,
so memory stays flat and latency stays honest under overload.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from switchman.config import Config, PoolModel
from switchman.config.reliability import (
    BreakerConfig,
    RetryConfig,
    TimeoutConfig,
    merged,
)
from switchman.gateway.execute.breaker import CircuitBreaker
from switchman.state import LocalStore, StateStore

_IN_FLIGHT = "in_flight"


class InFlight:
    """How many calls are open against one upstream model (or the whole gateway).

    The count lives in the state store (space ``in_flight``, keyed by ``name``); the
    rejection count is this process's own, for its ``/v1/status``.
    """

    __slots__ = ("limit", "name", "rejected", "_store")

    def __init__(self, limit: int, name: str = "gateway", store: StateStore | None = None) -> None:
        self.limit = limit
        self.name = name
        self.rejected = 0
        self._store: StateStore = LocalStore() if store is None else store

    @property
    def active(self) -> int:
        return self._store.add(_IN_FLIGHT, self.name, 0)

    def try_acquire(self) -> bool:
        if self._store.add(_IN_FLIGHT, self.name, 1) > self.limit:
            self._store.add(_IN_FLIGHT, self.name, -1)
            self.rejected += 1
            return False
        return True

    def release(self) -> None:
        self._store.add(_IN_FLIGHT, self.name, -1)


def backoff_delay(policy: RetryConfig, attempt: int, retry_after: float | None,
                  rng: Callable[[float, float], float] = random.uniform) -> float | None:
    """Pause before retry number ``attempt + 1`` (None: do not retry, fall back instead).

    Full jitter (a uniform draw below the exponential cap) spreads the retries of many
    clients hit by the same outage. A ``Retry-After`` longer than the configured maximum
    means the model will not be ready soon: the next model is a better use of the time.
    """
    if retry_after is not None:
        return retry_after if retry_after <= policy.retry_after_max_s else None
    cap = min(policy.backoff_max_s, policy.backoff_base_s * (2 ** attempt))
    return rng(0.0, cap)


@dataclass(slots=True)
class ModelGuard:
    """Everything the executor needs to call one model carefully."""

    timeouts: TimeoutConfig
    retries: RetryConfig
    breaker: CircuitBreaker
    in_flight: InFlight


def effective(config: Config, model: PoolModel) -> tuple[TimeoutConfig, RetryConfig,
                                                         BreakerConfig, int]:
    """A model's settings: gateway defaults < provider overrides < the model's own."""
    rel = config.reliability
    prov = rel.providers.get(model.provider)
    timeouts = merged(rel.timeouts, prov and prov.timeouts, model.timeouts)
    retries = merged(rel.retries, prov and prov.retries, model.retries)
    breaker = merged(rel.breaker, prov and prov.breaker, model.breaker)
    limit = model.max_in_flight or (prov and prov.max_in_flight) or rel.max_in_flight
    return timeouts, retries, breaker, limit


def build_guards(config: Config, models: Iterable[PoolModel], store: StateStore,
                 on_change: Callable[[str, str], None] | None = None) -> dict[str, ModelGuard]:
    """A guard per model. Breakers keep their state in ``store`` (shared by replicas when it
    is Redis, so wall-clock time), in-flight counts in this process (the limits are its own)."""
    guards = {}
    counts = LocalStore()
    for model in models:
        timeouts, retries, breaker, limit = effective(config, model)
        guards[model.name] = ModelGuard(
            timeouts, retries,
            CircuitBreaker(model.name, breaker, on_change, clock=time.time, store=store),
            InFlight(limit, "model:" + model.name, counts))
    return guards
