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
from collections.abc import Callable, Mapping

from switchman.config import Config, PoolModel, RouterConfig
from switchman.gateway.errors import GatewayError
from switchman.gateway.execute.breaker import OPEN, STATE_VALUES
from switchman.gateway.execute.budget_gate import BudgetGate
from switchman.gateway.execute.executor import Executor
from switchman.gateway.execute.guards import InFlight, ModelGuard, build_guards
from switchman.gateway.execute.local import LocalModelServer
from switchman.gateway.execute.providers.registry import build_providers
from switchman.gateway.execute.providers.transport import Transport
from switchman.gateway.record.accounting import logged_spend
from switchman.gateway.record.decision_log import (
    RECENT_IDS_LOCAL,
    RECENT_IDS_SHARED,
    DecisionLog,
)
from switchman.gateway.record.metrics import GatewayMetrics
from switchman.gateway.record.settle import Settler
from switchman.gateway.route.live_learning import PUBLISH_INTERVAL_S, LiveLearner, recalled
from switchman.gateway.route.routing import RouterEntry, RoutingTable
from switchman.gateway.route.scoring import (
    PriorScorer,
    Scorer,
    cost_weight_of,
    knowledge,
    load_scorer,
    router_members,
)
from switchman.gateway.route.sticky import ConversationMemory
from switchman.learning.config import LearnerConfig
from switchman.ledger import BudgetLedger
from switchman.pool import Model
from switchman.state import LocalStore, StateStore, StoreUnavailable

logger = logging.getLogger(__name__)


