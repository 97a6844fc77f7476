"""Online learning through a real gateway: feedback moves a router off a model that answers
badly, the learned state survives a restart, and a request can opt out of exploring."""

from __future__ import annotations

import httpx
from gateway_support import gateway_state

ROUTER = {"name": "test/learn", "models": ["cheap", "mid", "best"], "cost_weight": 0,
          "learn": True, "explore_share": 0}
BODY = {"model": "test/learn", "messages": [{"role": "user", "content": "a question"}]}


def _until_moved(http: httpx.Client, limit: int = 80) -> tuple[int, str]:
    """Rate every answer of ``best`` 0 until the router chooses another model."""
    for step in range(limit):
        r = http.post("/v1/chat/completions", json=BODY)
        assert r.status_code == 200, r.text
        model = r.headers["x-switchman-model"]
        if model != "best":
            return step, model
        feedback = http.post("/v1/feedback", json={"id": r.json()["id"], "score": 0})
        assert feedback.json()["learned"] is True
    return limit, "best"


def test_feedback_moves_the_router_and_survives_a_restart(make_gateway) -> None:
    with make_gateway(routers=[ROUTER]) as gw, httpx.Client(base_url=gw.url) as http:
        first = http.post("/v1/chat/completions", json=BODY)
        assert first.headers["x-switchman-model"] == "best"  # the prior's choice
        steps, model = _until_moved(http)
        assert model != "best" and steps < 80
        assert "test/learn" in gateway_state(gw).learners()
    with make_gateway(routers=[ROUTER]) as gw, httpx.Client(base_url=gw.url) as http:
        again = http.post("/v1/chat/completions", json=BODY)
        assert again.headers["x-switchman-model"] != "best"  # restored, not relearned


def test_a_router_without_learning_is_the_offline_router(make_gateway) -> None:
    offline = {**ROUTER, "learn": False}
    with make_gateway(routers=[offline]) as gw, httpx.Client(base_url=gw.url) as http:
        for _ in range(5):
            r = http.post("/v1/chat/completions", json=BODY)
            assert r.headers["x-switchman-model"] == "best"
            assert http.post("/v1/feedback", json={"id": r.json()["id"],
                                                   "score": 0}).json()["learned"] is False


def test_exploration_is_bounded_and_can_be_refused(make_gateway) -> None:
    exploring = {**ROUTER, "explore_share": 0.5}
    with make_gateway(routers=[exploring]) as gw, httpx.Client(base_url=gw.url) as http:
        refused = {**BODY, "switchman": {"explore": False}}
        reasons = [http.post("/v1/chat/completions", json=refused).headers["x-switchman-reason"]
                   for _ in range(20)]
        assert not any(r.startswith("exploring") for r in reasons)
        allowed = {**BODY, "switchman": {"allowed_models": ["mid", "best"]}}
        models = {http.post("/v1/chat/completions", json=allowed).headers["x-switchman-model"]
                  for _ in range(20)}
        assert models <= {"mid", "best"}  # never outside the request's constraints
