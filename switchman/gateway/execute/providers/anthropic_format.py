"""Pure translation between OpenAI chat-completions shapes and Anthropic's Messages API.

Kept free of I/O so that it is tested directly against recorded shapes from Anthropic's
public documentation. OpenAI-only request fields that Messages would reject are dropped
(Messages validates strictly); ``response_format`` has no Messages equivalent, so Anthropic
models are configured without ``json_mode`` and never receive such requests when routed.
"""

from __future__ import annotations

import json
import time
from typing import Any

DEFAULT_MAX_TOKENS = 4096
ANTHROPIC_VERSION = "2023-06-01"

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
           "tool_use": "tool_calls", "pause_turn": "stop", "refusal": "content_filter",
           "model_context_window_exceeded": "length"}


class TranslationError(ValueError):
    """The OpenAI request cannot be expressed as a Messages request (a client error)."""


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def _image(part: dict[str, Any]) -> dict[str, Any]:
    url = part.get("image_url")
    url = url.get("url") if isinstance(url, dict) else url
    if not isinstance(url, str):
        raise TranslationError("image_url part without a url")
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0] or "image/png"
        return {"type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content or []:
        if part.get("type") == "text" and part.get("text"):
            blocks.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "image_url":
            blocks.append(_image(part))
    return blocks


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = _text(message.get("content"))
    if text:
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        try:
            arguments = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            raise TranslationError(f"tool call {call.get('id')!r} has arguments that are "
                                   "not valid JSON") from None
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"),
                       "input": arguments})
    return blocks


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Messages requires alternating roles: merge consecutive turns of the same role."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None and parallel is not False:
        return None
    if choice in (None, "auto"):
        out: dict[str, Any] = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise TranslationError(f"unsupported tool_choice {choice!r}")
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


def to_anthropic(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """An OpenAI chat-completions body as a Messages API body."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in body["messages"]:
        role = message["role"]
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
        elif role == "user":
            _append(messages, "user", _user_blocks(message.get("content")))
        elif role == "assistant":
            _append(messages, "assistant", _assistant_blocks(message))
        elif role == "tool":
            _append(messages, "user", [{"type": "tool_result",
                                        "tool_use_id": message.get("tool_call_id"),
                                        "content": _text(message.get("content"))}])
        else:  # legacy "function" role: no call id to pair with, keep it as text
            _append(messages, "user", _user_blocks(_text(message.get("content"))))
    out: dict[str, Any] = {
        "model": upstream_model,
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    if body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), 1.0)  # Messages allows 0..1
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        out["tools"] = [
            {"name": t["function"]["name"],
             "description": t["function"].get("description", ""),
             "input_schema": t["function"].get("parameters") or {"type": "object",
                                                                  "properties": {}}}
            for t in body["tools"] if t.get("type", "function") == "function"]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None:
        out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        out["stream"] = True
    return out


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    prompt = sum(int(usage.get(k) or 0) for k in
                 ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    completion = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def from_anthropic(data: dict[str, Any], model_name: str) -> dict[str, Any]:
    """A Messages API response as an OpenAI ``chat.completion``."""
    text, calls = [], []
    for block in data.get("content") or []:
        if block.get("type") == "text":
            text.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append({"id": block.get("id"), "type": "function",
                          "function": {"name": block.get("name"),
                                       "arguments": json.dumps(block.get("input") or {})}})
    message: dict[str, Any] = {"role": "assistant",
                               "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return {"id": data.get("id"), "object": "chat.completion", "created": int(time.time()),
            "model": model_name,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": _FINISH.get(data.get("stop_reason"), "stop")}],
            "usage": _usage(data.get("usage") or {})}


class StreamTranslator:
    """Turns Messages stream events into OpenAI chunks, one event at a time."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.id = "msg"
        self.created = int(time.time())
        self._tools: dict[int, int] = {}  # content block index -> tool_calls index
        self._usage: dict[str, Any] = {}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model_name,
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish}]}

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = message.get("id", self.id)
            self._usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self._tools.setdefault(event.get("index", 0), len(self._tools))
                return [self._chunk({"tool_calls": [{
                    "index": index, "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""}}]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                index = self._tools.get(event.get("index", 0), 0)
                return [self._chunk({"tool_calls": [{
                    "index": index, "function": {"arguments": delta.get("partial_json", "")}}]})]
            return []  # thinking and signature deltas have no chat-completions equivalent
        if kind == "message_delta":
            self._usage.update({k: v for k, v in (event.get("usage") or {}).items()
                                if v is not None})
            reason = (event.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, _FINISH.get(reason, "stop"))] if reason else []
        if kind == "message_stop":
            usage_chunk = self._chunk({})
            usage_chunk["choices"] = []
            usage_chunk["usage"] = _usage(self._usage)
            return [usage_chunk]
        return []  # ping, and event types added to the API later
