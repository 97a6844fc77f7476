"""Configuration sections for calling upstreams reliably: timeouts, retries, breaker, limits.

They live apart from :mod:`switchman.config` to keep that module small; the same classes
serve as gateway-wide defaults (``reliability:``), per-provider overrides
(``reliability.providers.openai``) and per-model overrides (``models[i].timeouts``). An
override only changes the keys written in it (:func:`merged` uses pydantic's set fields).
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimeoutConfig(_Section):
    """How long one upstream call may take, by phase.

    ``first_byte_s`` bounds the wait for the response headers and, for streams, for the first
    chunk and every gap between chunks (a stall that long is a hang). ``total_s`` bounds the
    whole call, stream included.
    """

    connect_s: float = Field(5.0, gt=0, description="TCP (and TLS) connection set-up.")
    first_byte_s: float = Field(120.0, gt=0, description="Until the upstream starts answering.")
    total_s: float = Field(600.0, gt=0, description="The whole call, stream included.")


class RetryConfig(_Section):
    """Retries of one model before falling back to the next one of the plan.

    Only transient failures are retried (connection errors, 408, 429, 500, 502, 503, 504);
    a 400/401/403/404/422 never is. The delay is exponential with full jitter; a 429's
    ``Retry-After`` is honoured up to ``retry_after_max_s`` (beyond it, fall back at once).
    """

    attempts: int = Field(2, ge=1, le=10, description="Calls per model, the first included.")
    backoff_base_s: float = Field(0.1, ge=0, description="Delay scale before the 2nd call.")
    backoff_max_s: float = Field(2.0, ge=0, description="Cap of the exponential delay.")
    retry_after_max_s: float = Field(5.0, ge=0, description="Longest Retry-After honoured.")


class BreakerConfig(_Section):
    """When a model's recent failures take it out of plans, and for how long."""

    enabled: bool = True
    window_s: float = Field(30.0, gt=0, description="How far back failures are counted.")
    min_calls: int = Field(10, ge=1, description="No verdict on fewer calls in the window.")
    failure_rate: float = Field(0.5, gt=0, le=1, description="Open at this share of failures.")
    cooldown_s: float = Field(30.0, gt=0, description="Open this long, then one probe call.")


class ProviderReliability(_Section):
    """Per-provider-kind overrides (``reliability.providers.anthropic``)."""

    timeouts: TimeoutConfig | None = None
    retries: RetryConfig | None = None
    breaker: BreakerConfig | None = None
    max_in_flight: int | None = Field(None, gt=0)


class ReliabilityConfig(_Section):
    """Gateway-wide defaults for every model."""

    timeouts: TimeoutConfig = Field(default_factory=TimeoutConfig)
    retries: RetryConfig = Field(default_factory=RetryConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    max_in_flight: int = Field(
        256, gt=0, description="Concurrent calls per upstream model; beyond it the request "
        "falls back, or gets a 429 when no model of its plan has room.")
    providers: dict[str, ProviderReliability] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered_timeouts(self) -> ReliabilityConfig:
        t = self.timeouts
        if t.first_byte_s > t.total_s:
            raise ValueError("reliability.timeouts.first_byte_s: larger than total_s")
        return self


S = TypeVar("S", bound=BaseModel)


def merged(base: S, *overrides: S | None) -> S:
    """``base`` with the keys each override explicitly sets, later overrides winning."""
    result = base
    for override in overrides:
        if override is not None:
            result = result.model_copy(update=override.model_dump(exclude_unset=True))
    return result
