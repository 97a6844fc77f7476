"""POST /v1/chat/completions: parse, route, execute, answer, account, log.

The response body is the upstream's, with ``id`` set to switchman's request id (the id
feedback refers to) and ``model`` set to the pool model that answered. Decision headers
tell the caller what happened without parsing anything.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from switchman.gateway.accounting import cost_of, usage_of
from switchman.gateway.errors import GatewayError, error_response
from switchman.gateway.executor import Outcome
from switchman.gateway.http import read_json
from switchman.gateway.reporting import account, decision_headers, record_for
from switchman.gateway.routing import Decision, estimate_inline
from switchman.gateway.schema import ChatRequest, parse_chat_request
from switchman.gateway.service import Gateway
from switchman.gateway.sticky import ConversationKey, conversation_key
from switchman.gateway.streaming import stream_response


def new_request_id() -> str:
    return "chatcmpl-sw" + os.urandom(12).hex()


def _overloaded(gw: Gateway, request_id: str, t0: float) -> Response:
    """Shed load before reading the body: a 429 now beats an unbounded queue."""
    gw.metrics.rejected.inc()
    err = GatewayError(429, f"switchman is at its limit of {gw.in_flight.limit} requests in "
                       "flight; retry shortly", type="rate_limit_error", code="overloaded",
                       headers={"retry-after": str(gw.config.server.overload_retry_after_s)})
    gw.metrics.errors.labels(err.kind).inc()
    gw.metrics.requests.labels("none", "none", "429").inc()
    record = record_for(gw, request_id, t0, None, None, None, 429)
    record.error_kind, record.errors = err.kind, err.errors
    gw.log.record(record)
    return error_response(err, {"x-switchman-request-id": request_id})


async def chat_completions(request: Request) -> Response:
    """Admit (or shed) the request; the in-flight slot lives as long as its answer."""
    gw: Gateway = request.app.state.gateway
    t0 = time.perf_counter()
    request_id = new_request_id()
    if not gw.in_flight.try_acquire():
        return _overloaded(gw, request_id, t0)
    handed_over = False
    try:
        response, handed_over = await _handle(gw, request, t0, request_id)
        return response
    finally:
        if not handed_over:
            gw.in_flight.release()


async def _handle(gw: Gateway, request: Request, t0: float,
                  request_id: str) -> tuple[Response, bool]:
    """The response, and whether it took over the gateway slot (a stream releases it)."""
    req: ChatRequest | None = None
    decision: Decision | None = None
    key: str | None = None
    try:
        key = gw.authenticate(request.headers.get("authorization"))
        body = await read_json(request, gw.config.server.max_body_bytes)
        req = parse_chat_request(body, request.headers, gw.routing.known_names)
        conv = conversation_key(req.messages, req.prefs.conversation_id)
        entry = gw.routing.routers.get(req.model)
        estimates = None
        if entry is not None and not estimate_inline(entry, req.text):
            # a long prompt: keep the event loop free meanwhile (``decide`` scores the others)
            estimates = await asyncio.to_thread(entry.scorer.estimate, [req.text])
        decision = gw.routing.decide(req, gw.memory.get(conv.lookup), estimates)
        outcome = await gw.executor.run(req, decision)
    except GatewayError as err:
        gw.metrics.errors.labels(err.kind).inc()
        # Label values must come from configuration, never from what a client typed.
        router = decision.router if decision else None
        if router is None and req is not None and req.model in gw.routing.routers:
            router = req.model
        gw.metrics.requests.labels(router or "none", "none", str(err.status)).inc()
        if err.status != 401:
            record = record_for(gw, request_id, t0, req, decision, key, err.status)
            record.error_kind, record.tried, record.errors = err.kind, err.tried, err.errors
            gw.log.record(record)
        return error_response(err, {"x-switchman-request-id": request_id}), False
    router = decision.router or "none"
    gw.metrics.overhead.labels(router).observe(outcome.upstream_start - t0)
    gw.metrics.decisions.labels(router, outcome.model.name, decision.reason_kind).inc()
    if req.stream:
        return stream_response(gw, request_id, t0, req, decision, outcome, conv, key,
                               gw.in_flight.release), True
    return _complete(gw, request_id, t0, req, decision, outcome, conv, key), False


def _complete(gw: Gateway, request_id: str, t0: float, req: ChatRequest, decision: Decision,
              outcome: Outcome, conv: ConversationKey, key: str | None) -> Response:
    data: dict[str, Any] = outcome.response or {}
    model = outcome.model
    upstream_id = data.get("id")
    data["id"] = request_id
    data["model"] = model.name
    choices = data.get("choices") or [{}]
    first = choices[0] if isinstance(choices[0], dict) else {}
    message = first.get("message") if isinstance(first.get("message"), dict) else {}
    content = message.get("content")
    chars = len(content) if isinstance(content, str) else 0
    for call in message.get("tool_calls") or []:
        chars += len(str((call.get("function") or {}).get("arguments", "")))
    usage = usage_of(data.get("usage"), req.prompt_tokens, chars)
    if usage.source != "usage":
        data["usage"] = {"prompt_tokens": usage.prompt_tokens,
                         "completion_tokens": usage.completion_tokens,
                         "total_tokens": usage.prompt_tokens + usage.completion_tokens}
    cost = cost_of(model, usage)
    payload = json.dumps(data).encode()
    gw.memory.put(conv.after({"role": "assistant", "content": content,
                              "tool_calls": message.get("tool_calls")}), model.name)
    latency = time.perf_counter() - t0
    account(gw, decision.router, model.name, usage.prompt_tokens, usage.completion_tokens,
            cost, 200, latency)
    record = record_for(gw, request_id, t0, req, decision, key, 200)
    record.model, record.tried, record.errors = model.name, outcome.tried, outcome.errors
    record.reason = outcome.reason
    record.overhead_ms = (latency - outcome.upstream_seconds) * 1000
    record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    record.cost_usd, record.cost_source, record.upstream_id = cost, usage.source, upstream_id
    gw.log.record(record)
    return Response(payload, headers=decision_headers(request_id, decision, outcome, cost),
                    media_type="application/json")
