"""What every answered or failed request leaves behind: headers, metrics, a log row."""

from __future__ import annotations

import time

from switchman.gateway.decision_log import DecisionRecord
from switchman.gateway.executor import Outcome
from switchman.gateway.routing import Decision
from switchman.gateway.schema import ChatRequest
from switchman.gateway.service import Gateway


def decision_headers(request_id: str, decision: Decision, outcome: Outcome,
                     cost: float) -> dict[str, str]:
    return {"x-switchman-request-id": request_id,
            "x-switchman-model": outcome.model.name,
            "x-switchman-router": decision.router or "none",
            "x-switchman-reason": outcome.reason,
            "x-switchman-cost-usd": f"{cost:.8f}",
            "x-switchman-tried": ",".join(outcome.tried)}


def record_for(gw: Gateway, request_id: str, t0: float, req: ChatRequest | None,
               decision: Decision | None, key: str | None, status: int) -> DecisionRecord:
    """A log row with what is known so far; callers fill in the outcome."""
    return DecisionRecord(
        request_id=request_id, ts=time.time(), router=decision.router if decision else None,
        requested_model=req.model if req else "", model=None,
        plan=decision.plan if decision else [], tried=[], errors=[],
        reason=decision.reason if decision else "", status=status,
        stream=bool(req and req.stream), latency_ms=(time.perf_counter() - t0) * 1000,
        api_key_id=key, conversation=req.prefs.conversation_id if req else None,
        prompt=req.text if req is not None and gw.config.log.store_prompts else None)


def account(gw: Gateway, router: str | None, model: str, prompt_tokens: int,
            completion_tokens: int, cost: float, status: int, latency: float) -> None:
    """Update request, token, dollar and latency metrics for one answered request."""
    m, r = gw.metrics, router or "none"
    m.requests.labels(r, model, str(status)).inc()
    m.latency.labels(r, model).observe(latency)
    m.tokens.labels(model, r, "prompt").inc(prompt_tokens)
    m.tokens.labels(model, r, "completion").inc(completion_tokens)
    m.cost.labels(model, r).inc(cost)
