"""Walk the plan: call the first model, fall back to the next when it is unavailable.

A plan is a ranked list of models (the routing decision); the executor tries them in
order. An upstream that fails before answering (connection error, timeout, 429, 5xx, or a
rejected key) moves the request to the next model; an upstream that says the request itself
is wrong (400/413/422) does not, since the next model would say the same. For streams,
"answering" means the first chunk: once bytes reached the client, there is no going back.

Issue 4 (retries with backoff, circuit breaking, hedging) slots in at ``_attempt`` (retries
of one model) and ``_candidates`` (skipping models whose breaker is open).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from switchman.gateway.errors import GatewayError
from switchman.gateway.metrics import GatewayMetrics
from switchman.gateway.providers.base import Provider, UpstreamError
from switchman.gateway.routing import Decision
from switchman.gateway.schema import ChatRequest
from switchman.pool import Model


@dataclass(slots=True)
class Outcome:
    """The model that answered, its answer (or open stream), and what was tried before."""

    model: Model
    reason: str
    tried: list[str]
    errors: list[str]
    upstream_start: float
    upstream_seconds: float
    response: dict[str, Any] | None = None
    first_chunk: dict[str, Any] | None = None
    chunks: AsyncIterator[dict[str, Any]] | None = None


class Executor:
    def __init__(self, models: Mapping[str, Model], providers: Mapping[str, Provider],
                 metrics: GatewayMetrics) -> None:
        self.models = models
        self.providers = providers
        self.metrics = metrics

    def _candidates(self, decision: Decision) -> Iterator[str]:
        yield from decision.plan

    async def _attempt(self, model: Model, req: ChatRequest) -> tuple[Any, Any]:
        provider = self.providers[model.provider]
        if not req.stream:
            return await provider.complete(model, req.body), None
        chunks = provider.stream(model, req.body).__aiter__()
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = None
        return first, chunks

    async def run(self, req: ChatRequest, decision: Decision) -> Outcome:
        tried: list[str] = []
        errors: list[str] = []
        reason = decision.reason
        start = time.perf_counter()
        candidates = list(self._candidates(decision))
        for i, name in enumerate(candidates):
            model = self.models[name]
            tried.append(name)
            t0 = time.perf_counter()
            try:
                result, chunks = await self._attempt(model, req)
            except UpstreamError as err:
                self.metrics.upstream_errors.labels(name, err.label).inc()
                errors.append(f"{name}: {err.label}: {err.message}")
                if not err.retryable:
                    raise GatewayError(
                        err.status or 400, f"upstream model {name} rejected the request "
                        f"({err.label}): {err.message}", code="upstream_rejected",
                        headers={"x-switchman-tried": ",".join(tried)}, tried=tried,
                        errors=errors) from None
                if i + 1 < len(candidates):
                    self.metrics.fallbacks.labels(name, candidates[i + 1], err.label).inc()
                    reason = f"fallback after {err.label} from {name}"
                    continue
                raise GatewayError(
                    502, "no model could answer: " + "; ".join(errors), type="upstream_error",
                    code="upstream_failed", headers={"x-switchman-tried": ",".join(tried)},
                    tried=tried, errors=errors) from None
            elapsed = time.perf_counter() - t0
            self.metrics.upstream_latency.labels(name).observe(elapsed)
            # Failed attempts count as upstream time too: they are not switchman's overhead.
            outcome = Outcome(model, reason, tried, errors, start, time.perf_counter() - start)
            if chunks is None:
                outcome.response = result
            else:
                outcome.first_chunk, outcome.chunks = result, chunks
            return outcome
        raise GatewayError(400, "the routing plan is empty", code="no_eligible_model")
