"""Walk the plan: call each model carefully (limits, breaker, retries), fall back in order.

A plan is a ranked list of models (the routing decision, with pinned fallback chains
already spliced in); the executor tries them in order. Per model: skip it if its breaker is
open or it has no free in-flight slot; else call it, retrying transient failures
(connection errors, 408, 429, 5xx) with backoff; a model that still fails moves the request
to the next one. An upstream that says the request itself is wrong (400/413/422) goes back
to the client, since the next model would say the same. For streams, "answering" means the
first chunk: once bytes reached the client, there is no going back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from switchman.gateway.context import Decision, Outcome, RequestContext
from switchman.gateway.errors import GatewayError
from switchman.gateway.execute.budget_gate import BudgetGate, BudgetRefusal
from switchman.gateway.execute.guards import ModelGuard, backoff_delay
from switchman.gateway.execute.providers.base import Provider, UpstreamError
from switchman.gateway.record.metrics import GatewayMetrics
from switchman.gateway.schema import ChatRequest
from switchman.pool import Model


class _Skipped(Exception):
    """A model passed over without calling it (breaker open, no in-flight slot)."""

    def __init__(self, kind: str, message: str, retry_after: float,
                 refusal: BudgetRefusal | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.retry_after = kind, message, retry_after
        self.refusal = refusal


class _PlanExhausted(Exception):
    """Every candidate was skipped or failed (the caller turns it into the client's error)."""

    def __init__(self, tried: list[str], errors: list[str], skipped: list[_Skipped],
                 failed: bool) -> None:
        super().__init__("plan exhausted")
        self.tried, self.errors, self.skipped, self.failed = tried, errors, skipped, failed


class Executor:
    def __init__(self, models: Mapping[str, Model], providers: Mapping[str, Provider],
                 metrics: GatewayMetrics, guards: Mapping[str, ModelGuard],
                 budgets: BudgetGate | None = None) -> None:
        self.models = models
        self.providers = providers
        self.metrics = metrics
        self.guards = guards
        self.budgets = budgets

    async def _attempt(self, model: Model, req: ChatRequest) -> tuple[Any, Any]:
        """One call; for a stream, up to its first chunk (failures before it are clean)."""
        provider = self.providers[model.provider]
        if not req.stream:
            return await provider.complete(model, req.body), None
        chunks = provider.stream(model, req.body).__aiter__()
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = None
        except BaseException:
            await chunks.aclose()  # type: ignore[attr-defined]
            raise
        return first, chunks

    async def _call(self, model: Model, req: ChatRequest, errors: list[str]) -> tuple[Any, Any]:
        """Call one model with its retry policy; the breaker hears every attempt."""
        guard = self.guards[model.name]
        admission = guard.breaker.admit()
        if not admission.allowed:
            raise _Skipped("circuit_open", f"circuit open for {admission.retry_after:.0f}s more",
                           admission.retry_after)
        probe = admission.probe
        policy = guard.retries
        try:
            for attempt in range(policy.attempts):
                try:
                    result = await self._attempt(model, req)
                except UpstreamError as err:
                    self.metrics.upstream_errors.labels(model.name, err.label).inc()
                    # A request the model refused (400/422) says nothing about its health.
                    guard.breaker.record(not err.retryable, probe)
                    probe = False
                    delay = None
                    if err.transient and attempt + 1 < policy.attempts \
                            and guard.breaker.state == "closed":
                        delay = backoff_delay(policy, attempt, err.retry_after)
                    if delay is None:
                        raise
                    errors.append(f"{model.name}: {err.label}: {err.message} "
                                  f"(attempt {attempt + 1}, retried after {delay:.2f}s)")
                    self.metrics.retries.labels(model.name, err.label).inc()
                    await asyncio.sleep(delay)
                    continue
                guard.breaker.record(True, probe)
                probe = False
                return result
            raise AssertionError("unreachable: the last attempt raises or returns")
        finally:
            guard.breaker.release(probe)  # a probe cut short (cancelled) frees the slot

    def stream_failed(self, name: str) -> None:
        """A stream broke after its first chunk: a failure of the model for its breaker."""
        self.guards[name].breaker.record(False)

    async def run(self, ctx: RequestContext) -> Outcome:
        """Walk ``ctx``'s plan; the first model to answer gives the outcome.

        Each call first holds its worst-case cost against the budgets covering the request
        (``ctx.budgets``); when none of the plan fits and every exhausted budget says
        ``on_exhausted: cheapest``, the plan's cheapest model answers anyway, unreserved,
        and its cost is charged when the request settles (``ctx.charge_budgets``).
        """
        req, decision = ctx.req, ctx.decision
        assert req is not None and decision is not None, "run() needs a routed request"
        try:
            return await self._walk(ctx, decision.plan, ctx.budgets)
        except _PlanExhausted as end:
            refused = [s.refusal for s in end.skipped if s.refusal is not None]
            cheapest_ok = refused and len(refused) == len(end.skipped) and all(
                b.on_exhausted == "cheapest" for r in refused for b in r.budgets)
            if not cheapest_ok:
                raise self._exhausted(decision, end.tried, end.errors, end.skipped,
                                      end.failed) from None
            cheapest = min(decision.plan, key=lambda n: decision.estimated_cost.get(n, 0.0))
            ctx.charge_budgets = ctx.budgets
            try:
                outcome = await self._walk(ctx, [cheapest], [])
            except _PlanExhausted as again:
                raise self._exhausted(decision, again.tried, end.errors + again.errors,
                                      again.skipped, again.failed) from None
            outcome.reason = f"cheapest: budget spent ({refused[0].budgets[0].name})"
            return outcome

    async def _walk(self, ctx: RequestContext, candidates: list[str],
                    budgets: list[Any]) -> Outcome:
        req = ctx.req
        assert req is not None and ctx.decision is not None
        tried: list[str] = []
        errors: list[str] = []
        skipped: list[_Skipped] = []
        failed = False
        reason = ctx.decision.reason
        start = time.perf_counter()
        for i, name in enumerate(candidates):
            model = self.models[name]
            slot = self.guards[name].in_flight
            t0 = time.perf_counter()
            held: list[Any] = []
            try:
                if not slot.try_acquire():
                    raise _Skipped("overloaded", f"{slot.limit} calls in flight", 1.0)
                try:
                    held = self._hold(budgets, model, req)
                    tried.append(name)
                    result, chunks = await self._call(model, req, errors)
                except BaseException:
                    slot.release()
                    if self.budgets is not None:
                        self.budgets.release(held)
                    raise
            except _Skipped as skip:
                if skip.kind == "circuit_open" and tried and tried[-1] == name:
                    tried.pop()  # not called after all
                skipped.append(skip)
                errors.append(f"{name}: {skip.kind}: {skip.message}")
                reason = f"fallback after {skip.kind} from {name}"
                if skip.kind == "circuit_open":
                    self.metrics.errors.labels("circuit_open_skip").inc()
                continue
            except UpstreamError as err:
                errors.append(f"{name}: {err.label}: {err.message}")
                if not err.retryable:
                    raise GatewayError(
                        err.status or 400, f"upstream model {name} rejected the request "
                        f"({err.label}): {err.message}", code="upstream_rejected",
                        headers={"x-switchman-tried": ",".join(tried)}, tried=tried,
                        errors=errors) from None
                failed = True
                if i + 1 < len(candidates):
                    self.metrics.fallbacks.labels(name, candidates[i + 1], err.label).inc()
                reason = f"fallback after {err.label} from {name}"
                continue
            elapsed = time.perf_counter() - t0
            self.metrics.child(self.metrics.upstream_latency, name).observe(elapsed)
            ctx.reservations = held
            # Failed attempts count as upstream time too: they are not switchman's overhead.
            outcome = Outcome(model, reason, tried, errors, start, time.perf_counter() - start)
            if chunks is None:
                slot.release()
                outcome.response = result
            else:
                outcome.first_chunk, outcome.chunks = result, chunks
                outcome.release = slot.release
            return outcome
        raise _PlanExhausted(tried, errors, skipped, failed)

    def _hold(self, budgets: list[Any], model: Model, req: ChatRequest) -> list[Any]:
        """The call's budget reservations; a refusal passes the model over."""
        if self.budgets is None or not budgets:
            return []
        try:
            return self.budgets.hold(budgets, model, req)
        except BudgetRefusal as refusal:
            raise _Skipped(refusal.kind, refusal.message, refusal.retry_after,
                           refusal) from None

    @staticmethod
    def _exhausted(decision: Decision, tried: list[str], errors: list[str],
                   skipped: list[_Skipped], failed: bool) -> GatewayError:
        """The error for a plan with no model left, naming what failed for each."""
        if not decision.plan:
            return GatewayError(400, "the routing plan is empty", code="no_eligible_model")
        headers = {"x-switchman-tried": ",".join(tried)}
        detail = "; ".join(errors)
        if failed or not skipped:
            return GatewayError(502, "no model could answer: " + detail, type="upstream_error",
                                code="upstream_failed", headers=headers, tried=tried,
                                errors=errors)
        wait = max(1, round(min(s.retry_after for s in skipped)))
        headers["retry-after"] = str(wait)
        if all(s.refusal is not None for s in skipped):
            kind = skipped[0].kind
            return GatewayError(
                503 if kind == "budget_store_unavailable" else 429,
                "no model of the plan fits the budget: " + detail,
                type="rate_limit_error" if kind == "budget_exceeded" else "api_error",
                code=kind, headers=headers, tried=tried, errors=errors)
        if all(s.kind == "overloaded" for s in skipped):
            return GatewayError(429, "every model of the plan is at its in-flight limit: "
                                + detail, type="rate_limit_error", code="overloaded",
                                headers=headers, tried=tried, errors=errors)
        return GatewayError(503, "no model of the plan is available: " + detail,
                            type="upstream_error", code="circuit_open", headers=headers,
                            tried=tried, errors=errors)
