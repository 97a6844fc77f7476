"""Validate a chat-completions request and extract what routing needs, in one pass.

Hand-written checks instead of a pydantic model: the body is forwarded upstream almost
untouched (unknown fields included), so we only check what we rely on, and we avoid
building an object tree per request on the hot path. Every problem is a 400 naming the field.

Nothing a client sends may raise anything but a :class:`GatewayError` out of here: the body's
shape is bounded first (:func:`check_shape`, one walk whose own depth is bounded), numbers are
range-checked as exact values before any float arithmetic, and every client string quoted in
an error message goes through :func:`echo`, so a megabyte ``model`` is not sent back whole.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from switchman.gateway.errors import bad_request

try:
    import orjson
except ImportError:  # the gateway extra brings it; plain json is the same, only slower
    orjson = None  # type: ignore[assignment]

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
#: Rough tokens per image part (OpenAI's high-detail tile cost is of this order).
IMAGE_TOKENS = 800
#: Characters per token for the estimate; English text with BPE tokenizers is ~4.
CHARS_PER_TOKEN = 4.0
_PREF_KEYS = ("cost_weight", "max_cost_usd", "allowed_models", "excluded_models",
              "conversation_id", "fallback", "explore")
#: Each preference with the header that sets it (``x-switchman-cost-weight``, ...).
_PREF_HEADERS = tuple((key, "x-switchman-" + key.replace("_", "-")) for key in _PREF_KEYS)
_BOOLEAN_PREFS = ("fallback", "explore")
_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})

#: Deepest nesting of arrays and objects a body may have (the top-level object is depth 1).
#: Real requests, JSON schemas in ``tools`` and ``response_format`` included, stay far below;
#: a bound keeps every recursive step after parsing (the upstream body's encoding, the
#: Anthropic translation, stickiness hashing) clear of Python's recursion limit.
MAX_DEPTH = 64
#: Most elements of one array, or members of one object.
MAX_ITEMS = 10_000
#: Most JSON values in a whole body: bounds the time any walk over it takes on the event loop.
MAX_VALUES = 200_000
#: Longest response id feedback may name (switchman's own ids are 35 characters).
MAX_ID_CHARS = 256
#: Characters of a client string quoted in an error message (the rest is elided).
MAX_ECHO = 200
#: Largest integer accepted where switchman does arithmetic with a number: the largest
#: float that still counts in steps of 1, far above any real value of those fields.
MAX_EXACT_INT = 2**53
#: Largest ``max_tokens`` / ``max_completion_tokens`` (what int32 upstreams can hold).
MAX_TOKENS_LIMIT = 2**31 - 1
#: Largest per-request ``cost_weight`` (quality points per dollar): a million times the
#: weights routers are configured with, and small enough that weight x cost stays finite.
MAX_COST_WEIGHT = 1e9
_SURROGATE = re.compile("[\ud800-\udfff]")


#: Every ASCII digit to ``0``, every other byte to a space: a run of 19 digits in a text is
#: then a substring test of its translation, a quarter of what ``re.search(rb"[0-9]{19}")``
#: costs on a typical body and a tenth on a large one.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_DIGIT_RUN = b"0" * 19


def loads(data: bytes) -> Any:
    """JSON text -> Python values, as ``json.loads`` reads it (``ValueError`` and
    ``RecursionError`` on what it refuses), in a fifth of the time for a typical body.

    orjson parses the bodies the gateway reads and forwards on every request; whatever it
    refuses that ``json`` accepts (``NaN``, integers beyond 64 bits, UTF-16 text, nesting
    past 1024 levels, lone surrogate escapes) goes to ``json``, so no body that parsed
    before is refused now. orjson reads an integer beyond 64 bits as a float, so text
    with a run of 19 or more digits goes to ``json`` too: a forwarded value stays exact.
    """
    if orjson is not None and _LONG_DIGIT_RUN not in data.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def dumps(value: Any) -> bytes:
    """Python values -> UTF-8 JSON bytes (compact; non-ASCII text left unescaped, which is
    the same JSON). What orjson refuses (a lone surrogate, an integer beyond 64 bits, a
    non-string key) is encoded by ``json``, which escapes or writes it as before."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:
            pass
    return json.dumps(value).encode()


