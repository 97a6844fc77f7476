"""OpenAI-style errors: every failure a client sees has the same body shape and a 4xx/5xx.

Clients written for OpenAI parse ``{"error": {"message", "type", "param", "code"}}``; keeping
that shape for switchman's own errors means their error handling works unchanged.
"""

from __future__ import annotations

import json

from starlette.responses import Response

#: Longest client string stored in a decision-log column (the prompt aside: it is stored
#: only when configured, and bounded by ``server.max_body_bytes``).
MAX_STORED_CHARS = 2000


def clip(text: str, limit: int = MAX_STORED_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


class GatewayError(Exception):
    """An error to return to the client as is (its message must never contain secrets)."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None, tried: list[str] | None = None,
                 errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}
        self.tried = tried or []  # models called before giving up (for the decision log)
        self.errors = errors or [message]

    @property
    def kind(self) -> str:
        """Short label for metrics and the decision log."""
        return self.code or self.type


def bad_request(message: str, param: str | None = None,
                code: str = "invalid_request") -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def error_body(err: GatewayError) -> bytes:
    return json.dumps({"error": {"message": err.message, "type": err.type,
                                 "param": err.param, "code": err.code}}).encode()


def error_response(err: GatewayError, headers: dict[str, str] | None = None) -> Response:
    merged = {**err.headers, **(headers or {})}
    return Response(error_body(err), status_code=err.status, headers=merged,
                    media_type="application/json")
