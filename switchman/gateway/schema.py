"""Validate a chat-completions request and extract what routing needs, in one pass.

Hand-written checks instead of a pydantic model: the body is forwarded upstream almost
untouched (unknown fields included), so we only check what we rely on, and we avoid
building an object tree per request on the hot path. Every problem is a 400 naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from switchman.gateway.errors import bad_request

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
#: Rough tokens per image part (OpenAI's high-detail tile cost is of this order).
IMAGE_TOKENS = 800
#: Characters per token for the estimate; English text with BPE tokenizers is ~4.
CHARS_PER_TOKEN = 4.0
_PREF_KEYS = ("cost_weight", "max_cost_usd", "allowed_models", "excluded_models",
              "conversation_id", "fallback")
_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})


@dataclass(slots=True)
class Preferences:
    """What the caller asked of the routing decision for this request."""

    cost_weight: float | None = None
    max_cost_usd: float | None = None
    allowed_models: tuple[str, ...] | None = None
    excluded_models: tuple[str, ...] = ()
    conversation_id: str | None = None
    fallback: bool = True  # False: only the first model of the plan (retries still apply)


@dataclass(slots=True)
class ChatRequest:
    """A validated request: the body to forward plus the facts routing decides on."""

    body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    needs: frozenset[str]
    text: str
    prompt_tokens: int
    prefs: Preferences = field(default_factory=Preferences)


def _number(value: Any, param: str, *, low: float | None = None,
            high: float | None = None, strict_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_request(f"{param} must be a finite number, got {value!r}", param)
    if low is not None and (value <= low if strict_low else value < low):
        raise bad_request(f"{param} must be {'>' if strict_low else '>='} {low}, got {value}",
                          param)
    if high is not None and value > high:
        raise bad_request(f"{param} must be <= {high}, got {value}", param)
    return float(value)


def _content_text(content: Any, param: str, needs: set[str]) -> tuple[str, int]:
    """Text of a message's content and the extra tokens of its non-text parts."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise bad_request(f"{param} must be a string or a list of content parts", param)
    texts, extra = [], 0
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise bad_request(f"{param}[{j}] must be an object with a string 'type'",
                              f"{param}[{j}]")
        kind = part["type"]
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise bad_request(f"{param}[{j}].text must be a string", f"{param}[{j}].text")
            texts.append(text)
        elif kind in ("image_url", "image", "input_image"):
            needs.add("vision")
            extra += IMAGE_TOKENS
    return "\n".join(texts), extra


def _messages(messages: Any, needs: set[str]) -> tuple[list[str], int]:
    if not isinstance(messages, list):
        raise bad_request("messages must be a list of message objects", "messages")
    if not messages:
        raise bad_request("messages must not be empty", "messages")
    texts, chars, extra = [], 0, 0
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request(f"{param} must be an object", param)
        role = message.get("role")
        if role not in _ROLES:
            raise bad_request(f"{param}.role must be one of {sorted(_ROLES)}, got {role!r}",
                              f"{param}.role")
        if "content" not in message and role not in ("assistant",):
            raise bad_request(f"{param}.content is required", f"{param}.content")
        text, part_tokens = _content_text(message.get("content"), f"{param}.content", needs)
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            if not isinstance(tool_calls, list):
                raise bad_request(f"{param}.tool_calls must be a list", f"{param}.tool_calls")
            for call in tool_calls:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    text += f"\n{fn.get('name', '')}({fn.get('arguments', '')})"
        texts.append(text)
        chars += len(text)
        extra += part_tokens + 4  # per-message framing tokens
    return texts, int(chars / CHARS_PER_TOKEN) + extra


