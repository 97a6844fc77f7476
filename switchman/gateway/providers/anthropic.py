"""Anthropic's native Messages API behind the OpenAI-shaped provider interface.

Translation lives in :mod:`anthropic_format`; this module only does HTTP, SSE framing and
error mapping (Anthropic's 529 "overloaded" is a 5xx, so the executor falls back on it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from switchman.gateway.providers.anthropic_format import (
    ANTHROPIC_VERSION,
    StreamTranslator,
    TranslationError,
    from_anthropic,
    to_anthropic,
)
from switchman.gateway.providers.base import UpstreamError, api_key, error_message, redact
from switchman.gateway.providers.transport import Reply, Transport
from switchman.gateway.reliability_config import TimeoutConfig
from switchman.pool import Model

DEFAULT_ENDPOINT = "https://api.anthropic.com/v1"


class AnthropicProvider:
    """Calls ``{endpoint}/messages`` with ``x-api-key`` through the shared transport."""

    def __init__(self, transport: Transport, models: list[Model],
                 timeouts: dict[str, TimeoutConfig] | None = None) -> None:
        self._transport = transport
        self._headers: dict[str, dict[str, str]] = {}
        self._urls: dict[str, str] = {}
        self._timeouts: dict[str, TimeoutConfig] = {}
        self._secrets: list[str] = []
        for model in models:
            self.add_model(model, (timeouts or {}).get(model.name))

    def add_model(self, model: Model, timeouts: TimeoutConfig | None = None) -> None:
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        key = api_key(model)
        if key:
            headers["x-api-key"] = key
            self._secrets.append(key)
        self._headers[model.name] = headers
        self._urls[model.name] = f"{(model.endpoint or DEFAULT_ENDPOINT).rstrip('/')}/messages"
        self._timeouts[model.name] = timeouts or self._timeouts.get(model.name, TimeoutConfig())

    def _payload(self, model: Model, body: dict[str, Any], stream: bool) -> bytes:
        try:
            payload = to_anthropic({**body, "stream": stream}, model.upstream_model or model.name)
        except (TranslationError, KeyError, TypeError, AttributeError) as exc:
            raise UpstreamError(model.name, 400, "translation",
                                f"cannot translate the request for Anthropic: {exc}") from None
        return json.dumps(payload).encode()

    def _failure(self, model: Model, reply: Reply) -> UpstreamError:
        return UpstreamError(model.name, reply.status, f"http_{reply.status}",
                             redact(error_message(reply.status, reply.body), self._secrets),
                             reply.retry_after)

    async def complete(self, model: Model, body: dict[str, Any]) -> dict[str, Any]:
        name = model.name
        reply = await self._transport.post(name, self._urls[name],
                                           self._payload(model, body, False),
                                           self._headers[name], self._timeouts[name])
        if reply.status != 200:
            raise self._failure(model, reply)
        try:
            return from_anthropic(json.loads(reply.body), name)
        except (ValueError, AttributeError, TypeError):
            raise UpstreamError(name, 502, "bad_response",
                                "Anthropic returned a response that is not a Message") from None

    async def stream(self, model: Model, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        name = model.name
        lines = self._transport.stream_lines(name, self._urls[name],
                                             self._payload(model, body, True),
                                             self._headers[name], self._timeouts[name])
        translator = StreamTranslator(name)
        try:
            async for line in lines:
                if isinstance(line, Reply):
                    raise self._failure(model, line)
                if not line.startswith(b"data:"):
                    continue  # "event:" lines repeat the type that the data carries
                event = self._parse(name, line[5:])
                for chunk in translator.feed(event):
                    yield chunk
                if event.get("type") == "message_stop":
                    return
            raise UpstreamError(name, None, "truncated",
                                "Anthropic stream ended without message_stop")
        finally:
            await lines.aclose()

    def _parse(self, name: str, data: bytes) -> dict[str, Any]:
        try:
            event = json.loads(data)
        except ValueError:
            raise UpstreamError(name, 502, "bad_response",
                                "Anthropic sent an invalid stream event") from None
        if not isinstance(event, dict):
            raise UpstreamError(name, 502, "bad_response",
                                "Anthropic sent a stream event that is not an object")
        if event.get("type") == "error":
            err = event.get("error") or {}
            raise UpstreamError(name, 502, str(err.get("type", "stream_error")),
                                redact(str(err.get("message", ""))[:300], self._secrets))
        return event
