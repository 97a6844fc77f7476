"""Configuration sections for serving: the listener, client keys, the log, conversations.

They live in a module of their own (like :mod:`switchman.config.reliability`) to keep the
package's main module small; ``switchman.config`` re-exports them.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from switchman.config.fields import resolve_path

#: ``server:`` keys that were once accepted and are now errors, with what replaced them
#: (their unknown-key error says so; see :mod:`switchman.config.problems`).
REMOVED_SERVER_KEYS = {"connect_timeout_s": "reliability.timeouts.connect_s",
                       "request_timeout_s": "reliability.timeouts.total_s"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)
    access_log: bool = False
    max_in_flight: int = Field(
        1024, gt=0, description="Requests the whole gateway serves at once; beyond it, 429.")
    overload_retry_after_s: int = Field(
        1, ge=0, description="Retry-After sent with an overload 429.")
    header_timeout_s: float = Field(
        10.0, gt=0, description="A request's headers must arrive within this (else 408).")
    body_timeout_s: float = Field(
        30.0, gt=0, description="A request's body must arrive within this once its headers "
        "have (else 408); no gateway slot is held meanwhile.")


class AuthConfig(_Section):
    api_keys: list[str] = Field(
        default_factory=list, description="If set, clients must send one as a Bearer token.")
    admin_api_keys: list[str] = Field(
        default_factory=list, description="Keys that may also rate any key's responses "
        "(feedback); they authenticate like api_keys.")


class LogConfig(_Section):
    path: str | None = Field(None, description="SQLite decision log (relative: to the "
                             "configuration file's directory); null = state directory.")
    store_prompts: bool = Field(False, description="Also store prompt text (off: privacy).")

    _path = field_validator("path")(resolve_path)

    def resolved_path(self) -> Path:
        """Where the log lives; the default follows the XDG state directory convention."""
        if self.path:
            return Path(self.path).expanduser()
        base = os.environ.get("XDG_STATE_HOME") or "~/.local/state"
        return Path(base).expanduser() / "switchman" / "decisions.sqlite"


class ConversationConfig(_Section):
    max_entries: int = Field(
        100_000, gt=0, description="Conversations remembered for stickiness (LRU).")