def parse_chat_request(body: Any, headers: Mapping[str, str],
                       known_names: frozenset[str]) -> ChatRequest:
    """Validate ``body`` (parsed JSON) and the ``x-switchman-*`` headers."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model is required and must be a non-empty string", "model")
    needs: set[str] = set()
    texts, prompt_tokens = _messages(body.get("messages"), needs)

    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("stream must be a boolean", "stream")
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise bad_request("stream_options must be an object", "stream_options")
        include_usage = bool(options.get("include_usage"))
    max_tokens = None
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad_request(f"{key} must be a positive integer, got {value!r}", key)
            max_tokens = value
    for key, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        if body.get(key) is not None:
            _number(body[key], key, low=low, high=high)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise bad_request("tools must be a list of tool objects", "tools")
        if tools:
            needs.add("tools")
            prompt_tokens += int(sum(len(str(t)) for t in tools) / CHARS_PER_TOKEN)
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, str | dict):
        raise bad_request("tool_choice must be a string or an object", "tool_choice")
    fmt = body.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or not isinstance(fmt.get("type"), str):
            raise bad_request("response_format must be an object with a string 'type'",
                              "response_format")
        if fmt["type"] in ("json_object", "json_schema"):
            needs.add("json_mode")
    if stream:
        needs.add("streaming")

    prefs = parse_preferences(body.pop("switchman", None), headers, known_names)
    return ChatRequest(body=body, model=model, messages=body["messages"], stream=stream,
                       include_usage=include_usage, max_tokens=max_tokens,
                       needs=frozenset(needs), text="\n\n".join(texts),
                       prompt_tokens=prompt_tokens, prefs=prefs)


def _model_list(value: Any, param: str, known: frozenset[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise bad_request(f"{param} must be a list of model names", param)
    unknown = [v for v in value if v not in known]
    if unknown:
        raise bad_request(f"{param}: unknown model(s) {unknown}; pool models: {sorted(known)}",
                          param, code="model_not_found")
    return tuple(value)


def parse_preferences(body_prefs: Any, headers: Mapping[str, str],
                      known: frozenset[str]) -> Preferences:
    """Merge ``x-switchman-*`` headers and the body's ``switchman`` object (body wins)."""
    raw: dict[str, tuple[Any, str]] = {}
    for key in _PREF_KEYS:
        header = "x-switchman-" + key.replace("_", "-")
        value = headers.get(header)
        if value is not None:
            if key in ("cost_weight", "max_cost_usd"):
                try:
                    value = float(value)
                except ValueError:
                    raise bad_request(f"header {header} must be a number, got {value!r}",
                                      header) from None
            elif key == "fallback":
                lowered = value.strip().lower()
                if lowered not in _TRUE | _FALSE:
                    raise bad_request(f"header {header} must be true or false, got {value!r}",
                                      header)
                value = lowered in _TRUE
            raw[key] = (value, f"header {header}")
    if body_prefs is not None:
        if not isinstance(body_prefs, dict):
            raise bad_request("switchman must be an object", "switchman")
        unknown = sorted(set(body_prefs) - set(_PREF_KEYS))
        if unknown:
            raise bad_request(f"switchman: unknown field(s) {unknown}; known: {list(_PREF_KEYS)}",
                              "switchman")
        for key, value in body_prefs.items():
            if value is not None:
                raw[key] = (value, f"switchman.{key}")
    prefs = Preferences()
    if not raw:
        return prefs
    if "cost_weight" in raw:
        prefs.cost_weight = _number(*raw["cost_weight"], low=0)
    if "max_cost_usd" in raw:
        prefs.max_cost_usd = _number(*raw["max_cost_usd"], low=0, strict_low=True)
    if "allowed_models" in raw:
        prefs.allowed_models = _model_list(*raw["allowed_models"], known)
        if not prefs.allowed_models:
            raise bad_request("allowed_models must not be empty", raw["allowed_models"][1])
    if "excluded_models" in raw:
        prefs.excluded_models = _model_list(*raw["excluded_models"], known)
    if "conversation_id" in raw:
        value, param = raw["conversation_id"]
        if not isinstance(value, str) or not 0 < len(value) <= 256:
            raise bad_request(f"{param} must be a string of 1 to 256 characters", param)
        prefs.conversation_id = value
    if "fallback" in raw:
        value, param = raw["fallback"]
        if not isinstance(value, bool):
            raise bad_request(f"{param} must be a boolean, got {value!r}", param)
        prefs.fallback = value
    return prefs
