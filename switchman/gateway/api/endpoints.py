"""The gateway's other routes: models, feedback, health, metrics, status.

Each answers from the running :class:`~switchman.gateway.service.Gateway`'s services, with
errors in OpenAI's shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from switchman.gateway.api.http import read_json
from switchman.gateway.errors import GatewayError, bad_request, clip, error_response
from switchman.gateway.record.metrics import CONTENT_TYPE
from switchman.gateway.schema import MAX_ID_CHARS, check_shape, echo
from switchman.gateway.service import Gateway


def _model_entries(gw: Gateway) -> list[dict]:
    created = int(gw.started_at)
    data = [{"id": name, "object": "model", "created": created, "owned_by": "switchman",
             "switchman": {"type": "router", "cost_weight": entry.cost_weight,
                           "models": list(entry.scorer.models)}}
            for name, entry in gw.routing.routers.items()]
    for model in gw.models.values():
        data.append({"id": model.name, "object": "model", "created": created,
                     "owned_by": model.provider,
                     "switchman": {"type": "model", "context_window": model.context_window,
                                   "capabilities": model.capabilities,
                                   "input_per_mtok": model.input_per_mtok,
                                   "output_per_mtok": model.output_per_mtok,
                                   "available": model.name not in gw.routing.unavailable}})
    return data


async def _authenticated(request: Request, answer: Callable[[Gateway], Any]) -> Response:
    """``answer(gateway)`` as JSON once the caller's key is checked; errors in OpenAI shape."""
    gw: Gateway = request.app.state.gateway
    try:
        gw.authenticate(request.headers.get("authorization"))
        return JSONResponse(answer(gw))
    except GatewayError as err:
        return error_response(err)


async def list_models(request: Request) -> Response:
    return await _authenticated(
        request, lambda gw: {"object": "list", "data": _model_entries(gw)})


async def get_model(request: Request) -> Response:
    name = request.path_params["name"]

    def entry(gw: Gateway) -> dict:
        for found in _model_entries(gw):
            if found["id"] == name:
                return found
        raise GatewayError(404, f"model {echo(name)} is neither a pool model nor a router",
                           param="model", code="model_not_found")

    return await _authenticated(request, entry)


def _feedback_score(body: dict) -> tuple[float, str]:
    score, thumbs = body.get("score"), body.get("thumbs")
    if (score is None) == (thumbs is None):
        raise bad_request("give exactly one of score (a number in [0, 1]) or thumbs "
                          "('up' or 'down')")
    if thumbs is not None:
        if thumbs not in ("up", "down"):
            raise bad_request("thumbs must be 'up' or 'down'", "thumbs")
        return (1.0 if thumbs == "up" else 0.0), thumbs
    # Compared before float(): exact for any int (a 400-digit one would overflow float),
    # and false for NaN and the infinities.
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        raise bad_request(f"score must be a number in [0, 1], got {echo(score)}", "score")
    return float(score), "score"


async def feedback(request: Request) -> Response:
    """An outcome for an earlier response, stored for learning (issue: online updates)."""
    gw: Gateway = request.app.state.gateway
    try:
        key = gw.authenticate(request.headers.get("authorization"))
        body = await read_json(request, 64 * 1024)
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        check_shape(body)  # lone surrogates in id or comment included
        response_id = body.get("id", body.get("response_id"))
        if not isinstance(response_id, str) or not 0 < len(response_id) <= MAX_ID_CHARS:
            raise bad_request("id (the response id to rate) is required: a string of 1 to "
                              f"{MAX_ID_CHARS} characters", "id")
        score, label = _feedback_score(body)
        comment = body.get("comment")
        if comment is not None and (not isinstance(comment, str) or len(comment) > 4000):
            raise bad_request("comment must be a string of at most 4000 characters", "comment")
        owner = await asyncio.to_thread(gw.log.owner, response_id)
        # Someone else's response reads as unknown: ids must not be probed across keys.
        if owner is None or not (owner == (key or "") or gw.is_admin(key)):
            raise GatewayError(404, f"no response with id {clip(repr(response_id), 200)} "
                               "made with this API key", param="id",
                               code="response_not_found")
    except GatewayError as err:
        gw.metrics.errors.labels(err.kind).inc()
        return error_response(err)
    gw.log.record_feedback(response_id, score, label, comment, key)
    learned = gw.learn_from_feedback(response_id, score)
    gw.metrics.feedback.labels(label).inc()
    return JSONResponse({"object": "feedback", "id": response_id, "score": score,
                         "recorded": True, "learned": learned})


async def healthz(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    local = {s.config.name: s.alive() for s in gw.local_servers}
    writer = gw.log.alive()
    ok = all(local.values()) and writer
    return JSONResponse({"status": "ok" if ok else "degraded", "models": len(gw.models),
                         "routers": list(gw.routing.routers), "local": local,
                         "decision_log": "running" if writer else "dead"},
                        status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    gw.refresh_gauges()
    return Response(gw.metrics.render(), media_type=CONTENT_TYPE)


async def status(request: Request) -> Response:
    """Breaker state and load per model (what ``switchman status`` prints)."""
    return await _authenticated(request, lambda gw: gw.status())
