"""The running gateway's services: pool, routing, executor, settler, log, metrics, state.

Built once at start-up (local model processes started, routers loaded, one pooled HTTP
transport shared by the providers, a guard per model: timeouts, retries, breaker, in-flight
limit, all keeping their shared state in one state store) and used by the HTTP routes,
which hand each stage of a request only the services it needs. The request path allocates
only what the request itself needs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Mapping

from switchman.config import Config, PoolModel
from switchman.gateway.errors import GatewayError
from switchman.gateway.execute.breaker import OPEN, STATE_VALUES
from switchman.gateway.execute.executor import Executor
from switchman.gateway.execute.guards import InFlight, ModelGuard, build_guards
from switchman.gateway.execute.local import LocalModelServer
from switchman.gateway.execute.providers.anthropic import AnthropicProvider
from switchman.gateway.execute.providers.base import Provider
from switchman.gateway.execute.providers.openai_compat import OpenAICompatProvider
from switchman.gateway.execute.providers.transport import Transport
from switchman.gateway.record.decision_log import DecisionLog
from switchman.gateway.record.metrics import GatewayMetrics
from switchman.gateway.record.settle import Settler
from switchman.gateway.route.routing import RouterEntry, RoutingTable
from switchman.gateway.route.scoring import PriorScorer, Scorer, cost_weight_of, load_scorer
from switchman.gateway.route.sticky import ConversationMemory
from switchman.pool import Model
from switchman.state import LocalStore, StateStore

logger = logging.getLogger(__name__)


def key_id(token: str) -> str:
    """Short stable id of an API key for accounting; the key itself is never stored."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def unavailable_models(models: list[Model], environ: Mapping[str, str]) -> dict[str, str]:
    """Models that cannot be called because their key variable is unset or empty."""
    return {m.name: f"API key variable {m.api_key_env} is not set"
            for m in models if m.api_key_env and not environ.get(m.api_key_env)}


class Gateway:
    """Everything a request needs; ``start``/``stop`` own processes and connections."""

    def __init__(self, config: Config, scorers: Mapping[str, Scorer] | None = None) -> None:
        self.config = config
        self.metrics = GatewayMetrics()
        self.store: StateStore = LocalStore()
        self.memory = ConversationMemory(config.conversations.max_entries, self.store)
        self._scorers = dict(scorers or {})
        self._auth = [hashlib.sha256(k.encode()).digest() for k in config.auth.api_keys]
        self.local_servers: list[LocalModelServer] = []
        self.transport = Transport()
        self.in_flight = InFlight(config.server.max_in_flight, "gateway", self.store)
        self.guards: dict[str, ModelGuard] = {}
        self.models: dict[str, PoolModel] = {m.name: m for m in config.models}
        self.routing: RoutingTable
        self.executor: Executor
        self.log: DecisionLog
        self.settler: Settler
        self.started_at = 0.0

    def start_local_models(self) -> None:
        """Start the ``local:`` llama.cpp processes not started yet (blocks until they serve).

        ``serve`` calls it before the ASGI server runs, so that a model that cannot start is
        a plain start-up error, not a traceback out of the lifespan; :meth:`start` calls it
        for the rest (an app run by other means).
        """
        for local in self.config.local[len(self.local_servers):]:
            server = LocalModelServer(local)
            self.local_servers.append(server)
            endpoint = server.start()
            self.models[local.name] = self.models[local.name].model_copy(
                update={"endpoint": endpoint})

    async def start(self) -> None:
        cfg = self.config
        await asyncio.to_thread(self.start_local_models)
        await self.transport.start()
        self.guards = build_guards(cfg, self.models.values(), self.store, self._circuit_changed)
        timeouts = {name: guard.timeouts for name, guard in self.guards.items()}
        providers: dict[str, Provider] = {}
        for kind, cls in (("openai", OpenAICompatProvider), ("anthropic", AnthropicProvider)):
            members = [m for m in self.models.values() if m.provider == kind]
            if members:
                providers[kind] = cls(self.transport, members, timeouts)
        routers = {}
        for rc in cfg.routers:
            scorer = self._scorers.get(rc.name) or await asyncio.to_thread(load_scorer, rc, cfg)
            inline = isinstance(scorer, PriorScorer)
            if not inline:  # load encoders now, not on the first request
                await asyncio.to_thread(scorer.estimate, ["warm-up"])
            routers[rc.name] = RouterEntry(rc.name, scorer, cost_weight_of(rc, scorer), inline,
                                           tuple(rc.fallbacks))
        unavailable = unavailable_models(list(self.models.values()), os.environ)
        for name, why in unavailable.items():
            logger.warning("model %s is unavailable: %s", name, why)
        self.routing = RoutingTable(self.models, routers, unavailable, self.memory)
        self.executor = Executor(self.models, providers, self.metrics, self.guards)
        for name in self.models:
            self.metrics.circuit.labels(name).set(0)
        self.log = DecisionLog(cfg.log.resolved_path(), store=self.store)
        self.settler = Settler(self.metrics, self.log, self.memory.put, cfg.log.store_prompts)
        self.started_at = time.time()
        logger.info("switchman gateway ready: %d models, routers %s, decision log %s",
                    len(self.models), ", ".join(routers), self.log.path)

    async def stop(self) -> None:
        await self.transport.close()
        if hasattr(self, "log"):
            await asyncio.to_thread(self.log.close)
        for server in self.local_servers:
            await asyncio.to_thread(server.stop)

    def _circuit_changed(self, model: str, state: str) -> None:
        self.metrics.circuit.labels(model).set(STATE_VALUES[state])
        if state == OPEN:
            self.metrics.circuit_opened.labels(model).inc()

    def refresh_gauges(self) -> None:
        """Bring point-in-time gauges up to date (called before /metrics renders)."""
        self.metrics.in_flight.set(self.in_flight.active)
        for name, guard in self.guards.items():
            self.metrics.circuit.labels(name).set(STATE_VALUES[guard.breaker.state])
            self.metrics.model_in_flight.labels(name).set(guard.in_flight.active)

    def status(self) -> dict:
        """Breakers and load per model, for ``GET /v1/status`` and ``switchman status``."""
        models = []
        for name, guard in self.guards.items():
            calls, failures = guard.breaker.counts()
            models.append({
                "model": name, "circuit": guard.breaker.state,
                "retry_after_s": round(guard.breaker.retry_after(), 1),
                "window_calls": calls, "window_failures": failures,
                "opened_total": guard.breaker.opened_count,
                "in_flight": guard.in_flight.active, "max_in_flight": guard.in_flight.limit,
                "unavailable": self.routing.unavailable.get(name)})
        return {"object": "status", "uptime_s": round(time.time() - self.started_at, 1),
                "in_flight": self.in_flight.active, "max_in_flight": self.in_flight.limit,
                "rejected_overload": self.in_flight.rejected, "models": models,
                "routers": list(self.routing.routers),
                "decision_log": {"path": str(self.log.path), "dropped": self.log.dropped}}

    def authenticate(self, authorization: str | None) -> str | None:
        """The caller's key id; raises 401 when keys are configured and this one is not."""
        token = None
        if authorization and authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip()
        if self._auth:
            digest = hashlib.sha256(token.encode()).digest() if token else b""
            if not any(hmac.compare_digest(digest, known) for known in self._auth):
                raise GatewayError(401, "missing or invalid API key (send it as "
                                   "'Authorization: Bearer <key>')", type="authentication_error",
                                   code="invalid_api_key")
        return key_id(token) if token else None
