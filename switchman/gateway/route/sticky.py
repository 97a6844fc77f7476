"""Conversation stickiness: a conversation stays on the model it started with.

Multi-turn chats and agents lose their prompt cache and change voice if every turn is
routed afresh. A conversation is identified by the caller's ``conversation_id`` or, without
one, by a hash of its messages up to the last assistant turn: after answering, the gateway
remembers hash(messages + its reply), which is exactly the prefix the client sends back on
the next turn. Only role, text and tool calls are hashed, so clients that re-serialize
messages (``refusal: null`` and the like) still match. Memory is a bounded LRU in the
gateway's state store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from switchman.state import LocalStore, StateStore

_SEP = b"\x1e"
_SPACE = "sticky"


def _encode(message: dict[str, Any]) -> bytes:
    content = message.get("content")
    if isinstance(content, list):
        content = "\x1f".join(
            str(p.get("text") or p.get("image_url") or "") for p in content
            if isinstance(p, dict))
    parts = [str(message.get("role", "")), content or ""]
    for call in message.get("tool_calls") or []:
        fn = (call.get("function") or {}) if isinstance(call, dict) else {}
        parts.append(f"{fn.get('name', '')}\x1f{fn.get('arguments', '')}")
    if message.get("tool_call_id"):
        parts.append(str(message["tool_call_id"]))
    return "\x1f".join(parts).encode("utf-8", "surrogatepass") + _SEP


@dataclass(slots=True)
class ConversationKey:
    """How to find this conversation now, and how to find it after this turn."""

    lookup: str | None
    explicit: bool
    _running: Any = None

    def after(self, reply: dict[str, Any]) -> str:
        """The key the next turn will look up, once ``reply`` is part of the conversation."""
        if self.explicit or self._running is None:
            return self.lookup or ""
        h = self._running.copy()
        h.update(_encode(reply))
        return "h:" + h.hexdigest()


def conversation_key(messages: Iterable[dict[str, Any]], conversation_id: str | None,
                     scope: str | None = None) -> ConversationKey:
    """The conversation's key; ``scope`` (the caller's API key id) keeps callers apart, so
    that no one can make their requests sticky to another key's conversation."""
    if conversation_id is not None:
        prefix = "" if scope is None else f"key:{scope}:"  # "id:..." never starts with "key:"
        return ConversationKey(f"{prefix}id:{conversation_id}", True)
    h = hashlib.blake2b(digest_size=16, key=(scope or "").encode())
    lookup = None
    for message in messages:
        h.update(_encode(message))
        if message.get("role") == "assistant":
            lookup = "h:" + h.hexdigest()
    return ConversationKey(lookup, False, h)


class ConversationMemory:
    """Bounded LRU map from conversation key to the model serving it (in the state store)."""

    def __init__(self, max_entries: int, store: StateStore | None = None) -> None:
        self._store: StateStore = LocalStore() if store is None else store
        self._store.bound(_SPACE, max_entries)

    def __len__(self) -> int:
        return self._store.size(_SPACE)

    def get(self, key: str | None) -> str | None:
        return None if key is None else self._store.get(_SPACE, key)

    def put(self, key: str, model: str) -> None:
        if key:
            self._store.put(_SPACE, key, model)
