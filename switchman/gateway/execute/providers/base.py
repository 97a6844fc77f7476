"""What every provider offers the executor, and how upstream failures are described.

Providers speak OpenAI's chat-completions shapes on the gateway side whatever their native
API, so the executor, accounting and streaming relay never special-case a provider.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from switchman.pool import Model

#: Statuses that say "this request is wrong", not "this model is unavailable": trying the
#: next model would most likely fail the same way, so they go back to the client. (A 404 is
#: not among them: clients never name upstream models, so it means a configuration error.)
CLIENT_ERROR_STATUSES = frozenset({400, 413, 422})
#: Upstream answers worth repeating to the same model after a pause (529: Anthropic's
#: "overloaded"). 400/401/403/404/422 never are: the same call would fail the same way.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
#: Wire failures worth repeating: nothing reached the model, or the connection broke.
TRANSIENT_KINDS = frozenset({"connect", "disconnected"})


class StreamChunk(dict):
    """A parsed stream event that keeps the bytes it was parsed from (``raw``), so that a
    relay changing only its ``id`` and ``model`` can splice those two values instead of
    encoding the whole chunk again."""

    __slots__ = ("raw",)

    def __init__(self, parsed: dict[str, Any], raw: bytes) -> None:
        super().__init__(parsed)
        self.raw = raw


@dataclass(eq=False)
class UpstreamError(Exception):
    """A failed upstream call: which model, what status (None: no HTTP answer) and why."""

    model: str
    status: int | None
    kind: str
    message: str
    retry_after: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    __str__ = Exception.__str__

    @property
    def retryable(self) -> bool:
        """Whether another model may succeed: transport errors, 429, 5xx, auth problems."""
        return self.status not in CLIENT_ERROR_STATUSES

    @property
    def transient(self) -> bool:
        """Whether the same model may succeed if asked again after a pause."""
        if self.status is None:
            return self.kind in TRANSIENT_KINDS
        return self.kind.startswith("http_") and self.status in TRANSIENT_STATUSES

    @property
    def label(self) -> str:
        """Short description for the ``x-switchman-reason`` header and logs."""
        return str(self.status) if self.status is not None else self.kind


class Provider(Protocol):
    """Calls one kind of upstream API. Implementations share one pooled client."""

    async def complete(self, model: Model, body: dict[str, Any]) -> dict[str, Any]:
        """Non-streaming call; returns an OpenAI ``chat.completion`` object."""
        ...

    def stream(self, model: Model, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Streaming call yielding OpenAI ``chat.completion.chunk`` objects.

        A failure before the first chunk raises :class:`UpstreamError` from the first
        ``__anext__``, which is what lets the executor fall back before anything was sent.
        """
        ...


def api_key(model: Model) -> str | None:
    """The model's key from its environment variable, read when the provider is built."""
    return os.environ.get(model.api_key_env) if model.api_key_env else None


#: Upstream error text shown to a client or logged keeps at most this many characters.
ERROR_TEXT_CHARS = 300


def _encodings(secret: str) -> set[str]:
    """The forms in which an upstream may echo a key back: as is, base64 (standard and
    URL-safe, with and without padding), percent-encoded and hex."""
    raw = secret.encode()
    forms = {secret, urllib.parse.quote(secret, safe=""), raw.hex()}
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = encoded.decode()
        forms.update((text, text.rstrip("=")))
    return forms


def secret_pattern(secrets: list[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern matching every secret in all its common encodings
    (an upstream that upper-cases a key it echoes must not leak it); longest forms first,
    so a secret is never half-replaced by a shorter one's match. Keys under 6 characters
    are not secrets worth the false matches."""
    forms = {form for secret in secrets if len(secret) >= 6 for form in _encodings(secret)}
    if not forms:
        return None
    ordered = sorted(forms, key=len, reverse=True)
    return re.compile("|".join(re.escape(form) for form in ordered), re.IGNORECASE)


def redact(text: str, secrets: re.Pattern[str] | None, limit: int = ERROR_TEXT_CHARS) -> str:
    """``text`` with every secret removed, then cut to ``limit`` characters (cutting first
    could leave a secret's prefix that no longer matches)."""
    if secrets is not None:
        text = secrets.sub("[redacted]", text)
    return text[:limit]


def error_message(status: int, body: bytes, limit: int = 64 * 1024) -> str:
    """The upstream's own error message if it has one, else the start of its body."""
    try:
        data = json.loads(body)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"][:limit]
        if isinstance(err, str):
            return err[:limit]
    except ValueError:
        pass
    return body[:limit].decode(errors="replace") or f"HTTP {status}"
