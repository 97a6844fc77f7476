"""OpenAI-compatible upstreams: OpenAI, vLLM, llama.cpp's server, Ollama, Together, ...

The request body is forwarded as the client sent it (unknown fields included) with only
``model`` replaced by the upstream name; for streams ``stream_options.include_usage`` is
turned on so that accounting gets real token counts where the upstream supports it.
A stream that ends without ``[DONE]`` or a ``finish_reason`` is a failure, not an answer:
a truncated reply must never pass for a complete one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from switchman.gateway.providers.base import UpstreamError, api_key, error_message, redact
from switchman.gateway.providers.transport import Reply, Transport
from switchman.gateway.reliability_config import TimeoutConfig
from switchman.pool import Model


class OpenAICompatProvider:
    """Calls ``{endpoint}/chat/completions`` through the shared keep-alive transport."""

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
        """Register (or re-register, e.g. once a local server's port is known) a model."""
        headers = {"content-type": "application/json"}
        key = api_key(model)
        if key:
            headers["authorization"] = f"Bearer {key}"
            self._secrets.append(key)
        self._headers[model.name] = headers
        self._urls[model.name] = f"{(model.endpoint or '').rstrip('/')}/chat/completions"
        self._timeouts[model.name] = timeouts or self._timeouts.get(model.name, TimeoutConfig())

    def _payload(self, model: Model, body: dict[str, Any], stream: bool) -> bytes:
        payload = dict(body)
        payload["model"] = model.upstream_model or model.name
        if stream:
            payload["stream"] = True
            options = dict(payload.get("stream_options") or {})
            options["include_usage"] = True
            payload["stream_options"] = options
        return json.dumps(payload).encode()

    def _failure(self, model: Model, reply: Reply) -> UpstreamError:
        message = redact(error_message(reply.status, reply.body), self._secrets)
        return UpstreamError(model.name, reply.status, f"http_{reply.status}", message,
                             reply.retry_after)

    async def complete(self, model: Model, body: dict[str, Any]) -> dict[str, Any]:
        name = model.name
        reply = await self._transport.post(name, self._urls[name],
                                           self._payload(model, body, False),
                                           self._headers[name], self._timeouts[name])
        if reply.status != 200:
            raise self._failure(model, reply)
        try:
            data = json.loads(reply.body)
        except ValueError:
            raise UpstreamError(name, 502, "bad_response",
                                "upstream returned invalid JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UpstreamError(name, 502, "bad_response",
                                "upstream response has no 'choices' list")
        return data

    async def stream(self, model: Model, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        name = model.name
        lines = self._transport.stream_lines(name, self._urls[name],
                                             self._payload(model, body, True),
                                             self._headers[name], self._timeouts[name])
        finished = False
        try:
            async for line in lines:
                if isinstance(line, Reply):
                    raise self._failure(model, line)
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    return
                chunk = self._parse(name, data)
                for choice in chunk.get("choices") or ():
                    if isinstance(choice, dict) and choice.get("finish_reason"):
                        finished = True
                yield chunk
            if not finished:
                raise UpstreamError(name, None, "truncated",
                                    "upstream stream ended without [DONE] or a finish_reason")
        finally:
            await lines.aclose()

    def _parse(self, name: str, data: bytes) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise UpstreamError(name, 502, "bad_response",
                                "upstream sent an invalid stream event") from None
        if not isinstance(chunk, dict):
            raise UpstreamError(name, 502, "bad_response",
                                "upstream sent a stream event that is not an object")
        if "error" in chunk:
            err = chunk["error"]
            text = err.get("message") if isinstance(err, dict) else str(err)
            raise UpstreamError(name, 502, "stream_error", redact(str(text)[:300], self._secrets))
        return chunk