def echo(value: Any, limit: int = MAX_ECHO) -> str:
    """``value`` as an error message may quote it: a repr of at most about ``limit``
    characters. Containers are described rather than printed (their repr could be huge)."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value)} characters)"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, dict):
        return f"an object with {len(value)} member(s)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        try:
            return f"an integer of {len(str(abs(value)))} digits"
        except ValueError:  # beyond sys.get_int_max_str_digits()
            return f"an integer of about {int(value.bit_length() * math.log10(2))} digits"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _echo_list(values: list[Any], most: int = 5) -> str:
    """``['a', 'b', ...]``: the first ``most`` values, each through :func:`echo`."""
    shown = [echo(v) for v in values[:most]] + ["..."] * (len(values) > most)
    return f"[{', '.join(shown)}]"


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _path(parts: list[str | int]) -> str:
    """``messages[0].content`` for the keys walked; odd or long member names quoted short."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _NAME.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{echo(_SURROGATE.sub(chr(0xFFFD), part[:40]))}]"
    return out if len(out) <= MAX_ECHO else out[:MAX_ECHO] + "..."


class _ShapeError(Exception):
    """A bound broken at some path; the path is collected on the way back up the walk."""

    def __init__(self, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message, self.code = message, code
        self.path: list[str | int] = []


def _within_bounds(body: Any) -> bool:
    """Whether ``body`` keeps every bound: the fast walk of every request (no paths kept,
    no recursion; ``json.loads`` makes exact dicts, lists, strs, floats, so ``type() is``)."""
    stack, values = [(body, 1)], 1
    while stack:
        container, depth = stack.pop()
        if depth > MAX_DEPTH or len(container) > MAX_ITEMS:
            return False
        values += len(container)
        if values > MAX_VALUES:
            return False
        if type(container) is dict:
            for key in container:
                if not key.isascii() and _SURROGATE.search(key):
                    return False
            container = container.values()
        for value in container:
            kind = type(value)
            if kind is str:
                if not value.isascii() and _SURROGATE.search(value):
                    return False
            elif kind is dict or kind is list:
                if value:
                    stack.append((value, depth + 1))
            elif kind is float and not math.isfinite(value):
                return False
    return True


class _TooManyValues(Exception):
    """The whole body holds more than MAX_VALUES values (a property of no one path)."""


class _Walk:
    """The walk that names what broke a bound (run only once the fast walk said so); its
    recursion stops at MAX_DEPTH."""

    def __init__(self) -> None:
        self.values = 0

    def visit(self, value: Any, depth: int) -> None:
        self.values += 1
        if self.values > MAX_VALUES:
            raise _TooManyValues()
        if isinstance(value, str):
            if not value.isascii() and _SURROGATE.search(value):
                raise _ShapeError("contains a lone UTF-16 surrogate (\\ud800-\\udfff), "
                                  "which is not valid Unicode text")
            return
        if isinstance(value, float):
            if not math.isfinite(value):
                raise _ShapeError("is not a finite number (NaN, Infinity and overflowing "
                                  "exponents are not JSON numbers)")
            return
        if not isinstance(value, dict | list) or not value:
            return
        if depth > MAX_DEPTH:
            raise _ShapeError(f"nests arrays and objects deeper than the limit of {MAX_DEPTH} "
                              "levels", "too_deeply_nested")
        if len(value) > MAX_ITEMS:
            raise _ShapeError(f"has {len(value)} items, more than the limit of {MAX_ITEMS} "
                              "per array or object", "too_many_items")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            try:
                if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                    raise _ShapeError("is a member name with a lone UTF-16 surrogate, "
                                      "which is not valid Unicode text")
                self.visit(item, depth + 1)
            except _ShapeError as err:
                err.path.append(key)
                raise


def check_shape(body: dict[str, Any] | list[Any]) -> None:
    """A 400 naming the place unless ``body`` keeps the bounds above: nesting depth, items
    per array or object, values in all, and only finite numbers and valid Unicode text."""
    if _within_bounds(body):
        return
    try:
        _Walk().visit(body, 1)
    except _TooManyValues:
        raise bad_request(f"the request body holds more than the limit of {MAX_VALUES} "
                          "JSON values", code="too_many_values") from None
    except _ShapeError as err:
        path = _path(err.path[::-1])
        raise bad_request(f"{path or 'the request body'} {err.message}", path or None,
                          code=err.code) from None


@dataclass(slots=True)
class Preferences:
    """What the caller asked of the routing decision for this request."""

    cost_weight: float | None = None
    max_cost_usd: float | None = None
    allowed_models: tuple[str, ...] | None = None
    excluded_models: tuple[str, ...] = ()
    conversation_id: str | None = None
    fallback: bool = True  # False: only the first model of the plan (retries still apply)
    explore: bool = True  # False: an online-learning router makes its greedy choice


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
    prompt_tokens: int  # estimated (characters / 4): what routing and pricing plan with
    prompt_tokens_max: int  # what the messages can tokenize to at most (budget holds)
    prefs: Preferences = field(default_factory=Preferences)


def finite_number(value: Any, param: str, *, low: float | None = None,
                  high: float | None = None, strict_low: bool = False) -> float:
    """``value`` as a float once it is known to be a number in range (a 400 otherwise).

    Integers are compared exactly before ``float()``: a 400-digit integer would overflow it.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or (isinstance(value, float) and not math.isfinite(value)):
        raise bad_request(f"{param} must be a finite number, got {echo(value)}", param)
    if isinstance(value, int) and abs(value) > MAX_EXACT_INT:
        raise bad_request(f"{param} must be a number of magnitude at most 2**53, got "
                          f"{echo(value)}", param)
    if low is not None and (value <= low if strict_low else value < low):
        raise bad_request(f"{param} must be {'>' if strict_low else '>='} {low}, got "
                          f"{echo(value)}", param)
    if high is not None and value > high:
        raise bad_request(f"{param} must be <= {high:g}, got {echo(value)}", param)
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
            url = part.get("image_url")
            if kind == "image_url" and not isinstance(url, str) and not (
                    isinstance(url, dict) and isinstance(url.get("url"), str)):
                raise bad_request(f"{param}[{j}].image_url must be an object with a string "
                                  "'url'", f"{param}[{j}].image_url")
            needs.add("vision")
            extra += IMAGE_TOKENS
    return "\n".join(texts), extra


def _tool_calls_text(calls: Any, param: str) -> str:
    """The text of an assistant turn's tool calls, once each is a well-formed call:
    ``{"id", "type", "function": {"name", "arguments"}}`` with string values."""
    if not isinstance(calls, list):
        raise bad_request(f"{param} must be a list", param)
    text = ""
    for j, call in enumerate(calls):
        where = f"{param}[{j}]"
        if not isinstance(call, dict):
            raise bad_request(f"{where} must be an object", where)
        for key in ("id", "type"):
            if call.get(key) is not None and not isinstance(call[key], str):
                raise bad_request(f"{where}.{key} must be a string", f"{where}.{key}")
        fn = call.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad_request(f"{where}.function must be an object with a string 'name'",
                              f"{where}.function")
        arguments = fn.get("arguments", "")
        if not isinstance(arguments, str):
            raise bad_request(f"{where}.function.arguments must be a string (JSON text)",
                              f"{where}.function.arguments")
        text += f"\n{fn['name']}({arguments})"
    return text


def _check_tools(tools: Any) -> None:
    """``tools``: a list of objects; a function tool (``type`` "function" or absent) must
    say ``function: {"name": str, "parameters": object?}``. Other tool types pass as is."""
    if not isinstance(tools, list):
        raise bad_request("tools must be a list of tool objects", "tools")
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type", "function"), str):
            raise bad_request(f"{where} must be an object with a string 'type'", where)
        if tool.get("type", "function") != "function":
            continue
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad_request(f"{where}.function must be an object with a string 'name'",
                              f"{where}.function")
        if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):
            raise bad_request(f"{where}.function.parameters must be an object (a JSON "
                              "schema)", f"{where}.function.parameters")


def _utf8_length(text: str) -> int:
    """UTF-8 bytes of ``text``: no tokenizer makes more tokens of a text than it has bytes
    (byte-level BPE and byte fallback bottom out at one token a byte)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _messages(messages: Any, needs: set[str]) -> tuple[list[str], int, int]:
    """The messages' texts, their estimated prompt tokens, and the most tokens they can
    be (:func:`_utf8_length` plus the same per-part and per-message allowances)."""
    if not isinstance(messages, list):
        raise bad_request("messages must be a list of message objects", "messages")
    if not messages:
        raise bad_request("messages must not be empty", "messages")
    texts, chars, extra, most = [], 0, 0, 0
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request(f"{param} must be an object", param)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise bad_request(f"{param}.role must be one of {sorted(ROLES)}, got "
                              f"{echo(role)}", f"{param}.role")
        if "content" not in message and role not in ("assistant",):
            raise bad_request(f"{param}.content is required", f"{param}.content")
        for key in ("name", "tool_call_id"):
            if message.get(key) is not None and not isinstance(message[key], str):
                raise bad_request(f"{param}.{key} must be a string", f"{param}.{key}")
        text, part_tokens = _content_text(message.get("content"), f"{param}.content", needs)
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            text += _tool_calls_text(tool_calls, f"{param}.tool_calls")
        texts.append(text)
        chars += len(text)
        most += _utf8_length(text)
        extra += part_tokens + 4  # per-message framing tokens
    return texts, int(chars / CHARS_PER_TOKEN) + extra, most + extra


def parse_chat_request(body: Any, headers: Mapping[str, str],
                       known_names: frozenset[str]) -> ChatRequest:
    """Validate ``body`` (parsed JSON) and the ``x-switchman-*`` headers."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    check_shape(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model is required and must be a non-empty string", "model")
    needs: set[str] = set()
    texts, prompt_tokens, prompt_tokens_max = _messages(body.get("messages"), needs)

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
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 1 <= value <= MAX_TOKENS_LIMIT:
                raise bad_request(f"{key} must be an integer from 1 to {MAX_TOKENS_LIMIT}, "
                                  f"got {echo(value)}", key)
            max_tokens = value
    for key, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        if body.get(key) is not None:
            finite_number(body[key], key, low=low, high=high)
    tools = body.get("tools")
    if tools is not None:
        _check_tools(tools)
        if tools:
            needs.add("tools")
            described = [str(t) for t in tools]
            prompt_tokens += int(sum(map(len, described)) / CHARS_PER_TOKEN)
            prompt_tokens_max += sum(map(_utf8_length, described))
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise bad_request("stop must be a string or a list of strings", "stop")
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
                       prompt_tokens=prompt_tokens, prompt_tokens_max=prompt_tokens_max,
                       prefs=prefs)


def _model_list(value: Any, param: str, known: frozenset[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise bad_request(f"{param} must be a list of model names", param)
    unknown = [v for v in value if v not in known]
    if unknown:
        raise bad_request(f"{param}: unknown model(s) {_echo_list(unknown)}; pool models: "
                          f"{sorted(known)}", param, code="model_not_found")
    return tuple(value)


def parse_preferences(body_prefs: Any, headers: Mapping[str, str],
                      known: frozenset[str]) -> Preferences:
    """Merge ``x-switchman-*`` headers and the body's ``switchman`` object (body wins)."""
    raw: dict[str, tuple[Any, str]] = {}
    for key, header in _PREF_HEADERS:
        value = headers.get(header)
        if value is not None:
            if key in ("cost_weight", "max_cost_usd"):
                try:
                    value = float(value)  # "9" * 500 gives inf: finite_number refuses it
                except ValueError:
                    raise bad_request(f"header {header} must be a number, got {echo(value)}",
                                      header) from None
            elif key in _BOOLEAN_PREFS:
                lowered = value.strip().lower()
                if lowered not in _TRUE | _FALSE:
                    raise bad_request(f"header {header} must be true or false, got "
                                      f"{echo(value)}", header)
                value = lowered in _TRUE
            raw[key] = (value, header)  # the header's name is the param
    if body_prefs is not None:
        if not isinstance(body_prefs, dict):
            raise bad_request("switchman must be an object", "switchman")
        unknown = sorted(set(body_prefs) - set(_PREF_KEYS))
        if unknown:
            raise bad_request(f"switchman: unknown field(s) {_echo_list(unknown)}; known: "
                              f"{list(_PREF_KEYS)}", "switchman")
        for key, value in body_prefs.items():
            if value is not None:
                raw[key] = (value, f"switchman.{key}")
    prefs = Preferences()
    if not raw:
        return prefs
    if "cost_weight" in raw:
        prefs.cost_weight = finite_number(*raw["cost_weight"], low=0, high=MAX_COST_WEIGHT)
    if "max_cost_usd" in raw:
        prefs.max_cost_usd = finite_number(*raw["max_cost_usd"], low=0, strict_low=True)
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
    for key in _BOOLEAN_PREFS:
        if key in raw:
            value, param = raw[key]
            if not isinstance(value, bool):
                raise bad_request(f"{param} must be a boolean, got {echo(value)}", param)
            setattr(prefs, key, value)
    return prefs
