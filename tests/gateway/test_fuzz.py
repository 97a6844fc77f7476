"""Property-based fuzzing of the gateway over HTTP: whatever a client sends, the answer is a
2xx or an OpenAI-shaped 4xx, never a 5xx, a dropped connection or a missing request id.

Two fuzzers, both against one real gateway (API keys configured) on 127.0.0.1 in front of
the real test upstream, and with a pool of healthy models only, so that any 5xx is the
gateway's own doing:

* hypothesis strategies written for the gateway's parsing: hostile chat bodies (wrong types
  everywhere, huge integers, NaN, lone surrogates, deep nesting), raw bytes, preference
  headers and feedback bodies;
* schemathesis, generating valid and invalid requests for every operation of the
  ``GET /openapi.json`` the gateway serves, and checking answers against that document.

Both are seeded and sized to finish in well under two minutes on CI's two cores.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fuzz_strategies import PREF_HEADERS, chat_bodies, dumps, feedback_bodies, raw_bodies
from gateway_support import gateway_state, running_gateway
from gateway_upstream import ServerThread
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from switchman.gateway.api.openapi import DOCUMENT

KEY = "sk-fuzz-0123456789abcdef"
AUTH = {"authorization": f"Bearer {KEY}"}
HEALTHY_MODELS = ("cheap", "mid", "best", "no-usage", "claude")
ROUTERS = ("switchman/auto", "fuzz/claude")
NAMES = HEALTHY_MODELS + ROUTERS
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def fuzz_config(base: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """The test pool less its failure injectors, with API keys and a router over Claude."""
    raw = copy.deepcopy(base)
    raw["models"] = [m for m in raw["models"] if m["name"] in HEALTHY_MODELS]
    raw["routers"] = [{"name": "switchman/auto", "models": ["cheap", "mid", "best"],
                       "cost_weight": 500},
                      {"name": "fuzz/claude", "models": ["claude", "mid"], "cost_weight": 0}]
    raw["auth"] = {"api_keys": [KEY]}
    raw["log"] = {"path": str(log_dir / "decisions.sqlite")}
    return raw


class Tally:
    """Chat requests sent that must each leave one decision row (401s leave none)."""

    def __init__(self) -> None:
        self.chat = 0


@pytest.fixture(scope="module")
def fuzz_gateway(base_config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[ServerThread]:
    with running_gateway(fuzz_config(base_config, tmp_path_factory.mktemp("fuzz"))) as gw:
        yield gw


@pytest.fixture(scope="module")
def http(fuzz_gateway: ServerThread) -> Iterator[httpx.Client]:
    """One keep-alive connection pool for all requests: a dropped connection fails loudly."""
    with httpx.Client(base_url=fuzz_gateway.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def tally() -> Tally:
    return Tally()


def check_answer(r: httpx.Response, *, chat: bool) -> None:
    """The property: no 5xx; every 4xx in OpenAI's shape; chat answers carry their id."""
    assert r.status_code < 500, r.text[:2000]
    if r.status_code >= 400:
        body = r.json()
        assert isinstance(body, dict) and set(body) == {"error"}, r.text[:500]
        err = body["error"]
        assert set(err) == {"message", "type", "param", "code"}, err
        assert isinstance(err["message"], str) and err["message"], err
        assert isinstance(err["type"], str), err
        assert err["param"] is None or isinstance(err["param"], str), err
        assert err["code"] is None or isinstance(err["code"], str), err
        assert len(err["message"]) < 5000, "an error message echoes too much"
    if chat:
        assert r.headers.get("x-switchman-request-id", "").startswith("chatcmpl-"), r.headers


def post_chat(http: httpx.Client, tally: Tally, content: bytes,
              headers: dict[str, Any] | None = None) -> httpx.Response:
    r = http.post("/v1/chat/completions", content=content,
                  headers={"content-type": "application/json", **AUTH, **(headers or {})})
    tally.chat += 1
    check_answer(r, chat=True)
    return r


def event_for(r: httpx.Response) -> None:
    """What came back, for ``--hypothesis-show-statistics`` (is the fuzzer getting far?)."""
    code = r.json()["error"]["code"] if r.status_code >= 400 else ""
    event(f"{r.status_code} {code}")


# --- hypothesis ---------------------------------------------------------------------------

@FUZZ
@given(body=chat_bodies(NAMES), headers=PREF_HEADERS)
def test_chat_bodies(http: httpx.Client, tally: Tally, body: dict, headers: dict) -> None:
    r = post_chat(http, tally, dumps(body), headers)
    event_for(r)
    if r.status_code == 200 and body.get("stream") is not True:
        assert r.json()["id"] == r.headers["x-switchman-request-id"]


@FUZZ
@given(raw=raw_bodies(NAMES))
def test_raw_bodies(http: httpx.Client, tally: Tally, raw: bytes) -> None:
    event_for(post_chat(http, tally, raw))


@pytest.fixture(scope="module")
def response_ids(http: httpx.Client, tally: Tally) -> list[str]:
    """Ids of real responses, for feedback that names one."""
    body = {"model": "mid", "messages": [{"role": "user", "content": "rate me"}]}
    return [post_chat(http, tally, dumps(body)).json()["id"] for _ in range(3)]


@FUZZ
@given(data=st.data())
def test_feedback_bodies(http: httpx.Client, response_ids: list[str], data: st.DataObject
                         ) -> None:
    body = data.draw(feedback_bodies(response_ids))
    r = http.post("/v1/feedback", content=dumps(body),
                  headers={"content-type": "application/json", **AUTH})
    check_answer(r, chat=False)
    event_for(r)


# --- schemathesis ------------------------------------------------------------------------

#: The document the gateway serves (test_served_document_is_the_module checks they are the
#: same), loaded at import: schemathesis' lazy fixture loader does not run on pytest 9.2.
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(DOCUMENT)),
                                        config=schemathesis.Config.from_dict({
                                            "seed": 20260101,
                                            "generation": {"mode": "all", "max-examples": 40},
                                            "phases": {"coverage": {"enabled": False}}}))


@schema.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy:
    """Half the chat bodies name a real model, so that generation reaches the upstream."""
    if isinstance(body, dict) and "messages" in body:
        return st.sampled_from(NAMES).map(lambda name: {**body, "model": name}) | st.just(body)
    return st.just(body)


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_operations(case: Any, fuzz_gateway: ServerThread, tally: Tally) -> None:
    response = case.call(base_url=fuzz_gateway.url, headers=AUTH, timeout=30)
    if case.path.endswith("/chat/completions"):
        tally.chat += response.status_code != 401
    assert response.status_code < 500, response.text[:2000]
    case.validate_response(response, checks=[response_schema_conformance,
                                             status_code_conformance])
    if response.status_code >= 400:
        err = json.loads(response.content)["error"]
        assert set(err) == {"message", "type", "param", "code"}


def test_served_document_is_the_module(http: httpx.Client) -> None:
    r = http.get("/openapi.json")
    assert r.status_code == 200 and r.json() == json.loads(json.dumps(DOCUMENT))
    paths = r.json()["paths"]
    assert {"/v1/chat/completions", "/v1/models", "/v1/feedback", "/v1/status"} <= set(paths)


def test_every_chat_request_left_one_row(fuzz_gateway: ServerThread, tally: Tally) -> None:
    """Runs after every fuzzer above (file order): one decision row per chat request."""
    assert tally.chat > 300
    log = gateway_state(fuzz_gateway).log
    log.flush()
    with sqlite3.connect(log.path) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    assert rows == tally.chat
