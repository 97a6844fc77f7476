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
from switchman.state import StateStore


class InFlight:
    """How many calls are open against one upstream model (or the whole gateway), in this
    process: the limits are each replica's own, so the count is a plain integer the event
    loop alone touches (a locked store entry cost four lock round trips per request)."""

    __slots__ = ("active", "limit", "rejected")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.rejected = 0  # for /v1/status

    def try_acquire(self) -> bool:
        if self.active >= self.limit:
            self.rejected += 1
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active -= 1


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
    for model in models:
        timeouts, retries, breaker, limit = effective(config, model)
        guards[model.name] = ModelGuard(
            timeouts, retries,
            CircuitBreaker(model.name, breaker, on_change, clock=time.time, store=store),
            InFlight(limit))
    return guards
