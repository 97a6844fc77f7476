"""Prometheus metrics of one gateway, in its own registry.

A registry per app (not prometheus_client's global one) lets several gateways live in one
process (tests, embedding) without duplicate-metric errors. ``overhead_seconds`` is the
latency switchman itself adds (parse, route, log) and is what the performance budget targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)
_OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)

CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True, slots=True)
class AnsweredSeries:
    """The series one answered request updates, for one (router, model, reason, status)."""

    overhead: Any
    decisions: Any
    requests: Any
    latency: Any
    prompt_tokens: Any
    completion_tokens: Any
    cost: Any


class GatewayMetrics:
    """Counters and histograms the request path updates (label values stay low-cardinality:
    model and router names come from configuration, never from clients)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._answered: dict[tuple[str, str, str, int], AnsweredSeries] = {}
        r = self.registry
        self.requests = Counter("switchman_requests_total", "Chat completion requests.",
                                ["router", "model", "status"], registry=r)
        self.latency = Histogram("switchman_request_duration_seconds",
                                 "Time from request to last byte.", ["router", "model"],
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.overhead = Histogram("switchman_overhead_seconds",
                                  "Time switchman adds before calling upstream.", ["router"],
                                  buckets=_OVERHEAD_BUCKETS, registry=r)
        self.upstream_latency = Histogram("switchman_upstream_duration_seconds",
                                          "Upstream call time (to first chunk for streams).",
                                          ["model"], buckets=_LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("switchman_tokens_total", "Tokens by model, router and kind.",
                              ["model", "router", "kind"], registry=r)
        self.cost = Counter("switchman_cost_usd_total", "Dollars spent.", ["model", "router"],
                            registry=r)
        self.decisions = Counter("switchman_routing_decisions_total",
                                 "Routing decisions by chosen model and reason.",
                                 ["router", "model", "reason"], registry=r)
        self.fallbacks = Counter("switchman_fallbacks_total",
                                 "Upstream failures that moved a request to the next model.",
                                 ["from_model", "to_model", "error"], registry=r)
        self.errors = Counter("switchman_errors_total", "Errors returned, by kind.", ["kind"],
                              registry=r)
        self.upstream_errors = Counter("switchman_upstream_errors_total",
                                       "Failed upstream calls.", ["model", "error"], registry=r)
        self.feedback = Counter("switchman_feedback_total", "Feedback received.", ["label"],
                                registry=r)
        self.retries = Counter("switchman_retries_total",
                               "Upstream calls repeated after a transient failure.",
                               ["model", "error"], registry=r)
        self.circuit = Gauge("switchman_circuit_state",
                             "Circuit breaker per model: 0 closed, 1 half-open, 2 open.",
                             ["model"], registry=r)
        self.circuit_opened = Counter("switchman_circuit_opened_total",
                                      "Times a model's breaker opened.", ["model"], registry=r)
        self.in_flight = Gauge("switchman_in_flight", "Requests being served now.", registry=r)
        self.model_in_flight = Gauge("switchman_model_in_flight",
                                     "Open upstream calls per model.", ["model"], registry=r)
        self.rejected = Counter("switchman_overload_rejections_total",
                                "Requests refused with 429 because the gateway was full.",
                                registry=r)
        self.log_dropped = Counter("switchman_decision_log_dropped_total",
                                   "Decision-log and feedback rows that never reached disk.",
                                   registry=r)
        self.state_fallbacks = Counter(
            "switchman_state_fallbacks_total",
            "Calls to the shared state store answered from local state (store unreachable).",
            registry=r)
        self.incidents = Counter("switchman_stream_incidents_total",
                                 "Streams that failed after bytes reached the client.",
                                 ["model", "error"], registry=r)

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, bound once and reused: ``labels()`` hashes, locks and
        looks up on every call, several times per request otherwise. Label values come from
        configuration and code, so the cache is as small as the metric's own series."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def answered(self, router: str, model: str, reason: str, status: int) -> AnsweredSeries:
        """The bound series of an answered request, found with one lookup instead of seven
        (each :meth:`child` builds and hashes its key); as few as the series themselves."""
        key = (router, model, reason, status)
        found = self._answered.get(key)
        if found is None:
            child = self.child
            found = self._answered[key] = AnsweredSeries(
                child(self.overhead, router), child(self.decisions, router, model, reason),
                child(self.requests, router, model, str(status)),
                child(self.latency, router, model),
                child(self.tokens, model, router, "prompt"),
                child(self.tokens, model, router, "completion"),
                child(self.cost, model, router))
        return found

    def render(self) -> bytes:
        return generate_latest(self.registry)
