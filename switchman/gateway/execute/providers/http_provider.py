"""What the HTTP providers share: per-model URL, headers, timeouts and secret redaction.

A subclass states its URL suffix, its auth headers and its translation; this base does the
POST, the SSE ``data:`` framing and the mapping of a non-200 answer to :class:`UpstreamError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from switchman.config.reliability import TimeoutConfig
from switchman.gateway.execute.providers.base import (
    UpstreamError,
    api_key,
    error_message,
    redact,
    secret_pattern,
)
from switchman.gateway.execute.providers.transport import Reply, Transport
from switchman.pool import Model


class HTTPProvider:
    """One upstream API over the shared keep-alive transport, for any number of models."""

    #: Appended to the model's endpoint, e.g. ``/chat/completions``.
    path = ""
    #: Used when a model has no endpoint of its own.
    default_endpoint = ""
    #: Who is said to have sent a malformed stream event in error messages.
    sender = "upstream"

    def __init__(self, transport: Transport, models: list[Model],
                 timeouts: dict[str, TimeoutConfig] | None = None) -> None:
        self._transport = transport
        self._headers: dict[str, dict[str, str]] = {}
        self._urls: dict[str, str] = {}
        self._timeouts: dict[str, TimeoutConfig] = {}
        self._keys: list[str] = []
        self._secrets: re.Pattern[str] | None = None
        for model in models:
            self.add_model(model, (timeouts or {}).get(model.name))

    def headers(self, key: str | None) -> dict[str, str]:
        """The request headers, with the model's API key if it has one."""
        return {"content-type": "application/json"}

    def payload(self, model: Model, body: dict[str, Any], stream: bool) -> bytes:
        """The upstream request body for an OpenAI-shaped client body."""
        raise NotImplementedError

    def add_model(self, model: Model, timeouts: TimeoutConfig | None = None) -> None:
        """Register (or re-register, e.g. once a local server's port is known) a model."""
        key = api_key(model)
        if key:
            self._keys.append(key)
            self._secrets = secret_pattern(self._keys)
        self._headers[model.name] = self.headers(key)
        endpoint = (model.endpoint or self.default_endpoint).rstrip("/")
        self._urls[model.name] = f"{endpoint}{self.path}"
        self._timeouts[model.name] = timeouts or self._timeouts.get(model.name, TimeoutConfig())

    def _failure(self, model: Model, reply: Reply) -> UpstreamError:
        return UpstreamError(model.name, reply.status, f"http_{reply.status}",
                             redact(error_message(reply.status, reply.body), self._secrets),
                             reply.retry_after)

    async def _post(self, model: Model, body: dict[str, Any]) -> bytes:
        """The body of a 200 answer to a non-streaming call; any other status raises."""
        name = model.name
        reply = await self._transport.post(name, self._urls[name],
                                           self.payload(model, body, False),
                                           self._headers[name], self._timeouts[name])
        if reply.status != 200:
            raise self._failure(model, reply)
        return reply.body

    async def _events(self, model: Model, body: dict[str, Any]) -> AsyncIterator[bytes]:
        """The ``data:`` payloads of a streaming call; a non-200 answer raises."""
        name = model.name
        lines = self._transport.stream_lines(name, self._urls[name],
                                             self.payload(model, body, True),
                                             self._headers[name], self._timeouts[name])
        try:
            async for line in lines:
                if isinstance(line, Reply):
                    raise self._failure(model, line)
                if line.startswith(b"data:"):  # "event:" lines repeat what the data says
                    yield line[5:].strip()
        finally:
            await lines.aclose()

    def _event(self, name: str, data: bytes) -> dict[str, Any]:
        """One stream event as a JSON object."""
        try:
            event = json.loads(data)
        except ValueError:
            raise UpstreamError(name, 502, "bad_response",
                                f"{self.sender} sent an invalid stream event") from None
        if not isinstance(event, dict):
            raise UpstreamError(name, 502, "bad_response",
                                f"{self.sender} sent a stream event that is not an object")
        return event
