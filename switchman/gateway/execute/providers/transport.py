"""HTTP to upstreams: one shared keep-alive pool, per-call timeouts, errors as UpstreamError.

The client is switchman's own (``http1``: asyncio protocols and httptools' parser), not
aiohttp's or httpx's: on this path httpx cost ~1.5-2.5 ms of CPU per call, aiohttp ~80 us
and ``http1`` ~5 us. One pool serves every provider; how many calls each model may have
open is bounded by the executor's in-flight limits, not by the pool, so the pool itself is
unbounded.

``connect_s`` bounds the connection (and TLS) set-up, ``first_byte_s`` the wait for the
headers and every gap while reading the body, ``total_s`` the whole call (which keeps
running while a stream is read).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from switchman.config.reliability import TimeoutConfig
from switchman.gateway.execute.providers import http1
from switchman.gateway.execute.providers.base import UpstreamError


@dataclass(slots=True)
class Reply:
    """A complete (non-streamed) upstream answer."""

    status: int
    body: bytes
    retry_after: float | None


def retry_after_of(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_TIMEOUTS: dict[tuple[float, float, float], http1.Timeouts] = {}


def client_timeout(t: TimeoutConfig) -> http1.Timeouts:
    """The client's (immutable) timeouts for ``t``, built once per distinct setting rather
    than on every upstream call: a handful of values per configuration."""
    key = (t.connect_s, t.first_byte_s, t.total_s)
    found = _TIMEOUTS.get(key)
    if found is None:
        found = _TIMEOUTS[key] = http1.Timeouts(*key)
    return found


def _host(url: str) -> str:
    """Host and port of a URL, never its credentials or path."""
    try:
        parsed = urlsplit(url)
        return f"{parsed.hostname}:{parsed.port}" if parsed.port else str(parsed.hostname)
    except ValueError:
        return "upstream"


def transport_error(model: str, url: str, exc: http1.HTTPError,
                    t: TimeoutConfig) -> UpstreamError:
    """What went wrong on the wire, named for the client and the log."""
    if isinstance(exc, http1.ConnectTimeout):
        return UpstreamError(model, None, "connect",
                             f"no connection to {_host(url)} within {t.connect_s:g}s")
    if isinstance(exc, http1.ReadTimeout):
        what = "no data" if exc.answered else "no response"
        return UpstreamError(model, None, "timeout",
                             f"{what} from {_host(url)} within {t.first_byte_s:g}s")
    if isinstance(exc, http1.TotalTimeout):
        return UpstreamError(model, None, "timeout",
                             f"call to {_host(url)} exceeded the total {t.total_s:g}s")
    if isinstance(exc, http1.ConnectError):
        return UpstreamError(model, None, "connect", f"cannot connect to {_host(url)}")
    if isinstance(exc, http1.Disconnected):
        when = "mid-response" if exc.answered else "before answering"
        return UpstreamError(model, None, "disconnected",
                             f"{_host(url)} closed the connection {when}")
    return UpstreamError(model, None, "transport",
                         f"{_host(url)} sent a malformed answer"[:200])


class Transport:
    """The shared pool; created in the running loop by :meth:`start`."""

    def __init__(self) -> None:
        self._pool: http1.Pool | None = None

    async def start(self) -> None:
        self._pool = http1.Pool()

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    @property
    def pool(self) -> http1.Pool:
        if self._pool is None:
            raise RuntimeError("transport used before start()")
        return self._pool

    async def post(self, model: str, url: str, body: bytes, headers: dict[str, str],
                   timeouts: TimeoutConfig) -> Reply:
        """POST and read the whole answer; transport failures raise UpstreamError."""
        try:
            status, answer_headers, data = await self.pool.post(
                url, body, headers, client_timeout(timeouts))
        except http1.HTTPError as exc:
            raise transport_error(model, url, exc, timeouts) from None
        return Reply(status, data, retry_after_of(answer_headers.get("retry-after")))

    async def stream_lines(self, model: str, url: str, body: bytes, headers: dict[str, str],
                           timeouts: TimeoutConfig) -> AsyncIterator[bytes | Reply]:
        """POST and yield the answer's lines; a non-200 answer is yielded as one Reply."""
        try:
            async with self.pool.stream(url, body, headers,
                                        client_timeout(timeouts)) as response:
                if response.status != 200:
                    data = await response.read()
                    yield Reply(response.status, data,
                                retry_after_of(response.headers.get("retry-after")))
                    return
                async for line in response.lines():
                    yield line
        except http1.HTTPError as exc:
            raise transport_error(model, url, exc, timeouts) from None
