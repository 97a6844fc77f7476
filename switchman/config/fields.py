"""Checks of single configuration values: upstream URLs, providers, file paths.

They are field validators (not checks after the whole file has validated) so that pydantic
reports them together with every other field error of the file, in one pass: an operator
fixes a file once, not in rounds. Paths are resolved here, while the file's directory is
known (pydantic's validation context carries it), so that nothing later depends on the
directory ``serve`` happened to be started from.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationInfo

#: The upstream API dialects the gateway speaks.
PROVIDERS = ("openai", "anthropic")

#: Validation-context key holding the directory relative paths are resolved against.
BASE_DIR = "base_dir"

#: Request paths the providers append to an endpoint; an endpoint that already ends with
#: one would be called as ``.../chat/completions/chat/completions``.
_CALL_PATHS = ("/chat/completions", "/messages")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_provider(value: str) -> str:
    if value not in PROVIDERS:
        raise ValueError(f"{value!r} is not a provider; use 'openai' or 'anthropic'"
                         f"{did_you_mean(value, PROVIDERS)}")
    return value


def check_endpoint(value: str | None) -> str | None:
    """An http(s) base URL, e.g. ``https://api.openai.com/v1``; ``None`` passes.

    Anything else would pass start-up and then fail every request to the model, so it is
    refused here with what to write instead.
    """
    if value is None:
        return None
    example = "write the API's base URL, e.g. https://api.openai.com/v1"
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError as exc:  # a port that is not a number, a malformed IPv6 host
        raise ValueError(f"{value!r} is not a valid URL ({exc}); {example}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok \
            or any(ch.isspace() for ch in value):
        raise ValueError(f"{value!r} is not an http(s) URL; {example}")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r}: a base URL takes no ?query or #fragment; {example}")
    path = parts.path.rstrip("/")
    for call in _CALL_PATHS:
        if path.endswith(call):
            raise ValueError(f"{value!r} is a request URL; write the base URL without "
                             f"{call} ({value[:value.rfind(call)]!r})")
    return value


def resolve_path(value: str | None, info: ValidationInfo) -> str | None:
    """``~`` expanded, and a relative path made absolute against the file's directory.

    Without a file (a configuration built from a dict in code) a relative path is left as
    it is, so it keeps meaning what it meant to the code that wrote it.
    """
    if not value:
        return value
    path = Path(value).expanduser()
    base = (info.context or {}).get(BASE_DIR)
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    return str(path)
