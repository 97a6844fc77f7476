"""Per-model protection the executor consults before each call: in-flight limits, retry
delays, and the breakers, built once from the configuration.

An in-flight limit is a counter, not a semaphore: a request that finds a model full moves
on (to the next model of its plan, or to a 429) instead of waiting in an unbounded queue,
so memory stays flat and latency stays honest under overload.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from switchman.config import Config, PoolModel
from switchman.gateway.breaker import CircuitBreaker
from switchman.gateway.reliability_config import (
    BreakerConfig,
    RetryConfig,
    TimeoutConfig,
    merged,
)
from switchman.pool import Model


class InFlight:
    """How many calls are open against one upstream model (or the whole gateway)."""

    __slots__ = ("active", "limit", "rejected")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.rejected = 0

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


def effective(config: Config, model: Model) -> tuple[TimeoutConfig, RetryConfig,
                                                     BreakerConfig, int]:
    """A model's settings: gateway defaults < provider overrides < the model's own."""
    rel = config.reliability
    prov = rel.providers.get(model.provider)
    own = model if isinstance(model, PoolModel) else None
    timeouts = merged(rel.timeouts, prov and prov.timeouts, own and own.timeouts)
    retries = merged(rel.retries, prov and prov.retries, own and own.retries)
    breaker = merged(rel.breaker, prov and prov.breaker, own and own.breaker)
    limit = (own and own.max_in_flight) or (prov and prov.max_in_flight) or rel.max_in_flight
    return timeouts, retries, breaker, limit


def build_guards(config: Config, models: Iterable[Model],
                 on_change: Callable[[str, str], None] | None = None) -> dict[str, ModelGuard]:
    guards = {}
    for model in models:
        timeouts, retries, breaker, limit = effective(config, model)
        guards[model.name] = ModelGuard(timeouts, retries,
                                        CircuitBreaker(model.name, breaker, on_change),
                                        InFlight(limit))
    return guards
