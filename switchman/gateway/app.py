"""The ASGI application: routes, lifespan, and OpenAI-style errors for everything.

Plain Starlette (no FastAPI): no per-request dependency injection or response-model
validation, which keeps the gateway's own latency small. Chat completions, nearly all of a
gateway's traffic, skip even Starlette's middleware and route matching (:class:`ChatFirst`):
their handler catches every error itself. ``create_app`` is the only entry; nothing happens
until the ASGI server runs the lifespan.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from switchman.config import Config
from switchman.gateway.api.chat import chat_completions
from switchman.gateway.api.endpoints import (
    feedback,
    get_model,
    healthz,
    list_models,
    metrics,
    status,
)
from switchman.gateway.api.openapi import openapi_json
from switchman.gateway.errors import GatewayError, error_response
from switchman.gateway.route.scoring import Scorer
from switchman.gateway.service import Gateway

logger = logging.getLogger(__name__)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(GatewayError(exc.status_code, str(exc.detail), code=code))


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    body = {"error": {"message": "internal error in switchman (see the gateway log)",
                      "type": "server_error", "param": None, "code": "internal_error"}}
    return Response(json.dumps(body), status_code=500, media_type="application/json")


#: Paths of the chat handler (OpenAI clients use either, by base URL).
_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})


class ChatFirst:
    """The Starlette app, with ``POST`` chat completions handed straight to their handler.

    Starlette's error middleware, exception middleware, route matching and request wrapper
    cost about a tenth of a pinned request's CPU; :func:`chat_completions` needs none of
    them (it answers every error, unexpected ones included, itself). Everything else, and
    a chat path with another method (a 405), goes through Starlette as before.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (scope["type"] == "http" and scope["path"] in _CHAT_PATHS
                and scope["method"] == "POST"):
            scope["app"] = self.app  # what Request.app (and so the handler's gateway) reads
            response = await chat_completions(Request(scope, receive, send))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(config: Config, scorers: Mapping[str, Scorer] | None = None) -> ChatFirst:
    """The gateway as an ASGI app; ``scorers`` overrides router names (tests, embedding)."""
    gateway = Gateway(config, scorers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await gateway.start()
            yield
        finally:
            await gateway.stop()

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{name:path}", get_model, methods=["GET"]),
        Route("/v1/feedback", feedback, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/status", status, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _unexpected})
    app.state.gateway = gateway
    return ChatFirst(app)