def key_id(token: str) -> str:
    """Short stable id of an API key for accounting; the key itself is never stored."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def _open_state(config: Config, on_fallback: Callable[[], None]
                ) -> tuple[StateStore, StateStore]:
    """(store for breakers and stickiness, store for the budget ledger)."""
    if config.state.url is None:
        local = LocalStore()
        return local, local
    from switchman.state.redis_store import FallbackStore, RedisStore  # only when configured

    shared = RedisStore(config.state.url, config.state.prefix, config.state.timeout_s)
    try:
        shared.ping()
    except StoreUnavailable as exc:
        logger.warning("state store %s unreachable at start-up (%s): local state until it "
                       "answers", config.state.url, exc)
    return FallbackStore(shared, on_fallback), shared


def unavailable_models(models: list[Model], environ: Mapping[str, str]) -> dict[str, str]:
    """Models that cannot be called because their key variable is unset or empty."""
    return {m.name: f"API key variable {m.api_key_env} is not set"
            for m in models if m.api_key_env and not environ.get(m.api_key_env)}


class Gateway:
    """Everything a request needs; ``start``/``stop`` own processes and connections."""

    def __init__(self, config: Config, scorers: Mapping[str, Scorer] | None = None) -> None:
        self.config = config
        self.metrics = GatewayMetrics()
        #: Shared state (breakers, stickiness, recent ids): Redis when configured, falling
        #: back to local state while it is down; ``ledger_store`` never falls back (budgets
        #: follow ``state.fail_closed`` instead). In-flight limits are this process's own.
        self.store, self.ledger_store = _open_state(config, self.metrics.state_fallbacks.inc)
        self.memory = ConversationMemory(config.conversations.max_entries, self.store)
        self._scorers = dict(scorers or {})
        keys = [*config.auth.api_keys, *config.auth.admin_api_keys]
        self._auth = [hashlib.sha256(k.encode()).digest() for k in keys]
        self._admins = frozenset(key_id(k) for k in config.auth.admin_api_keys)
        self.local_servers: list[LocalModelServer] = []
        self.transport = Transport()
        self.in_flight = InFlight(config.server.max_in_flight)
        self.ledger = BudgetLedger(config.budgets, self.ledger_store, key_id)
        self.guards: dict[str, ModelGuard] = {}
        self.models: dict[str, PoolModel] = {m.name: m for m in config.models}
        self.routing: RoutingTable
        self.executor: Executor
        self.log: DecisionLog
        self.settler: Settler
        self.started_at = 0.0
        self._sharing: asyncio.Task[None] | None = None

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
        providers = build_providers(self.transport, self.models.values(), timeouts)
        routers = {}
        for rc in cfg.routers:
            scorer = self._scorers.get(rc.name) or await asyncio.to_thread(load_scorer, rc, cfg)
            inline = isinstance(scorer, PriorScorer)
            if not inline:  # load encoders now, not on the first request
                await asyncio.to_thread(scorer.estimate, ["warm-up"])
            learner = await asyncio.to_thread(self._learner, rc, scorer) if rc.learn else None
            routers[rc.name] = RouterEntry(rc.name, scorer, cost_weight_of(rc, scorer), inline,
                                           tuple(rc.fallbacks), learner)
        for i, rc in enumerate(cfg.routers):  # where each router knows each model from
            for line in knowledge(routers[rc.name].scorer, router_members(rc, cfg)):
                logger.info("routers[%d] %s: %s", i, rc.name, line)
        unavailable = unavailable_models(list(self.models.values()), os.environ)
        for name, why in unavailable.items():
            logger.warning("model %s is unavailable: %s", name, why)
        self.routing = RoutingTable(self.models, routers, unavailable, self.memory, self.ledger)
        gate = BudgetGate(self.ledger, cfg.state.fail_closed) if cfg.budgets else None
        self.executor = Executor(self.models, providers, self.metrics, self.guards, gate)
        for name in self.models:
            self.metrics.circuit.labels(name).set(0)
        recent = RECENT_IDS_LOCAL if cfg.state.url is None else RECENT_IDS_SHARED
        self.log = DecisionLog(cfg.log.resolved_path(), recent=recent, store=self.store,
                               on_drop=self.metrics.log_dropped.inc)
        if cfg.budgets and cfg.state.url is None:  # in process: the log is the ledger's memory
            await asyncio.to_thread(self._charge_logged_spend)
        self.settler = Settler(self.metrics, self.log, self.memory.put, cfg.log.store_prompts,
                               self.ledger if cfg.budgets else None)
        self.started_at = time.time()
        if self.learners():
            self._sharing = asyncio.create_task(self._share_learned())
        logger.info("switchman gateway ready: %d models, routers %s, decision log %s",
                    len(self.models), ", ".join(routers), self.log.path)

    def _learner(self, rc: RouterConfig, scorer: Scorer) -> LiveLearner:
        """Router ``rc``'s online learner, restored from the store or the snapshot file."""
        _, embeddings = scorer.estimate_embedded(["warm-up"])  # type: ignore[attr-defined]
        config = LearnerConfig(max_explore_share=rc.explore_share,
                               explore=rc.explore_share > 0)
        snapshot = self.config.log.resolved_path().with_suffix(".learners.json")
        return LiveLearner(rc.name, scorer.models, int(embeddings.shape[1]), config,
                           self.store, snapshot, getattr(scorer, "prompts_seen", {}))

    async def _share_learned(self) -> None:
        """Publish what the learners learned from bills and late scores, on a steady beat
        (a learner writes its state at most every ``PUBLISH_INTERVAL_S`` by itself, so the
        last observations of a burst would otherwise wait for the next one)."""
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL_S)
            for learner in self.learners().values():
                learner.flush()

    def learners(self) -> dict[str, LiveLearner]:
        return {name: entry.learner for name, entry in self.routing.routers.items()
                if entry.learner is not None}

    def learn_from_feedback(self, response_id: str, score: float) -> bool:
        """Feed a response's score to the learner of the router that chose its model (if
        it learns online and the response is still remembered)."""
        found = recalled(self.store, response_id)
        if found is None:
            return False
        router, model, context = found
        learner = self.learners().get(router)
        if learner is None:
            return False
        learner.learn_score(model, context, score)
        return True

    async def stop(self) -> None:
        if self._sharing is not None:
            self._sharing.cancel()
        for learner in self.learners().values() if hasattr(self, "routing") else ():
            await asyncio.to_thread(learner.flush, True)
        await self.transport.close()
        if hasattr(self, "log"):
            await asyncio.to_thread(self.log.close)
        for server in self.local_servers:
            await asyncio.to_thread(server.stop)

    def _charge_logged_spend(self) -> None:
        """Charge each budget with what the decision log says it spent this period, so a
        restart does not give a spent budget back."""
        for budget in self.ledger.budgets:
            keys = [key_id(k) for k in budget.api_keys]
            spent = logged_spend(self.log.path, self.ledger.period_start(budget), keys,
                                 budget.routers)
            if spent:
                self.ledger.charge([budget], spent)

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
                "budgets": self._budget_status(),
                "in_flight": self.in_flight.active, "max_in_flight": self.in_flight.limit,
                "rejected_overload": self.in_flight.rejected, "models": models,
                "routers": list(self.routing.routers),
                "decision_log": {"path": str(self.log.path), "dropped": self.log.dropped,
                                 "prompts_dropped": self.log.prompts_dropped,
                                 "writer": "running" if self.log.alive() else "dead"}}

    def _budget_status(self) -> list[dict] | dict:
        try:
            return self.ledger.status()
        except StoreUnavailable as exc:
            return {"error": f"budget ledger unreachable: {exc}"}

    def is_admin(self, key: str | None) -> bool:
        """Whether key id ``key`` belongs to an admin key (feedback on any response)."""
        return key is not None and key in self._admins

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
