"""OpenAI-compatible upstreams: OpenAI, vLLM, llama.cpp's server, Ollama, Together, ...

The request body is forwarded as the client sent it (unknown fields included) with only
``model`` replaced by the upstream name; for streams ``stream_options.include_usage`` is
turned on so that accounting gets real token counts where the upstream supports it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from switchman.gateway.providers.base import (
    UpstreamError,
    api_key,
    error_message,
    redact,
    transport_error,
)
from switchman.pool import Model


class OpenAICompatProvider:
    """Calls ``{endpoint}/chat/completions`` through one shared keep-alive client."""

    def __init__(self, client: httpx.AsyncClient, models: list[Model]) -> None:
        self._client = client
        self._headers: dict[str, dict[str, str]] = {}
        self._urls: dict[str, str] = {}
        self._secrets: list[str] = []
        for model in models:
            self.add_model(model)

    def add_model(self, model: Model) -> None:
        """Register (or re-register, e.g. once a local server's port is known) a model."""
        headers = {"content-type": "application/json"}
        key = api_key(model)
        if key:
            headers["authorization"] = f"Bearer {key}"
            self._secrets.append(key)
        self._headers[model.name] = headers
        self._urls[model.name] = f"{(model.endpoint or '').rstrip('/')}/chat/completions"

    def _payload(self, model: Model, body: dict[str, Any], stream: bool) -> bytes:
        payload = dict(body)
        payload["model"] = model.upstream_model or model.name
        if stream:
            payload["stream"] = True
            options = dict(payload.get("stream_options") or {})
            options["include_usage"] = True
            payload["stream_options"] = options
        return json.dumps(payload).encode()

    def _failure(self, model: Model, response: httpx.Response) -> UpstreamError:
        message = redact(error_message(response), self._secrets)
        return UpstreamError(model.name, response.status_code, f"http_{response.status_code}",
                             message)

    async def complete(self, model: Model, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._client.post(
                self._urls[model.name], content=self._payload(model, body, False),
                headers=self._headers[model.name])
        except httpx.HTTPError as exc:
            raise transport_error(model, exc) from None
        if response.status_code != 200:
            raise self._failure(model, response)
        try:
            data = json.loads(response.content)
        except ValueError:
            raise UpstreamError(model.name, 502, "bad_response",
                                "upstream returned invalid JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UpstreamError(model.name, 502, "bad_response",
                                "upstream response has no 'choices' list")
        return data

    async def stream(self, model: Model, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        request = self._client.build_request(
            "POST", self._urls[model.name], content=self._payload(model, body, True),
            headers=self._headers[model.name])
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise transport_error(model, exc) from None
        try:
            if response.status_code != 200:
                await response.aread()
                raise self._failure(model, response)
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise UpstreamError(model.name, 502, "bad_response",
                                        "upstream sent an invalid stream event") from None
                if not isinstance(chunk, dict):
                    raise UpstreamError(model.name, 502, "bad_response",
                                        "upstream sent a stream event that is not an object")
                if "error" in chunk:
                    err = chunk["error"]
                    text = err.get("message") if isinstance(err, dict) else str(err)
                    raise UpstreamError(model.name, 502, "stream_error",
                                        redact(str(text)[:300], self._secrets))
                yield chunk
        except httpx.HTTPError as exc:
            raise transport_error(model, exc) from None
        finally:
            await response.aclose()
