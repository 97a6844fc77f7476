"""Anthropic's native Messages API behind the OpenAI-shaped provider interface.

Translation lives in :mod:`anthropic_format`; this module only does HTTP, SSE framing and
error mapping (Anthropic's 529 "overloaded" is a 5xx, so the executor falls back on it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from switchman.gateway.execute.providers.anthropic_format import (
    ANTHROPIC_VERSION,
    StreamTranslator,
    TranslationError,
    from_anthropic,
    to_anthropic,
)
from switchman.gateway.execute.providers.base import UpstreamError, redact
from switchman.gateway.execute.providers.http_provider import HTTPProvider
from switchman.pool import Model

DEFAULT_ENDPOINT = "https://api.anthropic.com/v1"


class AnthropicProvider(HTTPProvider):
    """Calls ``{endpoint}/messages`` with ``x-api-key`` through the shared transport."""

    path = "/messages"
    default_endpoint = DEFAULT_ENDPOINT
    sender = "Anthropic"

    def headers(self, key: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if key:
            headers["x-api-key"] = key
        return headers

    def payload(self, model: Model, body: dict[str, Any], stream: bool) -> bytes:
        try:
            payload = to_anthropic({**body, "stream": stream}, model.upstream_model or model.name)
        except (TranslationError, KeyError, TypeError, AttributeError) as exc:
            raise UpstreamError(model.name, 400, "translation",
                                f"cannot translate the request for Anthropic: {exc}") from None
        return json.dumps(payload).encode()

    async def complete(self, model: Model, body: dict[str, Any]) -> dict[str, Any]:
        data = await self._post(model, body)
        try:
            return from_anthropic(json.loads(data), model.name)
        except (ValueError, AttributeError, TypeError):
            raise UpstreamError(model.name, 502, "bad_response",
                                "Anthropic returned a response that is not a Message") from None

    async def stream(self, model: Model, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        name = model.name
        events = self._events(model, body)
        translator = StreamTranslator(name)
        try:
            async for data in events:
                event = self._event(name, data)
                if event.get("type") == "error":
                    err = event.get("error") or {}
                    raise UpstreamError(name, 502, str(err.get("type", "stream_error")),
                                        redact(str(err.get("message", "")), self._secrets))
                for chunk in translator.feed(event):
                    yield chunk
                if event.get("type") == "message_stop":
                    return
            raise UpstreamError(name, None, "truncated",
                                "Anthropic stream ended without message_stop")
        finally:
            await events.aclose()
