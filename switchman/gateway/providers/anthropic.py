"""Anthropic's native Messages API behind the OpenAI-shaped provider interface.

Translation lives in :mod:`anthropic_format`; this module only does HTTP, SSE framing and
error mapping (Anthropic's 529 "overloaded" is a 5xx, so the executor falls back on it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from switchman.gateway.providers.anthropic_format import (
    ANTHROPIC_VERSION,
    StreamTranslator,
    TranslationError,
    from_anthropic,
    to_anthropic,
)
from switchman.gateway.providers.base import (
    UpstreamError,
    api_key,
    error_message,
    redact,
    transport_error,
)
from switchman.pool import Model

DEFAULT_ENDPOINT = "https://api.anthropic.com/v1"


class AnthropicProvider:
    """Calls ``{endpoint}/messages`` with ``x-api-key`` through one shared client."""

    def __init__(self, client: httpx.AsyncClient, models: list[Model]) -> None:
        self._client = client
        self._headers: dict[str, dict[str, str]] = {}
        self._urls: dict[str, str] = {}
        self._secrets: list[str] = []
        for model in models:
            self.add_model(model)

    def add_model(self, model: Model) -> None:
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        key = api_key(model)
        if key:
            headers["x-api-key"] = key
            self._secrets.append(key)
        self._headers[model.name] = headers
        self._urls[model.name] = f"{(model.endpoint or DEFAULT_ENDPOINT).rstrip('/')}/messages"

    def _payload(self, model: Model, body: dict[str, Any], stream: bool) -> bytes:
        try:
            payload = to_anthropic({**body, "stream": stream}, model.upstream_model or model.name)
        except (TranslationError, KeyError, TypeError, AttributeError) as exc:
            raise UpstreamError(model.name, 400, "translation",
                                f"cannot translate the request for Anthropic: {exc}") from None
        return json.dumps(payload).encode()

    def _failure(self, model: Model, response: httpx.Response) -> UpstreamError:
        return UpstreamError(model.name, response.status_code, f"http_{response.status_code}",
                             redact(error_message(response), self._secrets))

    async def complete(self, model: Model, body: dict[str, Any]) -> dict[str, Any]:
        content = self._payload(model, body, False)
        try:
            response = await self._client.post(self._urls[model.name], content=content,
                                               headers=self._headers[model.name])
        except httpx.HTTPError as exc:
            raise transport_error(model, exc) from None
        if response.status_code != 200:
            raise self._failure(model, response)
        try:
            return from_anthropic(json.loads(response.content), model.name)
        except (ValueError, AttributeError, TypeError):
            raise UpstreamError(model.name, 502, "bad_response",
                                "Anthropic returned a response that is not a Message") from None

    async def stream(self, model: Model, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        request = self._client.build_request("POST", self._urls[model.name],
                                             content=self._payload(model, body, True),
                                             headers=self._headers[model.name])
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise transport_error(model, exc) from None
        translator = StreamTranslator(model.name)
        try:
            if response.status_code != 200:
                await response.aread()
                raise self._failure(model, response)
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # "event:" lines repeat the type that the data carries
                try:
                    event = json.loads(line[5:])
                except ValueError:
                    raise UpstreamError(model.name, 502, "bad_response",
                                        "Anthropic sent an invalid stream event") from None
                if not isinstance(event, dict):
                    raise UpstreamError(model.name, 502, "bad_response",
                                        "Anthropic sent a stream event that is not an object")
                if event.get("type") == "error":
                    err = event.get("error") or {}
                    raise UpstreamError(model.name, 502, str(err.get("type", "stream_error")),
                                        redact(str(err.get("message", ""))[:300],
                                               self._secrets))
                for chunk in translator.feed(event):
                    yield chunk
                if event.get("type") == "message_stop":
                    break
        except httpx.HTTPError as exc:
            raise transport_error(model, exc) from None
        finally:
            await response.aclose()
