"""OpenAI-compatible upstreams: OpenAI, vLLM, llama.cpp's server, Ollama, Together, ...

The request body is forwarded as the client sent it (unknown fields included) with only
``model`` replaced by the upstream name; for streams ``stream_options.include_usage`` is
turned on so that accounting gets real token counts where the upstream supports it.
A stream that ends without ``[DONE]`` or a ``finish_reason`` is a failure, not an answer:
a truncated reply must never pass for a complete one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from switchman.gateway.execute.providers.base import StreamChunk, UpstreamError, redact
from switchman.gateway.execute.providers.http_provider import HTTPProvider
from switchman.gateway.schema import dumps, loads
from switchman.pool import Model


class OpenAICompatProvider(HTTPProvider):
    """Calls ``{endpoint}/chat/completions`` through the shared keep-alive transport."""

    path = "/chat/completions"

    def headers(self, key: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    def payload(self, model: Model, body: dict[str, Any], stream: bool) -> bytes:
        payload = dict(body)
        payload["model"] = model.upstream_model or model.name
        if stream:
            payload["stream"] = True
            options = dict(payload.get("stream_options") or {})
            options["include_usage"] = True
            payload["stream_options"] = options
        return dumps(payload)

    async def complete(self, model: Model, body: dict[str, Any]) -> dict[str, Any]:
        raw = await self._post(model, body)
        try:
            data = loads(raw)
        except ValueError:
            raise UpstreamError(model.name, 502, "bad_response",
                                "upstream returned invalid JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UpstreamError(model.name, 502, "bad_response",
                                "upstream response has no 'choices' list")
        return data

    async def stream(self, model: Model, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        name = model.name
        events = self._events(model, body)
        finished = False
        try:
            async for data in events:
                if data == b"[DONE]":
                    return
                chunk = StreamChunk(self._event(name, data), data)
                if "error" in chunk:
                    err = chunk["error"]
                    text = err.get("message") if isinstance(err, dict) else str(err)
                    raise UpstreamError(name, 502, "stream_error",
                                        redact(str(text), self._secrets))
                for choice in chunk.get("choices") or ():
                    if isinstance(choice, dict) and choice.get("finish_reason"):
                        finished = True
                yield chunk
            if not finished:
                raise UpstreamError(name, None, "truncated",
                                    "upstream stream ended without [DONE] or a finish_reason")
        finally:
            await events.aclose()
