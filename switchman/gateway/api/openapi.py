"""GET /openapi.json: the gateway's HTTP interface as an OpenAPI 3.1 document, by hand.

Written out rather than derived: the gateway validates bodies with hand-written checks
(:mod:`switchman.gateway.schema`) and forwards unknown fields upstream, so no model classes
exist to generate it from. The limits quoted here are the schema module's own constants,
so the document cannot drift from what the gateway enforces. It is static on purpose (no
model names from the running configuration): generated clients should not hard-code a pool,
and an unauthenticated caller learns nothing about it. Fuzzers (tests/gateway/test_fuzz.py)
generate requests from it.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from switchman.gateway import schema as limits

_ERROR_STATUSES = {
    "400": "The request is invalid (the message and `param` name the problem), or an "
           "upstream refused it as invalid",
    "401": "Missing or invalid API key (only when `auth.api_keys` is configured)",
    "404": "Unknown model or router, or unknown response id",
    "408": "The request body did not arrive in time",
    "413": "The body exceeds `server.max_body_bytes`",
    "429": "switchman or every eligible model is at its in-flight limit; see Retry-After",
    "422": "An upstream refused the request as unprocessable",
    "502": "Every model of the plan failed (errors, timeouts)",
    "503": "No model of the plan could be called (circuits open)",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*statuses: str) -> dict[str, Any]:
    return {status: {"description": _ERROR_STATUSES[status],
                     "content": {"application/json": {"schema": _ref("Error")}}}
            for status in statuses}


def _json(schema: dict[str, Any], description: str, headers: dict | None = None) -> dict:
    out: dict[str, Any] = {"description": description,
                           "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


_TEXT = {"type": "string"}
_NUMBER_OR_INT = {"type": ["number", "integer"]}

_PREFERENCES = {
    "type": "object",
    "description": "Routing preferences for this request; removed before the body goes "
                   "upstream. Each also has an `x-switchman-*` header; the body wins.",
    "additionalProperties": False,
    "properties": {
        "cost_weight": {**_NUMBER_OR_INT, "minimum": 0, "maximum": limits.MAX_COST_WEIGHT,
                        "description": "Quality points per dollar; overrides the router's"},
        "max_cost_usd": {**_NUMBER_OR_INT, "exclusiveMinimum": 0,
                         "description": "Models estimated to cost more are ineligible"},
        "allowed_models": {"type": "array", "minItems": 1,
                           "items": {"type": "string", "minLength": 1}},
        "excluded_models": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "conversation_id": {"type": "string", "minLength": 1, "maxLength": 256},
        "fallback": {"type": "boolean",
                     "description": "false: only the plan's first model is called"},
        "explore": {"type": "boolean",
                    "description": "false: a router that learns online makes its greedy "
                                   "choice, no exploration"},
    },
}

_CONTENT_PART = {
    "type": "object", "required": ["type"],
    "properties": {"type": _TEXT, "text": _TEXT,
                   "image_url": {"anyOf": [_TEXT, {"type": "object", "required": ["url"],
                                                   "properties": {"url": _TEXT}}]}},
    "description": "A `text` part needs a string `text`; image parts make the request "
                   "need a vision-capable model",
}

_TOOL_CALL = {
    "type": "object", "required": ["function"],
    "properties": {
        "id": _TEXT, "type": _TEXT,
        "function": {"type": "object", "required": ["name"],
                     "properties": {"name": _TEXT,
                                    "arguments": {"type": "string",
                                                  "description": "JSON text"}}},
    },
}

_TOOL = {
    "type": "object", "required": ["function"],
    "description": "A function tool (other `type`s are forwarded as they are)",
    "properties": {
        "type": _TEXT,
        "function": {"type": "object", "required": ["name"],
                     "properties": {"name": _TEXT, "description": _TEXT,
                                    "parameters": {"type": "object",
                                                   "description": "A JSON schema"}}},
    },
}

_MESSAGE = {
    "type": "object", "required": ["role"],
    "description": "`content` is required except for `assistant` messages",
    "properties": {
        "role": {"enum": sorted(limits.ROLES)},
        "content": {"anyOf": [{"type": "string"}, {"type": "null"},
                              {"type": "array", "items": _ref("ContentPart")}]},
        "name": _TEXT,
        "tool_calls": {"type": "array", "items": _ref("ToolCall")},
        "tool_call_id": _TEXT,
    },
}

_MAX_TOKENS = {"type": "integer", "minimum": 1, "maximum": limits.MAX_TOKENS_LIMIT}

_CHAT_REQUEST = {
    "type": "object", "required": ["model", "messages"],
    "description": (
        "OpenAI's chat-completions body. Fields switchman does not read are forwarded "
        f"upstream unchanged. Any body: at most {limits.MAX_DEPTH} levels of nesting, "
        f"{limits.MAX_ITEMS} items per array or object, {limits.MAX_VALUES} JSON values; "
        "finite numbers and valid Unicode text (no lone surrogates) only."),
    "properties": {
        "model": {"type": "string", "minLength": 1, "examples": ["switchman/auto"],
                  "description": "A router or a pool model (GET /v1/models lists them)"},
        "messages": {"type": "array", "minItems": 1, "maxItems": limits.MAX_ITEMS,
                     "items": _ref("Message")},
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object",
                           "properties": {"include_usage": {"type": "boolean"}}},
        "max_tokens": _MAX_TOKENS,
        "max_completion_tokens": _MAX_TOKENS,
        "temperature": {**_NUMBER_OR_INT, "minimum": 0, "maximum": 2},
        "top_p": {**_NUMBER_OR_INT, "minimum": 0, "maximum": 1},
        "tools": {"type": "array", "items": _ref("Tool")},
        "stop": {"anyOf": [_TEXT, {"type": "array", "items": _TEXT}]},
        "tool_choice": {"type": ["string", "object"]},
        "response_format": {"type": "object", "required": ["type"],
                            "properties": {"type": _TEXT}},
        "switchman": _ref("Preferences"),
    },
}

_CHAT_COMPLETION = {
    "type": "object", "required": ["id", "object", "model", "choices"],
    "properties": {
        "id": {"type": "string", "description": "switchman's request id (rate it with "
                                                "POST /v1/feedback)"},
        "object": _TEXT, "created": {"type": "integer"},
        "model": {"type": "string", "description": "The pool model that answered"},
        "choices": {"type": "array", "items": {"type": "object"}},
        "usage": {"type": "object",
                  "properties": {"prompt_tokens": {"type": "integer"},
                                 "completion_tokens": {"type": "integer"},
                                 "total_tokens": {"type": "integer"}}},
    },
}

_MODEL = {
    "type": "object", "required": ["id", "object", "owned_by", "switchman"],
    "properties": {"id": _TEXT, "object": {"const": "model"}, "created": {"type": "integer"},
                   "owned_by": _TEXT,
                   "switchman": {"type": "object", "required": ["type"],
                                 "properties": {"type": {"enum": ["router", "model"]}}}},
}

_FEEDBACK_REQUEST = {
    "type": "object", "required": ["id"],
    "description": "Exactly one of `score` and `thumbs`",
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": limits.MAX_ID_CHARS,
               "description": "The `id` of a chat completion switchman returned "
                              "(`response_id` is accepted too)"},
        "score": {**_NUMBER_OR_INT, "minimum": 0, "maximum": 1},
        "thumbs": {"enum": ["up", "down"]},
        "comment": {"type": "string", "maxLength": 4000},
    },
}

_FEEDBACK = {
    "type": "object", "required": ["object", "id", "score", "recorded"],
    "properties": {"object": {"const": "feedback"}, "id": _TEXT, "score": {"type": "number"},
                   "recorded": {"type": "boolean"},
                   "learned": {"type": "boolean", "description": "whether a router's online "
                               "learner took the score"}},
}

_STATUS = {
    "type": "object", "required": ["object", "models", "routers"],
    "properties": {"object": {"const": "status"}, "uptime_s": {"type": "number"},
                   "in_flight": {"type": "integer"}, "max_in_flight": {"type": "integer"},
                   "models": {"type": "array", "items": {"type": "object"}},
                   "routers": {"type": "array", "items": _TEXT},
                   "decision_log": {"type": "object"}},
}

_ERROR = {
    "type": "object", "required": ["error"],
    "description": "OpenAI's error shape, for switchman's own errors and upstreams' alike",
    "properties": {"error": {
        "type": "object", "required": ["message", "type", "param", "code"],
        "properties": {"message": _TEXT, "type": _TEXT,
                       "param": {"type": ["string", "null"]},
                       "code": {"type": ["string", "null"]}},
    }},
}

_REQUEST_ID = {"x-switchman-request-id": {"schema": _TEXT,
                                          "description": "The request's id (also the body's)"}}
_PREF_HEADERS = [
    {"name": "x-switchman-cost-weight", "in": "header", "schema": _TEXT,
     "description": "A number >= 0 (see `switchman.cost_weight`)"},
    {"name": "x-switchman-max-cost-usd", "in": "header", "schema": _TEXT,
     "description": "A number > 0"},
    {"name": "x-switchman-allowed-models", "in": "header", "schema": _TEXT,
     "description": "Comma-separated pool model names"},
    {"name": "x-switchman-excluded-models", "in": "header", "schema": _TEXT},
    {"name": "x-switchman-conversation-id", "in": "header",
     "schema": {"type": "string", "minLength": 1, "maxLength": 256}},
    {"name": "x-switchman-fallback", "in": "header",
     "schema": {"enum": ["true", "false", "1", "0", "yes", "no", "on", "off"]}},
    {"name": "x-switchman-explore", "in": "header",
     "schema": {"enum": ["true", "false", "1", "0", "yes", "no", "on", "off"]}},
]

#: One server-sent event of a stream (OpenAPI before 3.2 describes each event this way).
_SSE_EVENT = {
    "type": "object", "required": ["data"],
    "properties": {"data": {"type": "string",
                            "description": "A chat.completion.chunk as JSON; an `error` "
                                           "object if the stream fails; `[DONE]` last"},
                   "event": _TEXT},
}

_CHAT_OPERATION = {
    "summary": "Create a chat completion (routed, or on the named pool model)",
    "operationId": "createChatCompletion",
    "parameters": _PREF_HEADERS,
    "requestBody": {"required": True,
                    "content": {"application/json": {"schema": _ref("ChatCompletionRequest")}}},
    "responses": {
        "200": {"description": "The answer (an SSE stream of chunks when `stream` is true)",
                "headers": _REQUEST_ID,
                "content": {"application/json": {"schema": _ref("ChatCompletion")},
                            "text/event-stream": {"schema": _SSE_EVENT}}},
        **_errors("400", "401", "404", "408", "413", "422", "429", "502", "503"),
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "switchman gateway", "version": "1",
             "description": "An OpenAI-compatible gateway that routes each request to the "
                            "cheapest model expected to answer as well as the best. Every "
                            "error has OpenAI's shape. Client strings quoted in error messages "
                            f"are cut to {limits.MAX_ECHO} characters."},
    "security": [{"bearer": []}],
    "paths": {
        "/v1/chat/completions": {"post": _CHAT_OPERATION},
        "/v1/models": {"get": {
            "summary": "Routers and pool models", "operationId": "listModels",
            "responses": {"200": _json({"type": "object", "required": ["object", "data"],
                                        "properties": {"object": {"const": "list"},
                                                       "data": {"type": "array",
                                                                "items": _ref("Model")}}},
                                       "Routers first, then pool models"),
                          **_errors("401")}}},
        "/v1/models/{name}": {"get": {
            "summary": "One router or pool model", "operationId": "getModel",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": _TEXT}],
            "responses": {"200": _json(_ref("Model"), "The model"), **_errors("401", "404")}}},
        "/v1/feedback": {"post": {
            "summary": "Rate an earlier response, for learning", "operationId": "postFeedback",
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": _ref("FeedbackRequest")}}},
            "responses": {"200": _json(_ref("Feedback"), "Recorded"),
                          **_errors("400", "401", "404", "408", "413")}}},
        "/v1/status": {"get": {
            "summary": "Breaker state and load per model", "operationId": "getStatus",
            "responses": {"200": _json(_STATUS, "Status"), **_errors("401")}}},
        "/openapi.json": {"get": {
            "summary": "This document", "operationId": "getOpenAPI", "security": [],
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}},
    },
    "components": {
        "securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "One of `auth.api_keys`; needed only when keys are configured"}},
        "schemas": {"ChatCompletionRequest": _CHAT_REQUEST, "Message": _MESSAGE,
                    "ContentPart": _CONTENT_PART, "ToolCall": _TOOL_CALL, "Tool": _TOOL,
                    "Preferences": _PREFERENCES, "ChatCompletion": _CHAT_COMPLETION,
                    "Model": _MODEL, "FeedbackRequest": _FEEDBACK_REQUEST,
                    "Feedback": _FEEDBACK, "Error": _ERROR},
    },
}

_BODY = json.dumps(DOCUMENT, indent=1).encode()


async def openapi_json(request: Request) -> Response:
    """The document above (no authentication: it says nothing about the pool)."""
    return Response(_BODY, media_type="application/json")
